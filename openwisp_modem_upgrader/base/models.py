"""Abstract models: fields, validation and small derived values only.

Starting, cancelling and finishing upgrades lives in ``upgrade.py``; batch
previews and fan-out in ``batch.py``.
"""

import hashlib
import os
import uuid

import swapper
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator
from django.db import models, transaction
from django.db.models import Q, Sum
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _
from private_storage.fields import PrivateFileField

from openwisp_users.mixins import OrgMixin, ShareableOrgMixin
from openwisp_utils.base import TimeStampedEditableModel

from .. import settings as app_settings
from ..carriers import CarrierImageNameValidator, carrier_key, parse_carriers
from ..compatibility import (
    VERSION_KEY_MAX_LENGTH,
    BuildStatus,
    check_build_for_batch,
    check_build_may_start,
    check_build_transition,
    check_carrier,
    check_image_for_device,
    check_modem,
    version_key,
)
from ..image_stream import open_image
from ..shell_values import (
    modem_model_validator,
    usb_path_validator,
    version_validator,
)
from ..statuses import (  # noqa: F401 (the paths third parties import)
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    DetectionStatus,
    ModemChangeSource,
    ModemSelection,
    OperationStatus,
    operation_is_cancellable,
    read_status_counts,
    status_count_annotations,
)
from ..swapper import get_model_name, load_model
from ..upgraders import get_upgrader_choices, get_upgrader_class
from ..upgraders.stream_checks import IMAGE_HEAD_SIZE
from .rollout import RolloutMixin, RolloutState, ScheduleMixin  # noqa: F401


def validate_carriers(value):
    parse_carriers(value)


def validate_policy_carrier(value):
    if len(parse_carriers(value)) > 1:
        raise ValidationError(_("Give one network (MCC-MNC), or none."))


# the device-id filter of a batch is sent as a form/JSON list: bound it
MAX_BATCH_DEVICE_IDS = 10000


class UpgradeOptionsMixin(models.Model):
    upgrade_options = models.JSONField(_("upgrade options"), default=dict, blank=True)

    class Meta:
        abstract = True

    def validate_upgrade_options(self, upgrader_type):
        try:
            upgrader_class = get_upgrader_class(upgrader_type)
        except LookupError as error:
            raise ValidationError({"upgrade_options": str(error)})
        upgrader_class.validate_upgrade_options(self.upgrade_options)

    def clean_stage_ahead(self, schedule):
        """Staging waits for a window: without one there is nothing to
        stage ahead of (``schedule`` holds the window: the batch's for a
        device of a mass upgrade)."""
        stage_ahead = (self.upgrade_options or {}).get("stage_ahead")
        if stage_ahead is True and not schedule.has_window:
            raise ValidationError(
                {
                    "upgrade_options": _(
                        "stage_ahead: staging the image ahead of the window "
                        "needs a maintenance window (window start and end)."
                    )
                }
            )


class AbstractModemCategory(ShareableOrgMixin, TimeStampedEditableModel):
    name = models.CharField(max_length=64, db_index=True)
    description = models.TextField(blank=True)

    class Meta:
        abstract = True
        verbose_name = _("Modem Firmware Category")
        verbose_name_plural = _("Modem Firmware Categories")
        unique_together = ("name", "organization")

    def __str__(self):
        return self.name


class AbstractModemBuild(TimeStampedEditableModel):
    category = models.ForeignKey(
        get_model_name("ModemCategory"),
        on_delete=models.CASCADE,
        verbose_name=_("modem firmware category"),
    )
    version = models.CharField(
        max_length=64,
        db_index=True,
        validators=[version_validator],
        help_text=_(
            "modem firmware version as the modem reports it "
            "(second line of AT#SWPKGV), e.g. M0R.010000-B022"
        ),
    )
    modem_model = models.CharField(
        _("modem model"),
        max_length=64,
        db_index=True,
        validators=[modem_model_validator],
        help_text=_(
            "exact model and variant this build targets, as reported by the "
            "modem (e.g. FN990A28): never pushed to any other variant"
        ),
    )
    changelog = models.TextField(
        _("change log"), blank=True, help_text=_("release notes, in Markdown")
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=BuildStatus.choices,
        default=BuildStatus.DRAFT,
        db_index=True,
        help_text=_(
            "draft: upgrades of single devices and of a chosen test group only; "
            "released: the target of the fleet (compliance) and of mass "
            "upgrades; withdrawn: no new upgrade"
        ),
    )
    carriers = models.CharField(
        _("carriers"),
        max_length=255,
        blank=True,
        validators=[validate_carriers],
        help_text=_(
            "the SIM networks (MCC-MNC, e.g. 310-410, 222-10) this build is "
            'for; empty or "generic": every network'
        ),
    )
    # ``carriers`` as ``,310410,22210,`` (carriers.carrier_key): "targets the
    # SIM's network" is one LIKE in SQL
    carrier_key = models.CharField(
        max_length=255, editable=False, blank=True, db_index=True
    )
    # ``version`` in an order-preserving form (compatibility.version_key):
    # "the highest released version" is one ORDER BY in SQL
    version_key = models.CharField(
        max_length=VERSION_KEY_MAX_LENGTH, editable=False, blank=True
    )

    class Meta:
        abstract = True
        verbose_name = _("Modem Firmware Build")
        verbose_name_plural = _("Modem Firmware Builds")
        unique_together = ("category", "version")
        ordering = ("-created",)

    def __str__(self):
        try:
            return f"{self.category} {self.modem_model} {self.version}"
        except ObjectDoesNotExist:
            return self.version

    def clean(self):
        if not self._state.adding and self.pk:
            old_status = (
                type(self)
                .objects.filter(pk=self.pk)
                .values_list("status", flat=True)
                .first()
            )
            check_build_transition(old_status, self.status)

    def save(self, *args, **kwargs):
        self.version_key = version_key(self.version)
        networks = parse_carriers(self.carriers)
        self.carrier_key = carrier_key(networks)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "version" in update_fields:
            kwargs["update_fields"] = {*update_fields, "version_key"}
        if update_fields is not None and "carriers" in update_fields:
            kwargs["update_fields"] = {*kwargs["update_fields"], "carrier_key"}
        super().save(*args, **kwargs)

    @property
    def networks(self):
        """The MCC-MNCs this build targets; empty: every network."""
        return [n for n in self.carrier_key.split(",") if n]

    @property
    def organization_id(self):
        return self.category.organization_id if self.category_id else None


def get_private_storage():
    # a callable keeps the storage's path out of the migrations
    return app_settings.PRIVATE_STORAGE_INSTANCE


def get_image_upload_path(instance, filename):
    return f"{instance.build.pk}/{os.path.basename(filename)}"


class AbstractModemFirmwareImage(TimeStampedEditableModel):
    build = models.ForeignKey(
        get_model_name("ModemBuild"), on_delete=models.CASCADE, related_name="images"
    )
    file = PrivateFileField(
        _("file"),
        upload_to=get_image_upload_path,
        storage=get_private_storage,
        max_length=255,
    )
    type = models.CharField(
        _("upgrader type"),
        max_length=64,
        choices=get_upgrader_choices,
        help_text=_("which upgrader flashes this image"),
    )
    boards = models.JSONField(
        _("compatible boards"),
        default=list,
        blank=True,
        help_text=_(
            'router models (as in the device "model" field) validated with '
            "this image; empty means any router"
        ),
    )
    sha256 = models.CharField(max_length=64, editable=False, blank=True)
    size = models.PositiveBigIntegerField(editable=False, default=0)

    class Meta:
        abstract = True
        verbose_name = _("Modem Firmware Image")
        verbose_name_plural = _("Modem Firmware Images")
        unique_together = ("build", "type")

    def __str__(self):
        try:
            return f"{self.build} ({self.type})"
        except ObjectDoesNotExist:
            return self.type

    def clean(self):
        upgrader_class = None
        if self.type:
            try:
                upgrader_class = get_upgrader_class(self.type)
            except LookupError as error:
                raise ValidationError({"type": str(error)})
            if self.build_id and not upgrader_class.supports_modem(
                self.build.modem_model
            ):
                raise ValidationError(
                    {
                        "type": _(
                            'This upgrader cannot flash "%(model)s" modems, '
                            "the model the build targets."
                        )
                        % {"model": self.build.modem_model}
                    }
                )
        if not isinstance(self.boards, list) or not all(
            isinstance(board, str) and board.strip() for board in self.boards
        ):
            raise ValidationError(
                {"boards": _('Give a list of router models, e.g. ["Model A"].')}
            )
        self._clean_file(upgrader_class)

    def _clean_file(self, upgrader_class):
        new_file = not getattr(self.file, "_committed", True)
        if not self.file or not (new_file or self._state.adding):
            return
        size = self.file.size
        if not size:
            raise ValidationError({"file": _("The uploaded file is empty.")})
        if size > app_settings.MAX_FILE_SIZE:
            raise ValidationError(
                {
                    "file": _("The file may not be larger than %(max)s.")
                    % {"max": filesizeformat(app_settings.MAX_FILE_SIZE)}
                }
            )
        if upgrader_class is None:
            return
        try:
            # the admin validates an image added with its build before the
            # build is saved: the build is then known but has no id yet
            build = self.build
        except ObjectDoesNotExist:
            build = None
        try:
            upgrader_class.check_image(self._read_head(), size, build)
        except ValidationError as error:
            raise ValidationError({"file": error.messages})

    def _read_head(self):
        """The file's first ``IMAGE_HEAD_SIZE`` bytes: an upload still in
        memory or in a temporary file, or a file already in storage (read
        by ranged requests on object storage)."""
        if not getattr(self.file, "_committed", True):
            uploaded = self.file.file
            uploaded.seek(0)
            head = uploaded.read(IMAGE_HEAD_SIZE)
            uploaded.seek(0)
            return head
        with open_image(self.file) as stored:
            return stored.read(IMAGE_HEAD_SIZE)

    def save(self, *args, **kwargs):
        # a new upload, or a file put in storage directly (file.save(save=False))
        if self.file and (
            not getattr(self.file, "_committed", True) or not self.sha256
        ):
            self.sha256, self.size = self.digest_upload(self.file)
        super().save(*args, **kwargs)

    @staticmethod
    def digest_upload(field_file):
        """sha256 and size of an upload, read in chunks (constant memory).

        The upload handler of this module already hashes while the request
        streams in and leaves the result on the file; reuse it when present.
        """
        uploaded = getattr(field_file, "file", field_file)
        precomputed = getattr(uploaded, "modem_sha256", None)
        if precomputed:
            return precomputed, uploaded.size
        digest = hashlib.sha256()
        size = 0
        for chunk in field_file.chunks(chunk_size=1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
        field_file.seek(0)
        return digest.hexdigest(), size

    @property
    def organization_id(self):
        return self.build.category.organization_id

    @property
    def upgrader_class(self):
        return get_upgrader_class(self.type)

    @classmethod
    def delete_file_handler(cls, instance, **kwargs):
        """post_delete: also for images deleted with their build or category."""
        name = instance.file.name
        if name:
            storage = instance.file.storage
            transaction.on_commit(lambda: storage.delete(name))


class AbstractDeviceModemFirmware(TimeStampedEditableModel):
    """One modem of a device: what it reports and the image we installed.

    A router may hold several modems, told apart by their sysfs USB path
    (``1-1.2``). An empty ``usb_path`` is a modem known before its path was
    (an upgrade started before any detection): the wrapper then picks the
    router's only modem, and the first detection fills the path in.
    """

    device = models.ForeignKey(
        swapper.get_model_name("config", "Device"),
        on_delete=models.CASCADE,
        related_name="modems",
    )
    usb_path = models.CharField(
        _("USB path"),
        max_length=32,
        blank=True,
        validators=[usb_path_validator],
        help_text=_("sysfs USB path of the modem on the router, e.g. 1-1.2"),
    )
    image = models.ForeignKey(
        get_model_name("ModemFirmwareImage"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("modem firmware image"),
    )
    installed = models.BooleanField(
        default=False, help_text=_("the image was flashed and its version verified")
    )
    modem_manufacturer = models.CharField(max_length=64, blank=True)
    modem_model = models.CharField(max_length=64, blank=True, db_index=True)
    modem_revision = models.CharField(
        max_length=128, blank=True, help_text=_("package version, e.g. 45.00.010-...")
    )
    modem_firmware_version = models.CharField(max_length=64, blank=True, db_index=True)
    modem_imei = models.CharField(_("modem IMEI"), max_length=32, blank=True)
    modem_detected_at = models.DateTimeField(
        null=True, blank=True, help_text=_("last time the modem answered")
    )
    detection_attempted_at = models.DateTimeField(null=True, blank=True)
    detection_status = models.CharField(
        max_length=16, choices=DetectionStatus.choices, blank=True, db_index=True
    )
    detection_reason = models.CharField(max_length=255, blank=True)
    unexplained_change = models.BooleanField(
        default=False,
        db_index=True,
        help_text=_(
            "revision or IMEI changed with no upgrade explaining it "
            "(flashed by hand, modem replaced)"
        ),
    )
    unexplained_change_at = models.DateTimeField(null=True, blank=True)
    # --- SIM and carrier images, as the modem reports them (detection.py)
    sim_state = models.CharField(
        _("SIM"),
        max_length=16,
        blank=True,
        help_text=_("ready, locked (PIN), absent, unknown; empty: not reported"),
    )
    sim_iccid = models.CharField(_("SIM ICCID"), max_length=22, blank=True)
    sim_imsi = models.CharField(_("SIM IMSI"), max_length=15, blank=True)
    sim_network = models.CharField(
        _("SIM network"),
        max_length=6,
        blank=True,
        db_index=True,
        help_text=_("the SIM's home network (MCC-MNC digits, from the IMSI)"),
    )
    sim_operator = models.CharField(
        _("operator"),
        max_length=64,
        blank=True,
        help_text=_("the network the modem is registered on (AT+COPS?)"),
    )
    carrier_images = models.JSONField(
        _("stored carrier images"),
        default=list,
        blank=True,
        help_text=_("index, name and version of each image the modem stores"),
    )
    carrier_image = models.CharField(
        _("active carrier image"), max_length=32, blank=True, db_index=True
    )
    carrier_selection = models.CharField(
        _("carrier image selection"),
        max_length=16,
        blank=True,
        help_text=_("auto: the modem picks the image by SIM; manual; empty: unknown"),
    )

    class Meta:
        abstract = True
        verbose_name = _("Device Modem Firmware")
        verbose_name_plural = _("Device Modem Firmware")
        unique_together = ("device", "usb_path")
        ordering = ("usb_path",)

    def __str__(self):
        return f"{self.device} {self.modem_model} {self.modem_firmware_version}".strip()

    def clean(self):
        if self.image_id and self.device_id:
            check_image_for_device(self.device, self.image)
            check_modem(self.image.build, [self.modem_model], True)


class AbstractDeviceModemDetection(TimeStampedEditableModel):
    """The last detection run on a device, whatever its modems.

    Outcomes that belong to the router rather than a modem (unreachable,
    no modem, garbage output) live here, so a device never detected has no
    row and the sweep can pick devices by ``attempted_at``.
    """

    device = models.OneToOneField(
        swapper.get_model_name("config", "Device"),
        on_delete=models.CASCADE,
        related_name="modem_detection",
    )
    started_at = models.DateTimeField(
        null=True, blank=True, help_text=_("when the last run began")
    )
    attempted_at = models.DateTimeField(
        db_index=True, help_text=_("when the last run ended")
    )
    succeeded_at = models.DateTimeField(
        null=True, blank=True, help_text=_("last run that read the router's modems")
    )
    status = models.CharField(
        max_length=16, choices=DetectionStatus.choices, db_index=True
    )
    reason = models.CharField(max_length=255, blank=True)
    modem_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        abstract = True
        verbose_name = _("Device Modem Detection")
        verbose_name_plural = _("Device Modem Detections")

    def __str__(self):
        return f"{self.device} {self.status}"


class AbstractModemHistory(TimeStampedEditableModel):
    """One change seen on a modem; never written when nothing changed."""

    device = models.ForeignKey(
        swapper.get_model_name("config", "Device"),
        on_delete=models.CASCADE,
        related_name="modem_history",
    )
    modem = models.ForeignKey(
        get_model_name("DeviceModemFirmware"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="history",
    )
    usb_path = models.CharField(_("USB path"), max_length=32, blank=True)
    detected_at = models.DateTimeField(db_index=True)
    manufacturer = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=64, blank=True)
    revision = models.CharField(max_length=128, blank=True)
    firmware_version = models.CharField(max_length=64, blank=True)
    imei = models.CharField(_("IMEI"), max_length=32, blank=True)
    source = models.CharField(max_length=16, choices=ModemChangeSource.choices)
    operation = models.ForeignKey(
        get_model_name("ModemUpgradeOperation"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text=_("the upgrade that explains this change"),
    )
    unexplained = models.BooleanField(
        default=False, help_text=_("revision or IMEI changed with no upgrade")
    )
    sim_iccid = models.CharField(_("SIM ICCID"), max_length=22, blank=True)
    sim_network = models.CharField(_("SIM network"), max_length=6, blank=True)
    carrier_image = models.CharField(
        _("active carrier image"), max_length=32, blank=True
    )

    class Meta:
        abstract = True
        verbose_name = _("Modem History")
        verbose_name_plural = _("Modem History")
        ordering = ("-detected_at",)

    def __str__(self):
        return f"{self.device} {self.model} {self.firmware_version} ({self.source})"


class AbstractModemUpgradeOperation(
    ScheduleMixin, UpgradeOptionsMixin, TimeStampedEditableModel
):
    device = models.ForeignKey(
        swapper.get_model_name("config", "Device"), on_delete=models.CASCADE
    )
    image = models.ForeignKey(
        get_model_name("ModemFirmwareImage"), on_delete=models.SET_NULL, null=True
    )
    batch = models.ForeignKey(
        get_model_name("ModemBatchUpgradeOperation"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="operations",
    )
    usb_path = models.CharField(
        _("modem USB path"),
        max_length=32,
        blank=True,
        validators=[usb_path_validator],
        help_text=_(
            "the modem to flash (sysfs USB path); empty: the router's only modem"
        ),
    )
    # a mass upgrade of every matching modem: the upgrade of another modem of
    # this router that must succeed first; cleared when this one may start
    # (``batch.release_next_modems``), so the one-upgrade-per-device
    # constraint counts it only from then on. Deleted with it: a null set
    # by a deletion would release it next to its active predecessor
    runs_after = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        help_text=_("waits for this upgrade of another modem of the router"),
    )
    status = models.CharField(
        max_length=12,
        choices=OperationStatus.choices,
        default=OperationStatus.IDLE,
        db_index=True,
    )
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)]
    )
    log = models.TextField(blank=True)
    flash_started = models.BooleanField(
        default=False,
        help_text=_("the router was told to flash: cancelling is no longer possible"),
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    bytes_sent = models.PositiveBigIntegerField(
        _("data sent"),
        default=0,
        editable=False,
        help_text=_("bytes sent to the router: image transfers and scripts"),
    )
    # last journal record of the device already applied (reports are replayed)
    device_seq = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # --- engine state (scheduler.py): what the database says, not a worker
    wave = models.PositiveIntegerField(default=1, help_text=_("rollout wave"))
    not_before = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text=_(
            "not started before: a retry's backoff, or a start spread in a window"
        ),
    )
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text=_("queued for a worker")
    )
    outcome_deadline = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("after the point of no return: the outcome is due by then"),
    )
    next_check_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text=_("next read of the router")
    )
    # a follow-up task holds the operation until then (scheduler.follow_due)
    follow_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # most bytes of the image the router was known to hold after an
    # interrupted transfer: an attempt that goes beyond made progress
    transfer_confirmed = models.PositiveBigIntegerField(default=0, editable=False)
    # staging (the "stage_ahead" option, staging.py): when the image was
    # transferred and verified on the router ahead of the window, and until
    # when it may wait there for the flash
    staged_at = models.DateTimeField(
        _("image staged at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("the image was transferred and verified on the router then"),
    )
    staged_until = models.DateTimeField(
        _("staged image expires at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("not flashed by then: the upgrade fails, the image is removed"),
    )
    follow_state = models.JSONField(default=dict, blank=True, editable=False)
    # the upgrade whose service was not restored and that this one flashes
    # back to its previous build (health remediation): never remediated again
    remediation_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="remediations",
        help_text=_("re-flashes the previous build after this upgrade"),
    )
    # "select carrier image" (carrier_switch.py): the stored carrier image
    # this operation makes active; such an operation has no image (nothing
    # is transferred). Empty: a firmware upgrade
    target_carrier_image = models.CharField(
        _("carrier image to activate"),
        max_length=32,
        blank=True,
        default="",
        editable=False,
        validators=[CarrierImageNameValidator()],
        help_text=_(
            "select carrier image: the stored image made active (no firmware "
            "transferred); empty: a firmware upgrade"
        ),
    )
    # modem-health.sh readings (health.py): "baseline" (pre-flight),
    # "remediation" (steps and the reading after them), "after" (the
    # post-flash verification's last reading)
    health = models.JSONField(
        _("service health readings"), default=dict, blank=True, editable=False
    )

    class Meta:
        abstract = True
        verbose_name = _("Modem Upgrade Operation")
        verbose_name_plural = _("Modem Upgrade Operations")
        ordering = ("-created",)
        constraints = [
            # the database, not Python, guarantees one running upgrade per
            # device (the next modems of a router wait outside it)
            models.UniqueConstraint(
                fields=["device"],
                condition=Q(
                    status__in=["idle", "in-progress", "staged"], runs_after=None
                ),
                name="%(app_label)s_%(class)s_one_active_per_device",
                violation_error_message=_(
                    "Another modem upgrade is already running on this device."
                ),
            ),
            models.CheckConstraint(
                condition=Q(progress__lte=100),
                name="%(app_label)s_%(class)s_progress_lte_100",
            ),
        ]

    def __str__(self):
        if self.target_carrier_image:
            what = _("carrier image %(name)s") % {"name": self.target_carrier_image}
            return f"{self.device} {what} [{self.status}]"
        return f"{self.device} {self.image} [{self.status}]"

    @property
    def is_active(self):
        return self.status in ACTIVE_STATUSES

    @property
    def cancellable(self):
        """Before the point of no return (the router told to flash)."""
        return operation_is_cancellable(self.status, self.flash_started)

    def clean(self):
        if not self.device_id or not self.image_id:
            return
        if self._state.adding:
            if self.device.is_deactivated():
                raise ValidationError(_("This device is deactivated."))
            modems = load_model("DeviceModemFirmware").objects.filter(
                device_id=self.device_id
            )
            if not self.usb_path and modems.exclude(usb_path="").count() > 1:
                raise ValidationError(
                    {
                        "usb_path": _(
                            "This router has several modems: choose the one "
                            "to upgrade."
                        )
                    }
                )
            check_build_may_start(self.image.build)
            check_image_for_device(self.device, self.image)
            targeted = (
                modems.filter(usb_path=self.usb_path) if self.usb_path else modems
            )
            detection_succeeded = (
                load_model("DeviceModemDetection")
                .objects.filter(device_id=self.device_id, succeeded_at__isnull=False)
                .exists()
            )
            check_modem(
                self.image.build,
                list(targeted.values_list("modem_model", flat=True)),
                detection_succeeded,
            )
            check_carrier(
                self.image.build, list(targeted.values_list("sim_network", flat=True))
            )
            self.check_upgrader_supports(targeted)
        self.clean_schedule()
        self.validate_upgrade_options(self.image.type)
        self.clean_stage_ahead(self.batch if self.batch_id else self)

    def check_upgrader_supports(self, modems):
        """The image's upgrader declares the model of the targeted modem
        (``supported_models``), as detection and image validation read it."""
        try:
            upgrader_class = get_upgrader_class(self.image.type)
        except LookupError:
            return  # validate_upgrade_options says why
        for model in modems.exclude(modem_model="").values_list(
            "modem_model", flat=True
        ):
            if not upgrader_class.supports_modem(model):
                raise ValidationError(
                    {
                        "image": _(
                            'The upgrader of this image cannot flash "%(model)s" '
                            "modems."
                        )
                        % {"model": model}
                    }
                )


class AbstractModemBatchUpgradeOperation(
    OrgMixin, RolloutMixin, UpgradeOptionsMixin, TimeStampedEditableModel
):
    build = models.ForeignKey(get_model_name("ModemBuild"), on_delete=models.CASCADE)
    status = models.CharField(
        max_length=12,
        choices=OperationStatus.choices,
        default=OperationStatus.IDLE,
        db_index=True,
    )
    group = models.ForeignKey(
        swapper.get_model_name("config", "DeviceGroup"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text=_("only devices of this group"),
    )
    location = models.ForeignKey(
        swapper.get_model_name("geo", "Location"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text=_("only devices at this location"),
    )
    from_version = models.CharField(
        _("current modem firmware version"),
        max_length=64,
        blank=True,
        validators=[version_validator],
        help_text=_("only devices whose modem currently runs this version"),
    )
    modems = models.CharField(
        _("modems of each router"),
        max_length=8,
        choices=ModemSelection.choices,
        default=ModemSelection.FIRST,
        help_text=_(
            "a router with several modems matching the build: flash the first "
            "one (by USB path), or every one, one after the other"
        ),
    )
    device_ids = models.JSONField(
        _("devices"),
        default=list,
        blank=True,
        help_text=_(
            "only these devices (ids), e.g. the devices of a compliance row; "
            "empty: every device matching the other filters"
        ),
    )
    retry_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="retries",
        verbose_name=_("retry of"),
        help_text=_("the mass upgrade whose failed devices this one retries"),
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        verbose_name = _("Mass Modem Upgrade Operation")
        verbose_name_plural = _("Mass Modem Upgrade Operations")
        ordering = ("-created",)

    def __str__(self):
        try:
            if self.retry_of_id:
                # not named like the original: both are listed side by side
                return _("Retry of the failed devices: mass upgrade to %(build)s") % {
                    "build": self.build
                }
            return _("Mass upgrade to %(build)s") % {"build": self.build}
        except ObjectDoesNotExist:
            return str(self.pk)

    def clean(self):
        self.clean_rollout()
        self._validate_org_relation("build_category", field_error="build")
        self._validate_org_relation("group")
        self._validate_org_relation("location")
        self._validate_device_ids()
        if self.build_id and self._state.adding:
            check_build_for_batch(self.build, self.group_id, self.device_ids)
        if self.build_id:
            upgrader_types = self.build.images.values_list("type", flat=True)
            for upgrader_type in set(upgrader_types):
                self.validate_upgrade_options(upgrader_type)
        self.clean_stage_ahead(self)

    def _validate_device_ids(self):
        """A list of ids of devices of the batch's organization, or empty."""
        ids = self.device_ids
        if not ids:
            self.device_ids = []
            return
        error = ValidationError(
            {"device_ids": _("Give a list of ids of this organization's devices.")}
        )
        if not isinstance(ids, list) or len(ids) > MAX_BATCH_DEVICE_IDS:
            raise error
        try:
            ids = sorted({str(uuid.UUID(str(pk))) for pk in ids})
        except (TypeError, ValueError, AttributeError):
            raise error
        Device = swapper.load_model("config", "Device")
        found = Device.objects.filter(
            pk__in=ids, organization_id=self.organization_id
        ).count()
        if found != len(ids):
            raise error
        self.device_ids = ids

    @property
    def build_category(self):
        return self.build.category if self.build_id else None

    def status_counts(self):
        """Operations per status, in one aggregate query; none when the
        batch was read with ``statuses.status_count_annotations()`` (a list
        costs the same number of queries whatever its length)."""
        if "count_total" in self.__dict__:
            return read_status_counts(self)
        return read_status_counts(
            self.operations.aggregate(**status_count_annotations(relation=None))
        )

    def load_status_counts(self):
        """Reads the counts once (one aggregate) and keeps them as the
        annotations a list would carry, so ``status_counts()``,
        ``progress_report``, ``rates()`` and the bytes sent reuse them."""
        if "count_total" not in self.__dict__:
            self.__dict__.update(
                self.operations.aggregate(**status_count_annotations(relation=None))
            )
        return self.status_counts()

    def data_sent(self):
        """Bytes sent to the routers by all its operations (one query)."""
        return self.operations.aggregate(total=Sum("bytes_sent"))["total"] or 0

    @property
    def progress_report(self):
        counts = self.status_counts()
        done = sum(counts[s] for s in TERMINAL_STATUSES)
        if self.modems == ModemSelection.EVERY:
            # one operation per modem
            return _("%(done)s out of %(total)s modems completed") % {
                "done": done,
                "total": counts["total"],
            }
        return _("%(done)s out of %(total)s devices completed") % {
            "done": done,
            "total": counts["total"],
        }

    def rates(self):
        """Percentages of success, failed, aborted and cancelled operations."""
        counts = self.status_counts()
        total = counts["total"]
        return {
            status: round(counts[status] * 100 / total, 2) if total else 0
            for status in TERMINAL_STATUSES
        }


class AbstractModemFirmwarePolicy(
    OrgMixin, RolloutMixin, UpgradeOptionsMixin, TimeStampedEditableModel
):
    """A standing order: the modems of a model (and carrier) in an
    organization (or one of its device groups or locations) run a released
    build. A periodic pass (``policy.py``) enrolls every modem behind into
    the policy's rollout: a mass upgrade the policy keeps open, with the
    policy's limits, canary, threshold and window."""

    name = models.CharField(_("name"), max_length=64)
    build = models.ForeignKey(
        get_model_name("ModemBuild"),
        on_delete=models.CASCADE,
        help_text=_("the released build the modems of its model must run"),
    )
    group = models.ForeignKey(
        swapper.get_model_name("config", "DeviceGroup"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text=_("only devices of this group"),
    )
    location = models.ForeignKey(
        swapper.get_model_name("geo", "Location"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text=_("only devices at this location"),
    )
    carrier = models.CharField(
        _("carrier"),
        max_length=7,
        blank=True,
        validators=[validate_policy_carrier],
        help_text=_(
            "only modems whose SIM is on this network (MCC-MNC, e.g. 310-410); "
            "empty: any"
        ),
    )
    paused = models.BooleanField(
        _("paused"),
        default=False,
        help_text=_("no enrollment, and no device of its rollout starts"),
    )
    batch = models.ForeignKey(
        get_model_name("ModemBatchUpgradeOperation"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("rollout"),
        help_text=_("the mass upgrade the policy enrolls modems into"),
    )
    last_pass_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_enrolled = models.PositiveIntegerField(default=0, editable=False)
    last_pass_note = models.CharField(max_length=255, blank=True, editable=False)

    class Meta:
        abstract = True
        verbose_name = _("Modem Firmware Policy")
        verbose_name_plural = _("Modem Firmware Policies")
        unique_together = ("organization", "name")
        ordering = ("name",)

    def __str__(self):
        return self.name

    @property
    def network(self):
        networks = parse_carriers(self.carrier)
        return networks[0] if networks else ""

    def clean(self):
        """Every mistake at once (one submit shows all)."""
        errors = {}

        def check(clean, *args, **kwargs):
            try:
                clean(*args, **kwargs)
            except ValidationError as error:
                error.update_error_dict(errors)

        check(self.clean_rollout)
        check(self._validate_org_relation, "build_category", field_error="build")
        check(self._validate_org_relation, "group")
        check(self._validate_org_relation, "location")
        if self.build_id and self.build.status != BuildStatus.RELEASED:
            errors.setdefault("build", []).append(
                _("A policy's build must be released (the fleet's target).")
            )
        if self.build_id:
            upgrader_types = self.build.images.values_list("type", flat=True)
            for upgrader_type in set(upgrader_types):
                check(self.validate_upgrade_options, upgrader_type)
        check(self.clean_stage_ahead, self)
        if errors:
            raise ValidationError(errors)

    @property
    def build_category(self):
        return self.build.category if self.build_id else None
