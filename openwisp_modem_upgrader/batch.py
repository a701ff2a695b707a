"""Mass upgrades: which devices a batch would upgrade, and the fan-out.

Both run in a constant number of queries, whatever the number of devices:
the compatibility rules of ``compatibility.py`` are expressed here as SQL.
"""

from functools import partial

import swapper
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import (
    Case,
    CharField,
    Exists,
    OuterRef,
    Q,
    UUIDField,
    Value,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .base.models import ACTIVE_STATUSES, OperationStatus
from .swapper import load_model


class ExclusionReason:
    DEACTIVATED = "deactivated"
    RUNNING = "upgrade-running"
    NO_CONNECTION = "no-connection"
    OTHER_MODEL = "other-modem-model"
    BOARD = "incompatible-board"
    UP_TO_DATE = "already-on-version"

    labels = {
        DEACTIVATED: _("device deactivated"),
        RUNNING: _("an upgrade is already running"),
        NO_CONNECTION: _("no enabled SSH connection"),
        OTHER_MODEL: _("the modem is another model"),
        BOARD: _("no image validated for this router model"),
        UP_TO_DATE: _("already on this version"),
    }


def candidate_devices(batch):
    """Devices of the batch's organization with a known modem, filtered."""
    Device = swapper.load_model("config", "Device")
    qs = Device.objects.filter(
        organization_id=batch.organization_id, modem_firmware__isnull=False
    )
    if batch.group_id:
        qs = qs.filter(group_id=batch.group_id)
    if batch.location_id:
        qs = qs.filter(devicelocation__location_id=batch.location_id)
    if batch.from_version:
        qs = qs.filter(modem_firmware__modem_firmware_version=batch.from_version)
    return qs


def _image_for_board(images):
    """SQL choosing, per device, the first image validated for its board."""
    whens = []
    for image in images:
        condition = Q(model__in=image.boards) if image.boards else Q(pk__isnull=False)
        whens.append(When(condition, then=Value(image.pk)))
    return Case(*whens, default=None, output_field=UUIDField())


def annotate_preview(batch):
    """Candidates annotated with ``image_id`` and ``exclusion_reason`` (NULL = ok)."""
    build = batch.build
    images = list(build.images.order_by("created"))
    Operation = load_model("ModemUpgradeOperation")
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")
    running = Operation.objects.filter(
        device_id=OuterRef("pk"), status__in=ACTIVE_STATUSES
    )
    connected = DeviceConnection.objects.filter(device_id=OuterRef("pk"), enabled=True)
    qs = candidate_devices(batch).annotate(
        target_image_id=_image_for_board(images),
        has_running=Exists(running),
        has_connection=Exists(connected),
    )
    reason = Case(
        When(_is_deactivated=True, then=Value(ExclusionReason.DEACTIVATED)),
        When(has_running=True, then=Value(ExclusionReason.RUNNING)),
        When(
            ~Q(modem_firmware__modem_model=build.modem_model),
            then=Value(ExclusionReason.OTHER_MODEL),
        ),
        When(
            modem_firmware__modem_firmware_version=build.version,
            then=Value(ExclusionReason.UP_TO_DATE),
        ),
        When(target_image_id__isnull=True, then=Value(ExclusionReason.BOARD)),
        When(has_connection=False, then=Value(ExclusionReason.NO_CONNECTION)),
        default=None,
        output_field=CharField(),
    )
    return qs.annotate(exclusion_reason=reason).order_by("name")


def preview_batch(batch):
    """The dry run: ``{"devices": eligible, "excluded": excluded}`` querysets.

    Excluded devices carry ``exclusion_reason`` (see ``ExclusionReason``).
    """
    qs = annotate_preview(batch)
    return {
        "devices": qs.filter(exclusion_reason__isnull=True),
        "excluded": qs.filter(exclusion_reason__isnull=False),
    }


def create_batch(build, organization, upgrade_options=None, **filters):
    """Validates and saves a batch, and queues its fan-out once committed."""
    from .tasks import fan_out_batch

    batch = load_model("ModemBatchUpgradeOperation")(
        build=build,
        organization=organization,
        upgrade_options=upgrade_options or {},
        **filters,
    )
    batch.full_clean()
    if not preview_batch(batch)["devices"].exists():
        raise ValidationError(
            _("No device can be upgraded to this build with the given filters.")
        )
    batch.save()
    transaction.on_commit(partial(fan_out_batch.delay, str(batch.pk)))
    return batch


def start_batch(batch):
    """Creates one operation per eligible device and queues them.

    The rows are inserted in bulk; a device that started another upgrade since
    the preview is skipped by the database's one-active-upgrade constraint
    instead of failing the whole batch.
    """
    Operation = load_model("ModemUpgradeOperation")
    DeviceModemFirmware = load_model("DeviceModemFirmware")
    now = timezone.now()
    with transaction.atomic():
        updated = (
            load_model("ModemBatchUpgradeOperation")
            .objects.filter(pk=batch.pk, status=OperationStatus.IDLE)
            .update(status=OperationStatus.IN_PROGRESS, started_at=now)
        )
        if not updated:
            return []  # already fanned out (task delivered twice)
        eligible = list(
            preview_batch(batch)["devices"].values_list("pk", "target_image_id")
        )
        Operation.objects.bulk_create(
            [
                Operation(
                    device_id=device_id,
                    image_id=image_id,
                    batch_id=batch.pk,
                    upgrade_options=batch.upgrade_options,
                )
                for device_id, image_id in eligible
            ],
            batch_size=500,
            ignore_conflicts=True,
        )
        created = Operation.objects.filter(
            batch_id=batch.pk, status=OperationStatus.IDLE
        )
        for image_id in {image_id for _, image_id in eligible}:
            DeviceModemFirmware.objects.filter(
                device_id__in=created.filter(image_id=image_id).values("device_id")
            ).update(image_id=image_id, installed=False)
        operation_ids = [str(pk) for pk in created.values_list("pk", flat=True)]
    if not operation_ids:
        from .upgrade import refresh_batch

        refresh_batch(batch.pk)
    transaction.on_commit(partial(_queue_operations, operation_ids))
    return operation_ids


def _queue_operations(operation_ids):
    from .tasks import upgrade_modem_firmware

    for operation_id in operation_ids:
        upgrade_modem_firmware.delay(operation_id)
