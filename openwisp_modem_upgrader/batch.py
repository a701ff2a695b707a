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
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    UUIDField,
    Value,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .base.models import ACTIVE_STATUSES, OperationStatus
from .compatibility import ExclusionReason, model_may_be
from .rollout import wave_numbers
from .scheduler import dispatch_soon
from .swapper import load_model


def candidate_devices(batch):
    """Devices of the batch's organization, filtered.

    Devices without any known modem stay in (excluded as not detected yet);
    ``from_version`` keeps devices with a modem on that version;
    ``device_ids`` (e.g. a compliance row) keeps only those devices.
    """
    Device = swapper.load_model("config", "Device")
    qs = Device.objects.filter(organization_id=batch.organization_id)
    if batch.device_ids:
        qs = qs.filter(pk__in=batch.device_ids)
    if batch.group_id:
        qs = qs.filter(group_id=batch.group_id)
    if batch.location_id:
        qs = qs.filter(devicelocation__location_id=batch.location_id)
    if batch.from_version:
        qs = qs.filter(
            Exists(_modems().filter(modem_firmware_version=batch.from_version))
        )
    return qs


def _modems():
    """A device's modems, as a subquery on the outer device."""
    return load_model("DeviceModemFirmware").objects.filter(device_id=OuterRef("pk"))


def _target_modems(batch):
    """The device's modems a batch would flash, best candidate first: of the
    build's model, not on its version (and on ``from_version`` if set)."""
    build = batch.build
    modems = _modems().filter(model_may_be(build.modem_model))
    modems = modems.exclude(modem_firmware_version=build.version)
    if batch.from_version:
        modems = modems.filter(modem_firmware_version=batch.from_version)
    return modems.order_by("usb_path")


def _shown_modem(build, field):
    """A value of the modem the preview shows: the target modem, else the
    first modem of the build's model, else the first modem."""
    rank = Case(
        When(
            Q(modem_model=build.modem_model) & ~Q(modem_firmware_version=build.version),
            then=Value(0),
        ),
        When(modem_model=build.modem_model, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    modems = _modems().annotate(rank=rank).order_by("rank", "usb_path")
    return Subquery(modems.values(field)[:1])


def _image_for_board(images):
    """SQL choosing, per device, the first image validated for its board."""
    whens = []
    for image in images:
        condition = Q(model__in=image.boards) if image.boards else Q(pk__isnull=False)
        whens.append(When(condition, then=Value(image.pk)))
    return Case(*whens, default=None, output_field=UUIDField())


def annotate_preview(batch):
    """Candidates annotated with ``target_image_id``, ``target_usb_path`` (the
    modem to flash), the shown ``modem_model`` / ``modem_firmware_version``
    and ``exclusion_reason`` (NULL = eligible)."""
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
        target_usb_path=Subquery(_target_modems(batch).values("usb_path")[:1]),
        modem_model=_shown_modem(build, "modem_model"),
        modem_firmware_version=_shown_modem(build, "modem_firmware_version"),
        has_running=Exists(running),
        has_connection=Exists(connected),
        has_modem=Exists(_modems()),
        has_model=Exists(_modems().filter(model_may_be(build.modem_model))),
        # a run that read the router's modem list, even an empty one
        has_detection=Exists(
            load_model("DeviceModemDetection").objects.filter(
                device_id=OuterRef("pk"), succeeded_at__isnull=False
            )
        ),
    )
    reason = Case(
        When(_is_deactivated=True, then=Value(ExclusionReason.DEACTIVATED)),
        When(has_running=True, then=Value(ExclusionReason.RUNNING)),
        When(
            has_modem=False,
            has_detection=True,
            then=Value(ExclusionReason.NO_MODEM),
        ),
        When(has_modem=False, then=Value(ExclusionReason.NOT_DETECTED)),
        When(has_model=False, then=Value(ExclusionReason.OTHER_MODEL)),
        When(
            target_usb_path__isnull=True,
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


def not_detected_devices(batch):
    """The preview's devices excluded as "modem not detected yet"."""
    return preview_batch(batch)["excluded"].filter(
        exclusion_reason=ExclusionReason.NOT_DETECTED
    )


def create_batch(build, organization, upgrade_options=None, **fields):
    """Validates and saves a batch (filters, rollout and schedule ``fields``),
    and queues its fan-out once committed."""
    from .tasks import fan_out_batch

    batch = load_model("ModemBatchUpgradeOperation")(
        build=build,
        organization=organization,
        upgrade_options=upgrade_options or {},
        **fields,
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
    """Creates one operation per eligible device, in rollout waves; the
    scheduler starts them (``scheduler.py``) within the batch's limits.

    Each operation flashes one modem (``target_usb_path``): a router with two
    modems to upgrade gets the second in a later batch, since a device runs
    one upgrade at a time. The rows are inserted in bulk; a device that
    started another upgrade since the preview is skipped by the database's
    one-active-upgrade constraint instead of failing the whole batch.
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
            preview_batch(batch)["devices"].values_list(
                "pk", "target_image_id", "target_usb_path"
            )
        )
        waves = wave_numbers(batch, len(eligible))
        Operation.objects.bulk_create(
            [
                Operation(
                    device_id=device_id,
                    image_id=image_id,
                    usb_path=usb_path,
                    batch_id=batch.pk,
                    upgrade_options=batch.upgrade_options,
                    wave=wave,
                )
                for (device_id, image_id, usb_path), wave in zip(eligible, waves)
            ],
            batch_size=500,
            ignore_conflicts=True,
        )
        created = Operation.objects.filter(
            batch_id=batch.pk, status=OperationStatus.IDLE
        )
        for image_id in {image_id for _, image_id, _ in eligible}:
            targeted = created.filter(
                image_id=image_id,
                device_id=OuterRef("device_id"),
                usb_path=OuterRef("usb_path"),
            )
            DeviceModemFirmware.objects.filter(Exists(targeted)).update(
                image_id=image_id, installed=False
            )
        operation_ids = [str(pk) for pk in created.values_list("pk", flat=True)]
    if not operation_ids:
        from .upgrade import refresh_batch

        refresh_batch(batch.pk)
    transaction.on_commit(dispatch_soon)
    return operation_ids
