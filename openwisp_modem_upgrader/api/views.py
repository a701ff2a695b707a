"""Operator REST API.

Every view is organization-scoped by openwisp-users' mixins: managers see
their organizations' objects plus the shared (organization-less) categories,
builds and images, which are read-only for them; superusers see everything.
Upgrades are started and cancelled only through ``upgrade.py`` and
``batch.py``.
"""

import swapper
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_yasg import openapi
from drf_yasg.utils import swagger_auto_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.filters import OrderingFilter
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from openwisp_users.api.mixins import FilterByOrganizationManaged
from openwisp_users.api.mixins import ProtectedAPIMixin as BaseProtectedAPIMixin
from openwisp_users.api.permissions import (
    DjangoModelPermissions,
    IsOrganizationManager,
)
from openwisp_utils.api.pagination import OpenWispPagination

from ..base.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    OperationStatus,
)
from ..batch import (
    ExclusionReason,
    add_unreachable_reasons,
    create_batch,
    modems_to_flash,
    preview_page,
    retry_failed,
)
from ..compatibility import check_build_for_batch
from ..estimate import preview_estimate
from ..exceptions import UpgradeNotAllowed
from ..permissions import has_action_permission
from ..private_storage.views import modem_firmware_download
from ..rollout import pause_batch, resume_batch, wave_sizes
from ..rollout_display import rollout_annotations
from ..shell_values import usb_path_validator
from ..statuses import status_count_annotations
from ..swapper import load_model
from ..upgrade import cancel_batch, cancel_upgrade, start_upgrade
from . import filters
from .parsers import BoundedJSONParser
from .schema import ModemUpgraderAutoSchema
from .serializers import (
    BatchUpgradeOperationDetailSerializer,
    BatchUpgradeOperationSerializer,
    BatchUpgradeSerializer,
    BuildSerializer,
    CancelResultSerializer,
    CategorySerializer,
    DeviceModemFirmwareListSerializer,
    DeviceModemFirmwareSerializer,
    DryRunQuerySerializer,
    DryRunSerializer,
    FirmwareImageSerializer,
    UpgradeOperationDetailSerializer,
    UpgradeOperationSerializer,
    serializer_error,
)

ModemCategory = load_model("ModemCategory")
ModemBuild = load_model("ModemBuild")
ModemFirmwareImage = load_model("ModemFirmwareImage")
DeviceModemFirmware = load_model("DeviceModemFirmware")
ModemUpgradeOperation = load_model("ModemUpgradeOperation")
ModemBatchUpgradeOperation = load_model("ModemBatchUpgradeOperation")
Device = swapper.load_model("config", "Device")


class ModelPermissions(DjangoModelPermissions):
    """Model permissions of ``view.permission_model`` (default: the queryset's).

    Never evaluates the view's queryset, so nested views can look up their
    parent object after the permission check.
    """

    def _queryset(self, view):
        model = getattr(view, "permission_model", None) or view.queryset.model
        return model._default_manager.none()


class ActionPermission(ModelPermissions):
    """An action (POST) allowed by the rule the admin applies too
    (``permissions.ACTION_PERMISSIONS``): the view names it in
    ``permission_action``."""

    def has_permission(self, request, view):
        if request.method != "POST":
            return super().has_permission(request, view)
        if not request.user or not request.user.is_authenticated:
            return False
        model = self._queryset(view).model
        return has_action_permission(request.user, view.permission_action, model)


class ProtectedAPIMixin(BaseProtectedAPIMixin, FilterByOrganizationManaged):
    permission_classes = (IsOrganizationManager, ModelPermissions)
    parser_classes = (BoundedJSONParser, FormParser, MultiPartParser)
    throttle_scope = "modem_upgrader"
    pagination_class = OpenWispPagination
    filter_backends = (DjangoFilterBackend, OrderingFilter)
    ordering = ("-created",)
    ordering_fields = ("created", "modified")
    swagger_schema = ModemUpgraderAutoSchema

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset.none()
        return super().get_queryset()

    def managed_filter(self, organization_field, shared=False):
        """Q of the objects the user may see through ``organization_field``."""
        user = self.request.user
        if user.is_superuser:
            return Q()
        condition = Q(**{f"{organization_field}__in": user.organizations_managed})
        if shared:
            condition |= Q(**{f"{organization_field}__isnull": True})
        return condition


class DeviceParentMixin:
    """Views nested under ``device/<pk>/``: 404 unless the user manages it."""

    def get_device(self):
        if not hasattr(self, "_device"):
            queryset = Device.objects.filter(self.managed_filter("organization"))
            self._device = get_object_or_404(queryset, pk=self.kwargs["pk"])
        return self._device


def validation_error_response(error):
    return Response(serializer_error(error), status=status.HTTP_400_BAD_REQUEST)


def detail_response(message, status_code, **extra):
    return Response({"detail": message, **extra}, status=status_code)


DETAIL_SCHEMA = openapi.Schema(
    type=openapi.TYPE_OBJECT,
    properties={"detail": openapi.Schema(type=openapi.TYPE_STRING)},
)
# PUT, POST and PATCH of a device's modem all start an upgrade: the image is
# always required (the serializer's image is nullable only when read)
UPGRADE_REQUEST_SCHEMA = openapi.Schema(
    type=openapi.TYPE_OBJECT,
    required=["image"],
    properties={
        "image": openapi.Schema(
            type=openapi.TYPE_STRING,
            format=openapi.FORMAT_UUID,
            description=_("the image to flash: setting it starts the upgrade"),
        ),
        "upgrade_options": openapi.Schema(
            type=openapi.TYPE_OBJECT,
            description=_("options of the upgrader (see the image type's schema)"),
        ),
        "scheduled_at": openapi.Schema(
            type=openapi.TYPE_STRING,
            format=openapi.FORMAT_DATETIME,
            x_nullable=True,
            description=_("no device starts before this time; empty: now"),
        ),
        "deadline": openapi.Schema(
            type=openapi.TYPE_STRING,
            format=openapi.FORMAT_DATETIME,
            x_nullable=True,
            description=_("not started by then: the upgrade fails, untouched"),
        ),
        "window_start": openapi.Schema(
            type=openapi.TYPE_STRING,
            x_nullable=True,
            description=_("daily maintenance window start (HH:MM)"),
        ),
        "window_end": openapi.Schema(
            type=openapi.TYPE_STRING,
            x_nullable=True,
            description=_("daily maintenance window end (HH:MM)"),
        ),
        "window_timezone": openapi.Schema(
            type=openapi.TYPE_STRING,
            max_length=64,
            description=_("time zone of the window, e.g. Europe/Rome (default UTC)"),
        ),
    },
)


# catalogue


class CategoryListView(ProtectedAPIMixin, generics.ListCreateAPIView):
    queryset = ModemCategory.objects.all()
    serializer_class = CategorySerializer
    filterset_class = filters.CategoryFilter
    ordering_fields = ("name", "created", "modified")
    ordering = ("name",)


class CategoryDetailView(ProtectedAPIMixin, generics.RetrieveUpdateDestroyAPIView):
    queryset = ModemCategory.objects.all()
    serializer_class = CategorySerializer


class BuildListView(ProtectedAPIMixin, generics.ListCreateAPIView):
    queryset = ModemBuild.objects.select_related("category")
    serializer_class = BuildSerializer
    organization_field = "category__organization"
    filterset_class = filters.BuildFilter
    ordering_fields = ("version", "created", "modified")


class BuildDetailView(ProtectedAPIMixin, generics.RetrieveUpdateDestroyAPIView):
    queryset = ModemBuild.objects.select_related("category")
    serializer_class = BuildSerializer
    organization_field = "category__organization"


class FirmwareImageListView(ProtectedAPIMixin, generics.ListCreateAPIView):
    """Images of a build; POST uploads one (multipart)."""

    queryset = ModemFirmwareImage.objects.select_related("build__category")
    serializer_class = FirmwareImageSerializer
    # a file travels in multipart only
    parser_classes = (MultiPartParser,)
    organization_field = "build__category__organization"
    filterset_class = filters.FirmwareImageFilter
    ordering_fields = ("type", "created", "modified")

    def get_build(self):
        if not hasattr(self, "_build"):
            queryset = ModemBuild.objects.select_related("category").filter(
                self.managed_filter("category__organization", shared=True)
            )
            self._build = get_object_or_404(queryset, pk=self.kwargs["pk"])
        return self._build

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset
        return queryset.filter(build=self.get_build())

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request.method == "POST" and not getattr(
            self, "swagger_fake_view", False
        ):
            context["build"] = self.get_build()
        return context

    def create(self, request, *args, **kwargs):
        build = self.get_build()
        if build.category.organization_id is None and not request.user.is_superuser:
            raise PermissionDenied(
                _("Only superusers can add images to shared builds.")
            )
        return super().create(request, *args, **kwargs)


class FirmwareImageDetailView(ProtectedAPIMixin, generics.RetrieveDestroyAPIView):
    queryset = ModemFirmwareImage.objects.select_related("build__category")
    serializer_class = FirmwareImageSerializer
    organization_field = "build__category__organization"

    @swagger_auto_schema(responses={204: "deleted", 409: DETAIL_SCHEMA})
    def delete(self, request, *args, **kwargs):
        image = self.get_object()
        running = ModemUpgradeOperation.objects.filter(
            image=image, status__in=ACTIVE_STATUSES
        )
        if running.exists():
            return detail_response(
                _("Upgrades to this image are running: cancel them first."),
                status.HTTP_409_CONFLICT,
            )
        image.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class FirmwareImageDownloadView(ProtectedAPIMixin, generics.GenericAPIView):
    """Streams the image file (never read into memory)."""

    queryset = ModemFirmwareImage.objects.select_related("build__category")
    serializer_class = serializers.Serializer
    organization_field = "build__category__organization"
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(
        produces=["application/octet-stream"],
        responses={200: openapi.Response("the firmware image", schema=None)},
    )
    def get(self, request, *args, **kwargs):
        image = self.get_object()
        # the private storage view applies its own access checks again
        return modem_firmware_download(request._request, path=image.file.name)


# mass upgrades


class BuildUpgradePermission(ModelPermissions):
    """Managers may upgrade their devices to shared builds too."""

    def has_object_permission(self, request, view, obj):
        return True


class BuildUpgradeView(ProtectedAPIMixin, generics.GenericAPIView):
    """GET: dry run of a mass upgrade; POST: starts it."""

    queryset = ModemBuild.objects.select_related("category")
    serializer_class = BatchUpgradeSerializer
    permission_model = ModemBatchUpgradeOperation
    permission_classes = (IsOrganizationManager, BuildUpgradePermission)
    organization_field = "category__organization"
    pagination_class = None
    filter_backends = ()

    def get_build(self):
        if not hasattr(self, "_build"):
            self._build = self.get_object()
        return self._build

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["build"] = self.get_build()
        return context

    def _batch(self, data):
        return ModemBatchUpgradeOperation(
            build=self.get_build(),
            organization=data["organization"],
            upgrade_options=data.get("upgrade_options") or {},
            **BatchUpgradeSerializer.batch_filters(data),
            **BatchUpgradeSerializer.rollout_options(data),
        )

    @swagger_auto_schema(
        query_serializer=DryRunQuerySerializer, responses={200: DryRunSerializer}
    )
    def get(self, request, *args, **kwargs):
        serializer = DryRunQuerySerializer(
            data=request.query_params, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        batch = self._batch(serializer.validated_data)
        try:
            check_build_for_batch(batch.build, batch.group_id, batch.device_ids)
        except ValidationError as error:
            return validation_error_response(error)
        limit = serializer.validated_data["limit"]
        fields = (
            "pk",
            "name",
            "model",
            "modem_model",
            "modem_firmware_version",
            "target_usb_path",
            "target_imei",
            "target_image_id",
            "exclusion_reason",
        )
        data = {"organization": batch.organization_id, "modems": batch.modems}
        # the fleet evaluated once, for the counts and the listed rows
        counts, data["devices"], data["excluded"] = preview_page(batch, fields, limit)
        data.update(counts)
        for row in data["excluded"]:
            row["reason_label"] = ExclusionReason.labels.get(row["exclusion_reason"])
        add_unreachable_reasons(data["excluded"], key="reason_label")
        chosen = modems_to_flash(batch, [device["pk"] for device in data["devices"]])
        for device in data["devices"]:
            flashed, left_out = chosen.get(device["pk"], ([], []))
            device["modems_flashed"], device["modems_left_out"] = flashed, left_out
            device["matching_modems"] = len(flashed) + len(left_out)
        # waves are of routers: a router's modems are flashed in its wave
        data["waves"] = wave_sizes(batch, data["devices_count"])
        data["expected_duration"] = preview_estimate(batch, data, data["waves"])
        return Response(DryRunSerializer(data).data)

    @swagger_auto_schema(responses={201: BatchUpgradeOperationSerializer})
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            batch = create_batch(
                self.get_build(),
                data["organization"],
                data.get("upgrade_options") or {},
                **BatchUpgradeSerializer.batch_filters(data),
                **BatchUpgradeSerializer.rollout_options(data),
            )
        except ValidationError as error:
            return validation_error_response(error)
        return Response(
            BatchUpgradeOperationSerializer(batch).data, status=status.HTTP_201_CREATED
        )


class BatchUpgradeOperationMixin(ProtectedAPIMixin):
    queryset = ModemBatchUpgradeOperation.objects.select_related("build").annotate(
        **status_count_annotations(), **rollout_annotations()
    )
    serializer_class = BatchUpgradeOperationSerializer


class BatchUpgradeOperationListView(BatchUpgradeOperationMixin, generics.ListAPIView):
    filterset_class = filters.BatchUpgradeOperationFilter


class BatchUpgradeOperationDetailView(
    BatchUpgradeOperationMixin, generics.RetrieveAPIView
):
    serializer_class = BatchUpgradeOperationDetailSerializer


class BatchUpgradeOperationCancelView(
    BatchUpgradeOperationMixin, generics.GenericAPIView
):
    """Cancels the operations of a mass upgrade that are not flashing yet."""

    permission_classes = (IsOrganizationManager, ActionPermission)
    permission_action = "cancel"
    serializer_class = serializers.Serializer
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(
        request_body=serializers.Serializer,
        responses={200: CancelResultSerializer, 409: DETAIL_SCHEMA},
    )
    def post(self, request, *args, **kwargs):
        batch = self.get_object()
        if batch.status in TERMINAL_STATUSES:
            return detail_response(
                _("This mass upgrade has already finished."),
                status.HTTP_409_CONFLICT,
            )
        cancelled, flashing = cancel_batch(batch)
        refused = {
            str(pk): _("The modem is being flashed: cancelling now could brick it.")
            for pk in flashing
        }
        batch.refresh_from_db()
        result = CancelResultSerializer(
            {"cancelled": cancelled, "refused": refused}
        ).data
        if not cancelled and batch.status != OperationStatus.CANCELLED:
            return detail_response(
                _("No operation of this mass upgrade can be cancelled any more."),
                status.HTTP_409_CONFLICT,
                **result,
            )
        return Response(result)


class BatchRolloutActionView(BatchUpgradeOperationMixin, generics.GenericAPIView):
    """A rollout control on one mass upgrade; answers the batch as it is now."""

    permission_classes = (IsOrganizationManager, ActionPermission)
    # pause and resume share their rule
    permission_action = "pause"
    pagination_class = None
    filter_backends = ()
    rollout_action = None

    def post(self, request, *args, **kwargs):
        batch = self.get_object()
        try:
            type(self).rollout_action(batch)
        except UpgradeNotAllowed as error:
            return detail_response(str(error), status.HTTP_409_CONFLICT)
        # counts and state after the change
        return Response(self.get_serializer(self.get_queryset().get(pk=batch.pk)).data)


ROLLOUT_ACTION_SCHEMA = swagger_auto_schema(
    request_body=serializers.Serializer,
    responses={200: BatchUpgradeOperationSerializer, 409: DETAIL_SCHEMA},
)


class BatchUpgradeOperationPauseView(BatchRolloutActionView):
    """No more devices start until resumed; those upgrading go on."""

    rollout_action = pause_batch

    @ROLLOUT_ACTION_SCHEMA
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class BatchUpgradeOperationResumeView(BatchRolloutActionView):
    """Starts devices again: after a pause, as the go-ahead for the next wave,
    or after an automatic stop (the failures so far are then acknowledged)."""

    rollout_action = resume_batch

    @ROLLOUT_ACTION_SCHEMA
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class BatchUpgradeOperationRetryFailedView(
    BatchUpgradeOperationMixin, generics.GenericAPIView
):
    """A new mass upgrade of the devices whose upgrade failed or aborted,
    with the same build, options and rollout settings.

    The request carries nothing to validate: a refusal comes from the
    batch's state (no device failed, the failed ones are busy again), so it
    is a 409 with the reason, like the other actions.
    """

    # it creates a mass upgrade: the permission to add one
    permission_classes = (IsOrganizationManager, ActionPermission)
    permission_action = "retry_failed"
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(
        request_body=serializers.Serializer,
        responses={201: BatchUpgradeOperationSerializer, 409: DETAIL_SCHEMA},
    )
    def post(self, request, *args, **kwargs):
        batch = self.get_object()
        try:
            retry = retry_failed(batch)
        except UpgradeNotAllowed as error:
            return detail_response(str(error), status.HTTP_409_CONFLICT)
        except ValidationError as error:
            return detail_response(" ".join(error.messages), status.HTTP_409_CONFLICT)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=retry.pk)).data,
            status=status.HTTP_201_CREATED,
        )


# operations


class UpgradeOperationMixin(ProtectedAPIMixin):
    queryset = ModemUpgradeOperation.objects.select_related(
        "device", "image__build"
    ).defer("log")
    serializer_class = UpgradeOperationSerializer
    organization_field = "device__organization"


class UpgradeOperationListView(UpgradeOperationMixin, generics.ListAPIView):
    filterset_class = filters.UpgradeOperationFilter


class UpgradeOperationDetailView(UpgradeOperationMixin, generics.RetrieveAPIView):
    """GET for operators; the routers' reports to the same URL have their
    own route (``api/urls.py``, ``api/device.py``)."""

    queryset = ModemUpgradeOperation.objects.select_related("device", "image__build")
    serializer_class = UpgradeOperationDetailSerializer


class UpgradeOperationCancelView(UpgradeOperationMixin, generics.GenericAPIView):
    permission_classes = (IsOrganizationManager, ActionPermission)
    permission_action = "cancel"
    serializer_class = UpgradeOperationDetailSerializer
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(
        request_body=serializers.Serializer,
        responses={200: UpgradeOperationDetailSerializer, 409: DETAIL_SCHEMA},
    )
    def post(self, request, *args, **kwargs):
        operation = self.get_object()
        try:
            cancel_upgrade(operation)
        except UpgradeNotAllowed as error:
            return detail_response(str(error), status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(operation).data)


# devices


class DeviceModemFirmwareListView(ProtectedAPIMixin, generics.ListAPIView):
    queryset = DeviceModemFirmware.objects.select_related("device", "image__build")
    serializer_class = DeviceModemFirmwareListSerializer
    organization_field = "device__organization"
    filterset_class = filters.DeviceModemFirmwareFilter


class DeviceModemFirmwareView(
    DeviceParentMixin, ProtectedAPIMixin, generics.GenericAPIView
):
    """The modem of one device; POST, PUT or PATCH of ``image`` upgrades it."""

    queryset = DeviceModemFirmware.objects.select_related("device", "image__build")
    serializer_class = DeviceModemFirmwareSerializer
    organization_field = "device__organization"
    pagination_class = None
    filter_backends = ()

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["device"] = self.get_device()
        return context

    def requested_usb_path(self):
        """``usb_path`` from the query or the body; None when not given.

        Raises a 400 for a value that is not a USB path.
        """
        value = self.request.query_params.get("usb_path")
        if value is None and isinstance(self.request.data, dict):
            value = self.request.data.get("usb_path")
        if value is None:
            return None
        if not isinstance(value, str):
            raise serializers.ValidationError({"usb_path": _("Not a USB path.")})
        try:
            usb_path_validator(value)
        except ValidationError as error:
            raise serializers.ValidationError({"usb_path": error.messages})
        return value

    def get_object(self):
        """The modem chosen by ``usb_path``, or the device's only modem.

        None when there is no such modem; a 400 when the device has several
        and none was chosen. get_device() limits the devices to the managed
        organizations; devices are never shared, so no further object
        permission applies.
        """
        modems = self.get_queryset().filter(device=self.get_device())
        usb_path = self.requested_usb_path()
        if usb_path is not None:
            return modems.filter(usb_path=usb_path).first()
        found = list(modems[:2])
        if len(found) > 1:
            raise serializers.ValidationError(
                {
                    "usb_path": _(
                        "This device has several modems: choose one with usb_path."
                    )
                }
            )
        return found[0] if found else None

    def get_queryset(self):
        # scoped by the parent device instead of the organization lookup
        return self.queryset.all()

    @swagger_auto_schema(
        responses={200: DeviceModemFirmwareSerializer, 404: DETAIL_SCHEMA}
    )
    def get(self, request, *args, **kwargs):
        modem_firmware = self.get_object()
        if modem_firmware is None:
            return detail_response(
                _("No modem was detected on this device yet."),
                status.HTTP_404_NOT_FOUND,
            )
        return Response(self.get_serializer(modem_firmware).data)

    @swagger_auto_schema(
        request_body=UPGRADE_REQUEST_SCHEMA,
        responses={
            200: DeviceModemFirmwareSerializer,
            201: DeviceModemFirmwareSerializer,
        },
    )
    def put(self, request, *args, **kwargs):
        device = self.get_device()
        usb_path = self.requested_usb_path()
        modem_firmware = (
            self.get_queryset().filter(device=device, usb_path=usb_path).first()
            if usb_path is not None
            else None
        )
        serializer = self.get_serializer(modem_firmware, data=request.data)
        serializer.is_valid(raise_exception=True)
        known = set(
            self.get_queryset().filter(device=device).values_list("usb_path", flat=True)
        )
        try:
            operation = start_upgrade(
                device,
                serializer.validated_data["image"],
                upgrade_options=serializer.validated_data.get("upgrade_options"),
                usb_path=usb_path,
                **serializer.schedule_options(serializer.validated_data),
            )
        except ValidationError as error:
            return validation_error_response(error)
        serializer.context["upgrade_operation"] = operation
        created = operation.usb_path not in known
        modem_firmware = self.get_queryset().get(
            device=device, usb_path=operation.usb_path
        )
        return Response(
            self.get_serializer(modem_firmware, context=serializer.context).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @swagger_auto_schema(
        request_body=UPGRADE_REQUEST_SCHEMA,
        responses={
            200: DeviceModemFirmwareSerializer,
            201: DeviceModemFirmwareSerializer,
        },
    )
    def post(self, request, *args, **kwargs):
        return self.put(request, *args, **kwargs)

    @swagger_auto_schema(
        request_body=UPGRADE_REQUEST_SCHEMA,
        responses={
            200: DeviceModemFirmwareSerializer,
            201: DeviceModemFirmwareSerializer,
        },
    )
    def patch(self, request, *args, **kwargs):
        return self.put(request, *args, **kwargs)


class DeviceUpgradeOperationListView(
    DeviceParentMixin, UpgradeOperationMixin, generics.ListAPIView
):
    filterset_class = filters.DeviceUpgradeOperationFilter

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset
        return queryset.filter(device=self.get_device())


category_list = CategoryListView.as_view()
category_detail = CategoryDetailView.as_view()
build_list = BuildListView.as_view()
build_detail = BuildDetailView.as_view()
build_upgrade = BuildUpgradeView.as_view()
firmware_image_list = FirmwareImageListView.as_view()
firmware_image_detail = FirmwareImageDetailView.as_view()
firmware_image_download = FirmwareImageDownloadView.as_view()
batch_upgrade_operation_list = BatchUpgradeOperationListView.as_view()
batch_upgrade_operation_detail = BatchUpgradeOperationDetailView.as_view()
batch_upgrade_operation_cancel = BatchUpgradeOperationCancelView.as_view()
batch_upgrade_operation_pause = BatchUpgradeOperationPauseView.as_view()
batch_upgrade_operation_resume = BatchUpgradeOperationResumeView.as_view()
batch_upgrade_operation_retry_failed = BatchUpgradeOperationRetryFailedView.as_view()
upgrade_operation_list = UpgradeOperationListView.as_view()
upgrade_operation_detail = UpgradeOperationDetailView.as_view()
upgrade_operation_cancel = UpgradeOperationCancelView.as_view()
device_modem_firmware_list = DeviceModemFirmwareListView.as_view()
device_modem_firmware = DeviceModemFirmwareView.as_view()
device_upgrade_operation_list = DeviceUpgradeOperationListView.as_view()
