"""Firmware policies: the periodic pass that keeps a fleet on its build.

Each policy owns one mass upgrade, its rollout, which it keeps open (a
policy's batch is not closed when its operations are done, ``rollout.py``):
every pass enrolls the modems that are behind at that moment, newly
detected modems, replaced modems (a new modem behind again after a
success) and routers back online included, as operations of that batch.
The scheduler then starts them within the batch's limits and window, and
the batch's containment applies: its threshold (or a failed canary) stops
it, and a stopped or paused rollout enrolls nobody until an operator
resumes it.

Who is enrolled: the devices the batch's preview finds eligible (the rules
of every mass upgrade, ``batch.py``), of the policy's carrier when it has
one, whose router the last detection reached, and that have no failed
upgrade in this rollout (an operator retries those: the policy does not
loop on a broken router). One pass over a policy runs a constant number
of queries, whatever the number of devices.
"""

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from . import publish
from .base.rollout import ROLLOUT_FIELDS
from .batch import preview_batch
from .rollout import locked_batch, pause_batch, resume_batch, wave_numbers
from .statuses import (
    ACTIVE_STATUSES,
    FAILED_STATUSES,
    UNREACHABLE_STATUSES,
    OperationStatus,
    RolloutState,
)
from .swapper import load_model
from .upgrade import assign_target_image, insert_operations

# what the policy copies onto its rollout at every pass (an edit of the
# policy applies to the rollout under way); the state is the batch's own.
# A standing order has no start time nor deadline: a deadline would fail
# every modem enrolled after it
POLICY_ROLLOUT_FIELDS = tuple(
    f for f in ROLLOUT_FIELDS if f not in ("scheduled_at", "deadline")
)


def _policies():
    return load_model("ModemFirmwarePolicy").objects


def run_policies(now=None):
    """The periodic pass over every policy not paused; returns
    ``{policy id: modems enrolled}``."""
    now = now or timezone.now()
    enrolled = {}
    for policy_id in _policies().filter(paused=False).values_list("pk", flat=True):
        enrolled[str(policy_id)] = enroll(policy_id, now)
    return enrolled


def rollout_of(policy, now):
    """The policy's open batch, created (already started: there is no
    fan-out) when it has none or its last one was closed by an operator;
    the policy's rollout options copied onto it."""
    Batch = load_model("ModemBatchUpgradeOperation")
    batch = (
        Batch.objects.filter(pk=policy.batch_id, status__in=ACTIVE_STATUSES).first()
        if policy.batch_id
        else None
    )
    values = {field: getattr(policy, field) for field in POLICY_ROLLOUT_FIELDS}
    values.update(
        build_id=policy.build_id,
        group_id=policy.group_id,
        location_id=policy.location_id,
        upgrade_options=policy.upgrade_options,
    )
    if batch is None:
        batch = Batch(
            organization_id=policy.organization_id,
            status=OperationStatus.IN_PROGRESS,
            started_at=now,
            **values,
        )
        batch.save()
        _policies().filter(pk=policy.pk).update(batch=batch)
        policy.batch = batch
        return batch
    Batch.objects.filter(pk=batch.pk).update(**values)
    for field, value in values.items():
        setattr(batch, field, value)
    return batch


def enroll(policy_id, now=None):
    """One pass over one policy: how many modems it enrolled."""
    now = now or timezone.now()
    with transaction.atomic():
        policy = (
            _policies()
            .select_for_update()
            .select_related("build")
            .filter(pk=policy_id, paused=False)
            .first()
        )
        if policy is None:
            return 0
        batch = rollout_of(policy, now)
        # containment: enrolling holds the batch's lock, as every start does
        batch = locked_batch(batch.pk)
        if batch.rollout_state != RolloutState.RUNNING:
            note = _("no enrollment: the rollout is %(state)s") % {
                "state": batch.get_rollout_state_display()
            }
            if batch.rollout_reason:
                note = f"{note} ({batch.rollout_reason})"
            return _record_pass(policy, now, 0, note)
        rows = list(
            _eligible(policy, batch).values_list(
                "pk", "target_image_id", "target_usb_path"
            )
        )
        Operation = load_model("ModemUpgradeOperation")
        already = Operation.objects.filter(batch_id=batch.pk).count()
        waves = wave_numbers(batch, already + len(rows))[already:]
        insert_operations(
            [
                Operation(
                    device_id=device_id,
                    image_id=image_id,
                    usb_path=usb_path,
                    batch_id=batch.pk,
                    upgrade_options=batch.upgrade_options,
                    wave=wave,
                )
                for (device_id, image_id, usb_path), wave in zip(rows, waves)
            ],
            ignore_conflicts=True,
        )
        # as the fan-out does: every waiting operation of the rollout (those
        # of earlier passes again, which changes nothing); no list of ids,
        # which would make the statement grow with the fleet
        assign_target_image(
            Operation.objects.filter(batch_id=batch.pk, status=OperationStatus.IDLE)
        )
        count = Operation.objects.filter(batch_id=batch.pk).count() - already
        if count:
            transaction.on_commit(publish.dispatch_soon)
        return _record_pass(policy, now, count, "")


def _eligible(policy, batch):
    """The batch's eligible devices, narrowed by the policy's rules."""
    devices = preview_batch(batch)["devices"]
    if policy.network:
        devices = devices.filter(
            Exists(
                load_model("DeviceModemFirmware").objects.filter(
                    device_id=OuterRef("pk"), sim_network=policy.network
                )
            )
        )
    unreachable = load_model("DeviceModemDetection").objects.filter(
        device_id=OuterRef("pk"), status__in=UNREACHABLE_STATUSES
    )
    failed_here = load_model("ModemUpgradeOperation").objects.filter(
        batch_id=batch.pk, device_id=OuterRef("pk"), status__in=FAILED_STATUSES
    )
    return devices.exclude(Exists(unreachable)).exclude(Exists(failed_here))


def _record_pass(policy, now, count, note):
    _policies().filter(pk=policy.pk).update(
        last_pass_at=now, last_enrolled=count, last_pass_note=note[:255]
    )
    return count


def pause_policy(policy):
    """No more enrollment, and no device of its rollout starts (those
    flashing go on) until resumed."""
    _policies().filter(pk=policy.pk).update(paused=True)
    policy.paused = True
    batch = _open_batch(policy)
    if batch is not None and batch.rollout_state != RolloutState.PAUSED:
        pause_batch(batch)


def resume_policy(policy):
    """Enrollments again, and its rollout resumed when it was paused (a
    rollout stopped by its threshold waits for an operator's resume of the
    mass upgrade: the failures must be looked at)."""
    _policies().filter(pk=policy.pk).update(paused=False)
    policy.paused = False
    batch = _open_batch(policy)
    if batch is not None and batch.rollout_state == RolloutState.PAUSED:
        resume_batch(batch)


def _open_batch(policy):
    # the pass sets the policy's batch in the database, not on this object
    batch_id = _policies().filter(pk=policy.pk).values_list("batch_id", flat=True)
    return (
        load_model("ModemBatchUpgradeOperation")
        .objects.filter(pk__in=batch_id, status__in=ACTIVE_STATUSES)
        .first()
    )


def governing_policies(organization_ids=None):
    """``{(organization id, modem model): [policy names]}``: what the
    compliance page shows as "governed by policy X"."""
    policies = _policies().select_related("build").order_by("name")
    if organization_ids is not None:
        policies = policies.filter(organization_id__in=organization_ids)
    governed = {}
    for policy in policies:
        key = (policy.organization_id, policy.build.modem_model)
        governed.setdefault(key, []).append(policy)
    return governed


def is_policy_rollout(batch_id):
    """Whether a batch is a policy's rollout (kept open between passes)."""
    return _policies().filter(batch_id=batch_id).exists()
