"""Serializers of the operator API.

Model validation (``full_clean``) runs through openwisp-utils'
``ValidatedModelSerializer``; related-field choices are limited to the
organizations the user manages by openwisp-users' ``FilterSerializerByOrgManaged``.
"""

import swapper
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_yasg.utils import swagger_serializer_method
from rest_framework import serializers
from rest_framework.settings import api_settings

from openwisp_users.api.mixins import FilterSerializerByOrgManaged
from openwisp_utils.api.serializers import ValidatedModelSerializer

from ..base.models import MAX_BATCH_DEVICE_IDS, ModemSelection
from ..inventory import batch_remediations
from ..rollout_display import (
    ROLLOUT_FIELDS,
    SCHEDULE_FIELDS,
    WAVE_FIELDS,
    DisplayState,
    clean_rollout_options,
    display_state,
    rollout_counts,
)
from ..shell_values import usb_path_validator, version_validator
from ..swapper import load_model

ModemCategory = load_model("ModemCategory")
ModemBuild = load_model("ModemBuild")
ModemFirmwareImage = load_model("ModemFirmwareImage")
DeviceModemFirmware = load_model("DeviceModemFirmware")
ModemUpgradeOperation = load_model("ModemUpgradeOperation")
ModemBatchUpgradeOperation = load_model("ModemBatchUpgradeOperation")
Organization = swapper.load_model("openwisp_users", "Organization")
DeviceGroup = swapper.load_model("config", "DeviceGroup")
Location = swapper.load_model("geo", "Location")
Device = swapper.load_model("config", "Device")

TIMESTAMPS = ("created", "modified")
# a dry run's device ids travel in its URL: 100 of them keep the request line
# under the 4 KiB that servers accept by default (gunicorn: 4094 bytes)
MAX_PREVIEW_DEVICE_IDS = 100


class ReadOnlyBlankMixin:
    """Read-only text may be empty: say so in the schema (no ``minLength``,
    and ``""`` among the choices of a model field that may be blank)."""

    def get_fields(self):
        fields = super().get_fields()
        for name, field in fields.items():
            if not field.read_only:
                continue
            if isinstance(field, serializers.CharField):
                field.allow_blank = True
            elif isinstance(field, serializers.ChoiceField) and self._blank(
                field.source or name  # fields are not bound yet
            ):
                field.choices = [("", "")] + list(field.choices.items())
        return fields

    def _blank(self, model_field_name):
        model = getattr(getattr(self, "Meta", None), "model", None)
        try:
            return model._meta.get_field(model_field_name).blank
        except (AttributeError, FieldDoesNotExist):
            return False


class BaseSerializer(
    ReadOnlyBlankMixin, FilterSerializerByOrgManaged, ValidatedModelSerializer
):
    pass


class CategorySerializer(BaseSerializer):
    class Meta:
        ref_name = "ModemUpgraderCategory"
        model = ModemCategory
        fields = ("id", "name", "description", "organization") + TIMESTAMPS
        read_only_fields = TIMESTAMPS

    def validate_organization(self, value):
        if value is None and not self.context["request"].user.is_superuser:
            raise serializers.ValidationError(
                _("Only superusers can create or edit shared categories.")
            )
        return value


class BuildSerializer(BaseSerializer):
    organization = serializers.UUIDField(
        source="category.organization_id", read_only=True, allow_null=True
    )
    category_name = serializers.CharField(source="category.name", read_only=True)

    class Meta:
        ref_name = "ModemUpgraderBuild"
        model = ModemBuild
        fields = (
            "id",
            "category",
            "category_name",
            "organization",
            "version",
            "modem_model",
            "carriers",
            "changelog",
            "status",
        ) + TIMESTAMPS
        read_only_fields = TIMESTAMPS
        # these reach the router's shell: refuse stray whitespace, never fix it
        extra_kwargs = {
            "version": {"trim_whitespace": False},
            "modem_model": {"trim_whitespace": False},
        }


class FirmwareImageSerializer(BaseSerializer):
    """Upload (multipart) of one image of a build; sha256 and size are computed."""

    file = serializers.FileField(
        write_only=True,
        allow_empty_file=False,
        help_text=_("the firmware image (multipart upload)"),
    )
    boards = serializers.ListField(
        child=serializers.CharField(max_length=128),
        required=False,
        help_text=_(
            'router models (as in the device "model" field) validated with '
            "this image; empty means any router. Repeat the form field for "
            "several models."
        ),
    )
    download_url = serializers.SerializerMethodField()

    class Meta:
        ref_name = "ModemUpgraderFirmwareImage"
        model = ModemFirmwareImage
        fields = (
            "id",
            "build",
            "type",
            "boards",
            "file",
            "download_url",
            "sha256",
            "size",
        ) + TIMESTAMPS
        read_only_fields = ("build", "sha256", "size") + TIMESTAMPS
        # the (build, type) pair is checked in validate() against the URL's
        # build, with a message on the field at fault
        validators = []

    def get_download_url(self, obj) -> str:
        url = reverse("modem_upgrader:api_firmware_image_download", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def validate(self, data):
        build = self.context["build"]
        if ModemFirmwareImage.objects.filter(build=build, type=data["type"]).exists():
            raise serializers.ValidationError(
                {"type": _("This build already has an image of this type.")}
            )
        data["build"] = build
        return super().validate(data)


class ImageSummarySerializer(ReadOnlyBlankMixin, serializers.ModelSerializer):
    version = serializers.CharField(source="build.version", read_only=True)
    modem_model = serializers.CharField(source="build.modem_model", read_only=True)

    class Meta:
        ref_name = "ModemUpgraderImageSummary"
        model = ModemFirmwareImage
        fields = ("id", "build", "type", "version", "modem_model")
        read_only_fields = fields


class StatusCountsSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderStatusCounts"

    total = serializers.IntegerField()
    idle = serializers.IntegerField()
    in_progress = serializers.IntegerField(source="in-progress")
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    aborted = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    # flashed, service not restored (health verification)
    no_service = serializers.IntegerField(source="no-service")
    # image on the router, waiting for the window (staging)
    staged = serializers.IntegerField()


class RatesSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderRates"

    success = serializers.FloatField()
    failed = serializers.FloatField()
    aborted = serializers.FloatField()
    cancelled = serializers.FloatField()
    no_service = serializers.FloatField(source="no-service")


class BatchUpgradeOperationSerializer(ReadOnlyBlankMixin, serializers.ModelSerializer):
    """A mass upgrade with its progress; counts come from one aggregate.

    The views annotate the counts (``status_count_annotations()``) so a page
    costs the same number of queries whatever its size; otherwise
    ``load_status_counts()`` reads them in one aggregate per batch.
    """

    build = serializers.UUIDField(source="build_id", read_only=True)
    progress_report = serializers.SerializerMethodField()
    status_counts = serializers.SerializerMethodField()
    rates = serializers.SerializerMethodField()
    bytes_sent = serializers.SerializerMethodField(
        help_text=_("bytes sent to the routers by all its operations")
    )
    device_ids = serializers.ListField(
        child=serializers.UUIDField(),
        read_only=True,
        help_text=_("only these devices (empty: every device of the filters)"),
    )
    build_version = serializers.CharField(source="build.version", read_only=True)
    retry_of = serializers.UUIDField(
        source="retry_of_id",
        read_only=True,
        allow_null=True,
        help_text=_(
            "the mass upgrade whose failed devices this one retries "
            "(null: not a retry)"
        ),
    )
    waves = serializers.SerializerMethodField(
        help_text=_("number of waves (0 until the devices are fanned out)")
    )
    in_flight = serializers.SerializerMethodField(
        help_text=_("devices queued for a worker or upgrading")
    )
    waiting = serializers.SerializerMethodField(help_text=_("devices not started yet"))
    display_state = serializers.SerializerMethodField(
        help_text=_(
            "why devices start now or not: the rollout state, or scheduled "
            "(start time in the future), outside-window (maintenance window "
            "closed), finished"
        )
    )
    display_state_label = serializers.SerializerMethodField()

    class Meta:
        ref_name = "ModemUpgraderBatchUpgradeOperation"
        model = ModemBatchUpgradeOperation
        fields = (
            (
                "id",
                "build",
                "build_version",
                "organization",
                "status",
                "group",
                "location",
                "from_version",
                "device_ids",
                "modems",
                "upgrade_options",
                "retry_of",
            )
            + ROLLOUT_FIELDS
            + (
                "display_state",
                "display_state_label",
                "rollout_state",
                "rollout_reason",
                "current_wave",
                "waves",
                "in_flight",
                "waiting",
                "progress_report",
                "status_counts",
                "rates",
                "bytes_sent",
                "started_at",
                "finished_at",
            )
            + TIMESTAMPS
        )
        read_only_fields = fields

    def _counts(self, obj):
        # annotated by the views; one aggregate for a batch read otherwise
        return obj.load_status_counts()

    def get_progress_report(self, obj) -> str:
        self._counts(obj)
        return str(obj.progress_report)

    @swagger_serializer_method(serializer_or_field=StatusCountsSerializer)
    def get_status_counts(self, obj):
        return StatusCountsSerializer(self._counts(obj)).data

    def get_bytes_sent(self, obj) -> int:
        self._counts(obj)
        return obj.bytes_sent_total or 0

    @swagger_serializer_method(serializer_or_field=RatesSerializer)
    def get_rates(self, obj):
        self._counts(obj)
        return RatesSerializer(obj.rates()).data

    def get_waves(self, obj) -> int:
        return rollout_counts(obj)["waves"]

    def get_in_flight(self, obj) -> int:
        return rollout_counts(obj)["in_flight"]

    def get_waiting(self, obj) -> int:
        return rollout_counts(obj)["waiting"]

    def _display_state(self, obj):
        if "_display_state" not in obj.__dict__:
            obj._display_state = display_state(obj, self.context.get("now"))
        return obj._display_state

    @swagger_serializer_method(
        serializer_or_field=serializers.ChoiceField(choices=DisplayState.choices)
    )
    def get_display_state(self, obj):
        return self._display_state(obj).value

    def get_display_state_label(self, obj) -> str:
        return str(self._display_state(obj).label)


class RolloutOptionsSerializer(serializers.ModelSerializer):
    """The rollout and schedule fields of a batch, as the model defines
    them (limits, defaults, help texts)."""

    class Meta:
        ref_name = "ModemUpgraderRolloutOptions"
        model = ModemBatchUpgradeOperation
        fields = ROLLOUT_FIELDS
        extra_kwargs = {"window_timezone": {"trim_whitespace": False}}


def serializer_error(error):
    """A Django ``ValidationError`` in the API's error shape: the errors of
    no single field under ``non_field_errors`` (as DRF names them), never
    Django's ``__all__``."""
    detail = serializers.as_serializer_error(error)
    if NON_FIELD_ERRORS in detail:
        detail.setdefault(api_settings.NON_FIELD_ERRORS_KEY, []).extend(
            detail.pop(NON_FIELD_ERRORS)
        )
    return detail


def validate_schedule(instance, data, fields):
    """The model's checks of a schedule or rollout (see
    ``clean_rollout_options``), as a 400."""
    values = {field: data[field] for field in fields if field in data}
    try:
        clean_rollout_options(instance, values)
    except DjangoValidationError as error:
        raise serializers.ValidationError(serializer_error(error))


class BatchUpgradeSerializer(FilterSerializerByOrgManaged, serializers.Serializer):
    """Options of a mass upgrade (POST) and of its dry run (GET)."""

    class Meta:
        ref_name = "ModemUpgraderBatchUpgrade"

    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.all(),
        required=False,
        allow_null=True,
        help_text=_(
            "organization whose devices are upgraded: required for shared "
            "builds when the user manages several organizations"
        ),
    )
    group = serializers.PrimaryKeyRelatedField(
        queryset=DeviceGroup.objects.all(), required=False, allow_null=True
    )
    location = serializers.PrimaryKeyRelatedField(
        queryset=Location.objects.all(), required=False, allow_null=True
    )
    from_version = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=64,
        validators=[version_validator],
        help_text=_("only devices whose modem currently runs this version"),
    )
    device_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=MAX_BATCH_DEVICE_IDS,
        help_text=_(
            "only these devices (ids of the organization's devices), e.g. the "
            "devices of a compliance row"
        ),
    )
    modems = serializers.ChoiceField(
        choices=ModemSelection.choices,
        default=ModemSelection.FIRST,
        help_text=_(
            "a router with several modems matching the build: flash the first "
            "one (by USB path), or every one, one after the other (one "
            "operation per modem)"
        ),
    )
    upgrade_options = serializers.JSONField(
        required=False,
        help_text=_("options of the upgrader (see the image type's schema)"),
    )

    def get_fields(self):
        fields = super().get_fields()
        # the rollout: concurrency limit, waves, automatic stop, schedule
        fields.update(RolloutOptionsSerializer().get_fields())
        return fields

    def validate_upgrade_options(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError(_("Give a JSON object."))
        return value

    def validate(self, data):
        """Every mistake at once: the rollout's and the filters' (one
        request shows them all)."""
        errors = {}
        try:
            validate_schedule(ModemBatchUpgradeOperation(), data, ROLLOUT_FIELDS)
        except serializers.ValidationError as error:
            errors.update(error.detail)
        # without the organization, the filters cannot be checked
        organization = self._organization(data.get("organization"), errors)
        data["organization"] = organization
        device_ids = sorted({str(pk) for pk in data.get("device_ids") or []})
        if device_ids and organization is not None:
            found = Device.objects.filter(
                pk__in=device_ids, organization=organization
            ).count()
            if found != len(device_ids):
                errors["device_ids"] = [
                    _("Unknown devices or of another organization.")
                ]
        data["device_ids"] = device_ids
        for field in ("group", "location"):
            related = data.get(field)
            if (
                related is not None
                and organization is not None
                and related.organization_id != organization.pk
            ):
                errors[field] = [
                    _(
                        "It belongs to another organization than the "
                        "devices to upgrade."
                    )
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def _organization(self, organization, errors):
        """The organization whose devices are upgraded; ``None`` with its
        error added to ``errors`` when it cannot be told."""
        build = self.context["build"]
        build_organization_id = build.category.organization_id
        if build_organization_id is not None:
            if organization is not None and organization.pk != build_organization_id:
                errors["organization"] = [
                    _("This build belongs to another organization.")
                ]
                return None
            return build.category.organization
        if organization is not None:
            return organization
        user = self.context["request"].user
        managed = [] if user.is_superuser else list(user.organizations_managed)
        if len(managed) != 1:
            errors["organization"] = [
                _(
                    "This build is shared: give the organization whose "
                    "devices are upgraded."
                )
            ]
            return None
        return Organization.objects.get(pk=managed[0])

    @staticmethod
    def batch_filters(data):
        """The device filters of a batch, from validated data."""
        return {
            "group": data.get("group"),
            "location": data.get("location"),
            "from_version": data.get("from_version", ""),
            "device_ids": data.get("device_ids") or [],
            "modems": data.get("modems", ModemSelection.FIRST),
        }

    @staticmethod
    def rollout_options(data):
        """The rollout fields given (the others keep the model's defaults)."""
        return {field: data[field] for field in ROLLOUT_FIELDS if field in data}


class DryRunQuerySerializer(BatchUpgradeSerializer):
    class Meta:
        ref_name = "ModemUpgraderDryRunQuery"

    upgrade_options = None
    # in the URL here (see MAX_PREVIEW_DEVICE_IDS); a mass upgrade's POST
    # takes up to MAX_BATCH_DEVICE_IDS
    device_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=MAX_PREVIEW_DEVICE_IDS,
        help_text=_("only these devices (ids of the organization's devices)"),
    )
    limit = serializers.IntegerField(
        min_value=0,
        max_value=1000,
        default=100,
        help_text=_("at most this many devices listed in each list"),
    )

    def get_fields(self):
        # of the rollout, what splits the devices into waves and the limit
        # of devices at once: both decide the expected duration
        fields = super().get_fields()
        for name in set(ROLLOUT_FIELDS) - set(WAVE_FIELDS) - {"max_concurrent"}:
            del fields[name]
        return fields


class PreviewModemSerializer(ReadOnlyBlankMixin, serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderPreviewModem"

    usb_path = serializers.CharField(read_only=True)
    imei = serializers.CharField(source="modem_imei", read_only=True)
    firmware_version = serializers.CharField(
        source="modem_firmware_version", read_only=True
    )


class PreviewDeviceSerializer(ReadOnlyBlankMixin, serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderPreviewDevice"

    id = serializers.UUIDField(source="pk", read_only=True)
    name = serializers.CharField(read_only=True)
    model = serializers.CharField(read_only=True, help_text=_("router model"))
    modem_model = serializers.CharField(read_only=True, allow_null=True)
    modem_firmware_version = serializers.CharField(read_only=True, allow_null=True)
    usb_path = serializers.CharField(
        source="target_usb_path",
        read_only=True,
        allow_null=True,
        help_text=_("the modem the upgrade would flash (first)"),
    )
    imei = serializers.CharField(
        source="target_imei",
        read_only=True,
        allow_null=True,
        help_text=_("IMEI of that modem"),
    )
    image = serializers.UUIDField(
        source="target_image_id", allow_null=True, read_only=True
    )


class PreviewEligibleDeviceSerializer(PreviewDeviceSerializer):
    class Meta:
        ref_name = "ModemUpgraderPreviewEligibleDevice"

    matching_modems = serializers.IntegerField(
        read_only=True,
        help_text=_("modems of the router that match the build and filters"),
    )
    modems_flashed = PreviewModemSerializer(
        many=True,
        read_only=True,
        help_text=_("the modems the mass upgrade flashes, in this order"),
    )
    modems_left_out = PreviewModemSerializer(
        many=True,
        read_only=True,
        help_text=_("matching modems left as they are (only the first one is flashed)"),
    )


class ExcludedDeviceSerializer(PreviewDeviceSerializer):
    class Meta:
        ref_name = "ModemUpgraderExcludedDevice"

    reason = serializers.CharField(source="exclusion_reason", read_only=True)
    reason_label = serializers.CharField(
        read_only=True,
        help_text=_(
            "the reason in words; a router whose last detection could not reach "
            "it says 'router unreachable' with the detection's reason"
        ),
    )


class ExpectedDurationSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderExpectedDuration"

    seconds = serializers.IntegerField(
        help_text=_("expected duration at these limits (estimate.py)")
    )
    text = serializers.CharField(help_text=_("the same, for people: ~34 h"))
    in_flight = serializers.IntegerField(help_text=_("upgrades at once"))
    limited_by = serializers.ChoiceField(
        choices=("batch", "installation"),
        help_text=_(
            "the limit that sets in_flight: the batch's max_concurrent or "
            "the installation-wide limit"
        ),
    )
    per_upgrade_seconds = serializers.IntegerField()
    transfer_seconds = serializers.IntegerField()
    image_size = serializers.IntegerField(help_text=_("the largest image, bytes"))
    link_rate = serializers.IntegerField(help_text=_("assumed, bits per second"))
    flash_seconds = serializers.IntegerField(help_text=_("assumed per flash"))


class DryRunSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderDryRun"

    organization = serializers.UUIDField()
    modems = serializers.ChoiceField(choices=ModemSelection.choices)
    devices_count = serializers.IntegerField()
    multi_modem_count = serializers.IntegerField(
        help_text=_("routers with more than one modem matching the build")
    )
    modems_count = serializers.IntegerField(
        help_text=_("modems the mass upgrade flashes (one operation each)")
    )
    waves = serializers.ListField(
        child=serializers.IntegerField(),
        help_text=_("devices per wave, the canary wave first"),
    )
    excluded_count = serializers.IntegerField()
    expected_duration = ExpectedDurationSerializer()
    devices = PreviewEligibleDeviceSerializer(many=True)
    excluded = ExcludedDeviceSerializer(many=True)


class BatchRemediationSerializer(ReadOnlyBlankMixin, serializers.ModelSerializer):
    build_version = serializers.CharField(
        source="image.build.version", read_only=True, default=None
    )

    class Meta:
        ref_name = "ModemUpgraderBatchRemediation"
        model = ModemUpgradeOperation
        fields = (
            "id",
            "device",
            "remediation_of",
            "build_version",
            "status",
            "finished_at",
        )
        read_only_fields = fields


class UpgradeOperationSerializer(ReadOnlyBlankMixin, serializers.ModelSerializer):
    device_name = serializers.CharField(source="device.name", read_only=True)
    organization = serializers.UUIDField(
        source="device.organization_id", read_only=True
    )
    image = ImageSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        ref_name = "ModemUpgraderUpgradeOperation"
        model = ModemUpgradeOperation
        fields = (
            (
                "id",
                "device",
                "device_name",
                "organization",
                "image",
                # "select carrier image": the stored image made active
                # (image is null then: nothing is transferred)
                "target_carrier_image",
                "batch",
                "status",
                "progress",
                "flash_started",
                "attempts",
                "bytes_sent",
                "upgrade_options",
                "wave",
            )
            + SCHEDULE_FIELDS
            + (
                "started_at",
                "last_progress_at",
                "finished_at",
                # download ahead, flash in window (the stage_ahead option)
                "staged_at",
                "staged_until",
            )
            + TIMESTAMPS
        )
        read_only_fields = fields


class UpgradeOperationDetailSerializer(UpgradeOperationSerializer):
    class Meta(UpgradeOperationSerializer.Meta):
        ref_name = "ModemUpgraderUpgradeOperationDetail"
        # health: the pre-flight baseline, the remediation and the
        # post-flash readings (health.py); remediation_of: the upgrade whose
        # service this one's re-flash of the previous build restores
        fields = UpgradeOperationSerializer.Meta.fields + (
            "log",
            "health",
            "remediation_of",
        )
        read_only_fields = fields


DETECTED_FIELDS = (
    "installed",
    "modem_manufacturer",
    "modem_model",
    "modem_revision",
    "modem_firmware_version",
    "modem_imei",
    "modem_detected_at",
    "detection_attempted_at",
    "detection_status",
    "detection_reason",
    "unexplained_change",
    "unexplained_change_at",
    # SIM and carrier images (detection.carrier_reading)
    "sim_state",
    "sim_iccid",
    "sim_imsi",
    "sim_network",
    "sim_operator",
    "carrier_images",
    "carrier_image",
    "carrier_selection",
)


class ScheduleOptionsSerializer(serializers.ModelSerializer):
    """When a single upgrade may start, as the operation model defines it."""

    class Meta:
        ref_name = "ModemUpgraderScheduleOptions"
        model = ModemUpgradeOperation
        fields = SCHEDULE_FIELDS
        extra_kwargs = {"window_timezone": {"trim_whitespace": False}}


class DeviceModemFirmwareSerializer(ReadOnlyBlankMixin, serializers.ModelSerializer):
    """What one modem of a device runs; setting ``image`` starts its upgrade.

    ``usb_path`` chooses the modem on routers with several.
    """

    device_name = serializers.CharField(source="device.name", read_only=True)
    # a list (a JSON field would be described as an object in the schema)
    carrier_images = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text=_("index, name and version of each image the modem stores"),
    )
    organization = serializers.UUIDField(
        source="device.organization_id", read_only=True
    )
    image = serializers.PrimaryKeyRelatedField(
        queryset=ModemFirmwareImage.objects.none(),
        # null when read: a modem detected but never upgraded from here
        allow_null=True,
        help_text=_("the image to flash: setting it starts the upgrade"),
    )
    upgrade_options = serializers.JSONField(
        write_only=True,
        required=False,
        help_text=_("options of the upgrader (see the image type's schema)"),
    )
    upgrade_operation = serializers.SerializerMethodField()
    usb_path = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        validators=[usb_path_validator],
        help_text=_(
            "the modem (sysfs USB path, e.g. 1-1.2); may be omitted when the "
            "router has one modem"
        ),
    )

    class Meta:
        ref_name = "ModemUpgraderDeviceModemFirmware"
        model = DeviceModemFirmware
        fields = (
            (
                "device",
                "device_name",
                "organization",
                "usb_path",
                "image",
                "upgrade_options",
                "upgrade_operation",
            )
            + DETECTED_FIELDS
            + TIMESTAMPS
        )
        read_only_fields = ("device",) + DETECTED_FIELDS + TIMESTAMPS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        device = self.context.get("device")
        if device is not None:
            # images of the device's organization and shared ones
            self.fields["image"].queryset = ModemFirmwareImage.objects.filter(
                Q(build__category__organization_id=device.organization_id)
                | Q(build__category__organization__isnull=True)
            )

    def get_fields(self):
        fields = super().get_fields()
        # when the upgrade may start: given when it is created, never read back
        for name, field in ScheduleOptionsSerializer().get_fields().items():
            field.write_only = True
            fields[name] = field
        return fields

    def validate_image(self, value):
        if value is None:
            raise serializers.ValidationError(_("Choose the image to flash."))
        return value

    def validate(self, data):
        validate_schedule(ModemUpgradeOperation(), data, SCHEDULE_FIELDS)
        return super().validate(data)

    @staticmethod
    def schedule_options(data):
        return {field: data[field] for field in SCHEDULE_FIELDS if field in data}

    def validate_upgrade_options(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError(_("Give a JSON object."))
        return value

    @swagger_serializer_method(
        serializer_or_field=serializers.UUIDField(allow_null=True, read_only=True)
    )
    def get_upgrade_operation(self, obj):
        operation = self.context.get("upgrade_operation")
        return str(operation.pk) if operation else None


class DeviceModemFirmwareListSerializer(DeviceModemFirmwareSerializer):
    image = ImageSummarySerializer(read_only=True, allow_null=True)

    class Meta(DeviceModemFirmwareSerializer.Meta):
        ref_name = "ModemUpgraderDeviceModemFirmwareList"
        fields = tuple(
            f
            for f in DeviceModemFirmwareSerializer.Meta.fields
            if f not in ("upgrade_options", "upgrade_operation")
        )


class CancelResultSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderCancelResult"

    cancelled = serializers.ListField(child=serializers.UUIDField())
    refused = serializers.DictField(child=serializers.CharField())


class BatchUpgradeOperationDetailSerializer(BatchUpgradeOperationSerializer):
    """One mass upgrade, with the re-flashes of the previous build that its
    remediation started (not its operations: not in ``status_counts``)."""

    remediations = serializers.SerializerMethodField(
        help_text=_(
            "re-flashes of the previous build after its upgrades without "
            "service; each device is counted once in status_counts"
        )
    )

    class Meta(BatchUpgradeOperationSerializer.Meta):
        ref_name = "ModemUpgraderBatchUpgradeOperationDetail"
        fields = BatchUpgradeOperationSerializer.Meta.fields + ("remediations",)
        read_only_fields = fields

    @swagger_serializer_method(
        serializer_or_field=BatchRemediationSerializer(many=True)
    )
    def get_remediations(self, obj):
        return BatchRemediationSerializer(batch_remediations(obj), many=True).data
