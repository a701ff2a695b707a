"""Operator API of the modem inventory: on-demand detection, history,
acknowledging unexplained changes, compliance.

Organization scoping and permissions as in ``views.py``: devices outside the
user's organizations are 404 (one device) or 400 (a list naming them).
"""

import swapper
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy as _
from drf_yasg.utils import swagger_auto_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from openwisp_users.api.permissions import DjangoModelPermissions, IsOrganizationManager

from ..base.models import usb_path_validator
from ..detection import acknowledge_unexplained_change, queue_detection
from ..exceptions import UpgradeNotAllowed
from ..inventory import carrier_image_mismatches, compliance_table
from ..recovery import start_recovery
from ..statuses import DetectionStatus
from ..swapper import load_model
from .serializers import ReadOnlyBlankMixin, UpgradeOperationDetailSerializer
from .views import (
    DETAIL_SCHEMA,
    ActionPermission,
    DeviceParentMixin,
    ModelPermissions,
    ProtectedAPIMixin,
)

Device = swapper.load_model("config", "Device")
DeviceGroup = swapper.load_model("config", "DeviceGroup")
Location = swapper.load_model("geo", "Location")
Organization = swapper.load_model("openwisp_users", "Organization")
DeviceModemDetection = load_model("DeviceModemDetection")
DeviceModemFirmware = load_model("DeviceModemFirmware")
ModemUpgradeOperation = load_model("ModemUpgradeOperation")
ModemHistory = load_model("ModemHistory")

# a detection request may name this many devices at most
MAX_DETECTION_DEVICES = 10000


class PostIsChange(ModelPermissions):
    """POST here changes existing rows (detection results, a flag)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "POST": ["%(app_label)s.change_%(model_name)s"],
    }


class DetectionQueuedSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderDetectionQueued"

    queued = serializers.IntegerField(help_text=_("devices whose detection is queued"))
    devices = serializers.ListField(child=serializers.UUIDField())


class DetectionFilterSerializer(serializers.Serializer):
    """Which devices to detect: every filter given must match (AND)."""

    class Meta:
        ref_name = "ModemUpgraderDetectionFilter"

    devices = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=MAX_DETECTION_DEVICES,
        help_text=_("device ids"),
    )
    organization = serializers.UUIDField(required=False)
    group = serializers.UUIDField(required=False)
    location = serializers.UUIDField(required=False)
    modem_model = serializers.CharField(required=False, max_length=64)
    modem_firmware_version = serializers.CharField(required=False, max_length=64)
    never_detected = serializers.BooleanField(
        required=False, help_text=_("only devices never detected")
    )

    def validate(self, data):
        if not data:
            raise serializers.ValidationError(
                _("Give at least one filter (e.g. devices or organization).")
            )
        return data


def detection_queued_response(device_ids):
    device_ids = [str(pk) for pk in device_ids]
    data = DetectionQueuedSerializer(
        {"queued": len(device_ids), "devices": device_ids}
    ).data
    return Response(data, status=status.HTTP_202_ACCEPTED)


class DeviceDetectView(DeviceParentMixin, ProtectedAPIMixin, generics.GenericAPIView):
    """Queues the detection of one device's modems (202)."""

    queryset = DeviceModemDetection.objects.none()
    permission_classes = (IsOrganizationManager, PostIsChange)
    serializer_class = serializers.Serializer
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(
        request_body=serializers.Serializer,
        responses={202: DetectionQueuedSerializer},
    )
    def post(self, request, *args, **kwargs):
        device = self.get_device()
        queue_detection([device])
        return detection_queued_response([device.pk])


class DetectView(ProtectedAPIMixin, generics.GenericAPIView):
    """Queues the detection of the devices matching the filters (202)."""

    queryset = DeviceModemDetection.objects.none()
    permission_classes = (IsOrganizationManager, PostIsChange)
    serializer_class = DetectionFilterSerializer
    pagination_class = None
    filter_backends = ()

    def managed_devices(self):
        return Device.objects.filter(self.managed_filter("organization"))

    @swagger_auto_schema(responses={202: DetectionQueuedSerializer})
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        devices = self.managed_devices()
        if "devices" in data:
            wanted = set(data["devices"])
            devices = devices.filter(pk__in=wanted)
            if devices.count() != len(wanted):
                raise serializers.ValidationError(
                    {"devices": _("Unknown devices or of another organization.")}
                )
        for field, model in (
            ("organization", Organization),
            ("group", DeviceGroup),
            ("location", Location),
        ):
            if field not in data:
                continue
            lookup = (
                "devicelocation__location_id" if field == "location" else f"{field}_id"
            )
            devices = devices.filter(**{lookup: data[field]})
        for field in ("modem_model", "modem_firmware_version"):
            if field in data:
                devices = devices.filter(
                    Exists(
                        DeviceModemFirmware.objects.filter(
                            device_id=OuterRef("pk"), **{field: data[field]}
                        )
                    )
                )
        if "never_detected" in data:
            detected = Exists(
                DeviceModemDetection.objects.filter(device_id=OuterRef("pk"))
            )
            devices = devices.filter(~detected if data["never_detected"] else detected)
        device_ids = list(devices.values_list("pk", flat=True)[:MAX_DETECTION_DEVICES])
        queue_detection(devices.filter(pk__in=device_ids))
        return detection_queued_response(device_ids)


class ModemHistorySerializer(ReadOnlyBlankMixin, serializers.ModelSerializer):
    class Meta:
        ref_name = "ModemUpgraderModemHistory"
        model = ModemHistory
        fields = (
            "id",
            "device",
            "modem",
            "usb_path",
            "detected_at",
            "manufacturer",
            "model",
            "revision",
            "firmware_version",
            "imei",
            "source",
            "operation",
            "unexplained",
            "sim_iccid",
            "sim_network",
            "carrier_image",
        )
        read_only_fields = fields


class ModemHistoryFilterSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderModemHistoryFilter"

    device = serializers.UUIDField(required=False)
    unexplained = serializers.BooleanField(
        required=False, allow_null=True, default=None
    )


class ModemHistoryListView(ProtectedAPIMixin, generics.ListAPIView):
    """Changes seen on modems, newest first; ``?device=`` ``?unexplained=``."""

    queryset = ModemHistory.objects.all()
    serializer_class = ModemHistorySerializer
    organization_field = "device__organization"
    ordering = ("-detected_at",)
    ordering_fields = ("detected_at", "created")

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset
        query = ModemHistoryFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        if "device" in query.validated_data:
            queryset = queryset.filter(device_id=query.validated_data["device"])
        if query.validated_data.get("unexplained") is not None:
            queryset = queryset.filter(unexplained=query.validated_data["unexplained"])
        return queryset


class AcknowledgeSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderAcknowledge"

    usb_path = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text=_("the modem; omitted: every flagged modem of the device"),
    )

    def validate_usb_path(self, value):
        if value:
            try:
                usb_path_validator(value)
            except Exception:
                raise serializers.ValidationError(_("Not a USB path."))
        return value


class AcknowledgedSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderAcknowledged"

    acknowledged = serializers.ListField(
        # "" for a modem known before its USB path was
        child=serializers.CharField(allow_blank=True),
        help_text=_("USB paths of the modems cleared"),
    )


class AcknowledgeView(DeviceParentMixin, ProtectedAPIMixin, generics.GenericAPIView):
    """Clears the unexplained-change flag of a device's modems (200), 409
    when none is flagged."""

    queryset = DeviceModemFirmware.objects.none()
    permission_classes = (IsOrganizationManager, PostIsChange)
    serializer_class = AcknowledgeSerializer
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(responses={200: AcknowledgedSerializer, 409: DETAIL_SCHEMA})
    def post(self, request, *args, **kwargs):
        device = self.get_device()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flagged = DeviceModemFirmware.objects.filter(
            device=device, unexplained_change=True
        )
        if "usb_path" in serializer.validated_data:
            flagged = flagged.filter(usb_path=serializer.validated_data["usb_path"])
        acknowledged = [
            usb_path
            for pk, usb_path in flagged.values_list("pk", "usb_path")
            if acknowledge_unexplained_change(device, pk)
        ]
        if not acknowledged:
            return Response(
                {"detail": _("No unexplained change to acknowledge.")},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(AcknowledgedSerializer({"acknowledged": acknowledged}).data)


class RecoverSerializer(AcknowledgeSerializer):
    class Meta:
        ref_name = "ModemUpgraderRecover"

    usb_path = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text=_("the modem stuck in flash mode; omitted: the device's only one"),
    )


class RecoverView(DeviceParentMixin, ProtectedAPIMixin, generics.GenericAPIView):
    """Starts the recovery run of a device's modem stuck in a flashing mode
    (201, the operation), with the image that was being flashed; 409 with
    the reason when there is none to start."""

    queryset = ModemUpgradeOperation.objects.none()
    permission_classes = (IsOrganizationManager, ActionPermission)
    permission_action = "recover"
    serializer_class = RecoverSerializer
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(
        responses={201: UpgradeOperationDetailSerializer, 409: DETAIL_SCHEMA}
    )
    def post(self, request, *args, **kwargs):
        device = self.get_device()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stuck = DeviceModemFirmware.objects.filter(
            device=device, detection_status=DetectionStatus.FLASHING
        )
        if "usb_path" in serializer.validated_data:
            stuck = stuck.filter(usb_path=serializer.validated_data["usb_path"])
        modems = list(stuck[:2])
        if len(modems) != 1:
            return Response(
                {
                    "detail": _(
                        "No modem of this device is stuck in a flashing mode."
                        if not modems
                        else "Several modems are stuck: name one (usb_path)."
                    )
                },
                status=status.HTTP_409_CONFLICT,
            )
        try:
            operation = start_recovery(modems[0])
        except UpgradeNotAllowed as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(
            UpgradeOperationDetailSerializer(operation).data,
            status=status.HTTP_201_CREATED,
        )


class ComplianceRowSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderComplianceRow"

    organization = serializers.UUIDField()
    organization_name = serializers.CharField()
    modem_model = serializers.CharField(
        allow_blank=True, help_text=_("empty: devices with no known modem")
    )
    carrier = serializers.CharField(
        allow_blank=True,
        help_text=_("the SIM's network (MCC-MNC digits); empty: not known"),
    )
    devices = serializers.IntegerField()
    versions = serializers.DictField(
        child=serializers.IntegerField(), help_text=_("devices per firmware version")
    )
    newest_versions = serializers.ListField(child=serializers.CharField())
    behind = serializers.IntegerField()
    unreachable = serializers.IntegerField()
    never_detected = serializers.IntegerField()


class ComplianceQuerySerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderComplianceQuery"

    organization = serializers.UUIDField(required=False)


class ComplianceView(ProtectedAPIMixin, generics.GenericAPIView):
    """Per organization and modem model: devices per firmware version,
    behind the newest build, unreachable, never detected."""

    queryset = DeviceModemFirmware.objects.none()
    serializer_class = ComplianceRowSerializer
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(
        query_serializer=ComplianceQuerySerializer,
        responses={200: ComplianceRowSerializer(many=True)},
    )
    def get(self, request, *args, **kwargs):
        query = ComplianceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user = request.user
        organization_ids = (
            None if user.is_superuser else list(user.organizations_managed)
        )
        wanted = query.validated_data.get("organization")
        if wanted is not None:
            if organization_ids is not None and str(wanted) not in map(
                str, organization_ids
            ):
                raise serializers.ValidationError(
                    {"organization": _("Unknown organization.")}
                )
            organization_ids = [wanted]
        rows = compliance_table(organization_ids)
        return Response(ComplianceRowSerializer(rows, many=True).data)


class CarrierImageMismatchSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderCarrierImageMismatch"

    device = serializers.UUIDField(source="modem.device_id")
    device_name = serializers.CharField()
    organization_name = serializers.CharField()
    usb_path = serializers.CharField(source="modem.usb_path")
    sim_network = serializers.CharField(source="modem.sim_network")
    carrier_image = serializers.CharField(source="modem.carrier_image")
    reason = serializers.CharField()
    sim_image = serializers.CharField(
        allow_blank=True,
        help_text=_(
            "the stored image made for the SIM's network (POST it to the "
            "device's select-carrier-image/); empty: none is"
        ),
    )


class CarrierImageMismatchView(ProtectedAPIMixin, generics.GenericAPIView):
    """Modems whose active stored carrier image does not suit their SIM."""

    queryset = DeviceModemFirmware.objects.none()
    serializer_class = CarrierImageMismatchSerializer
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(responses={200: CarrierImageMismatchSerializer(many=True)})
    def get(self, request, *args, **kwargs):
        user = request.user
        organization_ids = (
            None if user.is_superuser else list(user.organizations_managed)
        )
        rows = carrier_image_mismatches(organization_ids)
        return Response(CarrierImageMismatchSerializer(rows, many=True).data)


device_detect = DeviceDetectView.as_view()
detect = DetectView.as_view()
modem_history_list = ModemHistoryListView.as_view()
recover = RecoverView.as_view()
acknowledge = AcknowledgeView.as_view()
compliance = ComplianceView.as_view()
carrier_image_mismatch = CarrierImageMismatchView.as_view()
