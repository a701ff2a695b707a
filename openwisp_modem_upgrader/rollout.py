"""The state of a mass upgrade: every write of a batch row is here (its
status from fan-out to closing, and its rollout: waves, automatic stop,
pause/resume).

The batch's ``rollout_state`` says whether the scheduler may start its
devices (``running``) or why not (paused, waiting for the go-ahead after a
wave, stopped by failures). Every change is a conditional UPDATE, so the
scheduler, finishing operations and operators can race safely.

Containment is a rule of dispatch: whatever starts a device of a batch (the
dispatcher's claim, a worker taking a queued device) holds the batch row's
lock (``locked_batch``) and starts nothing unless the batch is running; an
operation that finishes takes the same lock, and its failure and the stop it
causes are committed together. So no start can fall between the deciding
failure and the stop.
"""

import math

from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from . import publish
from .exceptions import UpgradeNotAllowed
from .failure_cause import failure_cause
from .signals import modem_batch_finished, modem_batch_stopped, send_after_commit
from .statuses import (
    ACTIVE_STATUSES,
    FAILED_STATUSES,
    FINISHED_STATUSES,
    OperationStatus,
    RolloutState,
)
from .swapper import load_model


def _batches():
    return load_model("ModemBatchUpgradeOperation").objects


def wave_sizes(batch, total):
    """How many devices each wave holds, canary first."""
    sizes = []
    remaining = total
    if batch.canary_size and remaining:
        canary = (
            math.ceil(total * batch.canary_size / 100)
            if batch.canary_percent
            else batch.canary_size
        )
        sizes.append(min(max(canary, 1), remaining))
        remaining -= sizes[-1]
    while remaining > 0:
        size = min(batch.wave_size or remaining, remaining)
        sizes.append(size)
        remaining -= size
    return sizes


def wave_numbers(batch, total):
    """The wave of each of ``total`` devices, in the fan-out's order."""
    numbers = []
    for wave, size in enumerate(wave_sizes(batch, total), start=1):
        numbers.extend([wave] * size)
    return numbers


def failures_since_resume(batch, counts):
    """``(failed, finished)`` devices since the last resume after a stop."""
    failed = sum(counts[s] for s in FAILED_STATUSES) - batch.failures_acknowledged
    finished = sum(counts[s] for s in FINISHED_STATUSES) - batch.finished_acknowledged
    return failed, finished


def failure_threshold_reached(batch, counts):
    """Whether the failures since the last resume reach the threshold."""
    if not batch.failure_threshold:
        return False
    failed, finished = failures_since_resume(batch, counts)
    if batch.failure_threshold_percent:
        if finished < max(batch.failure_threshold_minimum, 1):
            return False
        return failed * 100 >= batch.failure_threshold * finished
    return failed >= batch.failure_threshold


def in_canary(batch):
    """Whether the batch is still in its canary wave (wave 1 of a batch
    with a canary: no later wave opens before it finished)."""
    return bool(batch.canary_size) and batch.current_wave == 1


def stop_condition(batch, counts):
    """Why the batch must not start devices any more, from its failures
    since the last resume; ``""`` while it may go on.

    The canary must succeed as a whole: while it runs, more failures than
    its tolerance stop the batch, whatever the threshold.
    """
    failed, finished = failures_since_resume(batch, counts)
    if in_canary(batch) and failed > batch.canary_failure_tolerance:
        return _(
            "the canary wave failed (%(failed)s failed, %(tolerance)s tolerated)"
        ) % {"failed": failed, "tolerance": batch.canary_failure_tolerance}
    if failure_threshold_reached(batch, counts):
        unit = "%" if batch.failure_threshold_percent else ""
        return _(
            "%(failed)s of %(finished)s finished devices failed (threshold "
            "%(threshold)s%(unit)s)"
        ) % {
            "failed": failed,
            "finished": finished,
            "threshold": batch.failure_threshold,
            "unit": unit,
        }
    return ""


def describe_failure(operation_id):
    """``"<device>, <stage>: <the tool's last error line>"`` of a finished
    operation (its log: see ``failure_cause``)."""
    row = (
        load_model("ModemUpgradeOperation")
        .objects.filter(pk=operation_id)
        .values_list("device__name", "log")
        .first()
    )
    if row is None:
        return ""
    name, log = row
    cause = failure_cause(log)
    return f"{name}, {cause}" if cause else name


def _latest_failure(batch):
    return (
        load_model("ModemUpgradeOperation")
        .objects.filter(batch_id=batch.pk, status__in=FAILED_STATUSES)
        .order_by("-finished_at")
        .values_list("pk", flat=True)
        .first()
    )


def stop_reason(condition, failure):
    """The stop condition and the failure that reached it, in the 255
    characters of ``rollout_reason`` (the cause is cut, not the condition)."""
    if not failure:
        return condition[:255]
    reason = _("%(condition)s; last failure: %(failure)s") % {
        "condition": condition,
        "failure": failure,
    }
    return reason if len(reason) <= 255 else reason[:254] + "\u2026"


def stop_on_failures(batch, counts, failed_operation_id=None):
    """Stops a running batch whose failures reach its stop condition: no
    more device starts (those flashing go on), operators are notified.

    The caller holds the batch's lock (``locked_batch``) and ``counts`` were
    read under it; ``failed_operation_id``: the failure just recorded in
    the same transaction (else the batch's latest failure is named).
    """
    if batch.rollout_state not in (RolloutState.RUNNING, RolloutState.AWAITING):
        return False
    condition = stop_condition(batch, counts)
    if not condition:
        return False
    failure = describe_failure(failed_operation_id or _latest_failure(batch))
    reason = stop_reason(condition, failure)
    stopped = (
        _batches()
        .filter(
            pk=batch.pk,
            rollout_state__in=(RolloutState.RUNNING, RolloutState.AWAITING),
        )
        .update(rollout_state=RolloutState.STOPPED, rollout_reason=reason)
    )
    if stopped:
        batch.rollout_state = RolloutState.STOPPED
        batch.rollout_reason = reason
        send_after_commit(
            modem_batch_stopped, sender=type(batch), batch=batch, reason=reason
        )
    return bool(stopped)


def locked_batch(batch_id, **filters):
    """The batch, its row locked until the transaction ends (PostgreSQL's
    ``SELECT ... FOR UPDATE``; SQLite lets one writer at a time anyway);
    ``None`` when it is gone or does not match ``filters``. Call it inside
    ``transaction.atomic()``, before touching any of its operations: the
    batch is always locked first, so two transactions never wait on each
    other."""
    return _batches().select_for_update().filter(pk=batch_id, **filters).first()


def may_start_devices(batch_id):
    """Whether a device of the batch may start now: its batch is running
    (the caller's transaction holds the batch's lock until it commits)."""
    batch = locked_batch(batch_id)
    return (
        batch is not None
        and batch.status in ACTIVE_STATUSES
        and batch.rollout_state == RolloutState.RUNNING
    )


def advance_waves(batch):
    """Opens the next wave once the current one finished; whether the batch
    may start devices now (``running``)."""
    operations = load_model("ModemUpgradeOperation").objects.filter(batch_id=batch.pk)
    summary = operations.aggregate(
        active_here=Count(
            "pk", filter=Q(status__in=ACTIVE_STATUSES, wave__lte=batch.current_wave)
        ),
        next_wave=Min("wave", filter=Q(wave__gt=batch.current_wave)),
    )
    if summary["active_here"] or summary["next_wave"] is None:
        return True
    finished = batch.current_wave
    if batch.confirm_waves:
        reason = _("wave %(wave)s finished: waiting for an operator's go-ahead") % {
            "wave": finished
        }
        _batches().filter(pk=batch.pk, rollout_state=RolloutState.RUNNING).update(
            rollout_state=RolloutState.AWAITING, rollout_reason=reason
        )
        batch.rollout_state = RolloutState.AWAITING
        return False
    _batches().filter(pk=batch.pk, current_wave=finished).update(
        current_wave=summary["next_wave"]
    )
    batch.current_wave = summary["next_wave"]
    return True


def pause_batch(batch):
    """No more device starts until resumed (those running go on)."""
    updated = (
        _batches()
        .filter(pk=batch.pk, status__in=ACTIVE_STATUSES)
        .exclude(rollout_state=RolloutState.PAUSED)
        .update(rollout_state=RolloutState.PAUSED, rollout_reason="")
    )
    batch.refresh_from_db()
    if not updated:
        raise UpgradeNotAllowed(
            _("This mass upgrade has finished.")
            if batch.status not in ACTIVE_STATUSES
            else _("This mass upgrade is already paused.")
        )


def resume_batch(batch):
    """Running again: after a pause, as the go-ahead for the next wave, or
    after an automatic stop (the failures so far are acknowledged).

    Counted under the batch's lock: a failure recorded meanwhile is either
    acknowledged or counted after the resume, never lost. The dispatcher
    checks the stop condition again before it starts anything.
    """
    with transaction.atomic():
        current = locked_batch(batch.pk) or batch
        state = current.rollout_state
        if current.status not in ACTIVE_STATUSES:
            raise UpgradeNotAllowed(_("This mass upgrade has finished."))
        if state == RolloutState.RUNNING:
            raise UpgradeNotAllowed(_("This mass upgrade is already running."))
        changes = {"rollout_state": RolloutState.RUNNING, "rollout_reason": ""}
        operations = load_model("ModemUpgradeOperation").objects.filter(
            batch_id=batch.pk
        )
        if state == RolloutState.AWAITING:
            next_wave = operations.filter(wave__gt=current.current_wave).aggregate(
                next=Min("wave")
            )["next"]
            if next_wave:
                changes["current_wave"] = next_wave
        if state == RolloutState.STOPPED:
            counts = operations.aggregate(
                failed=Count("pk", filter=Q(status__in=FAILED_STATUSES)),
                finished=Count("pk", filter=Q(status__in=FINISHED_STATUSES)),
            )
            changes["failures_acknowledged"] = counts["failed"]
            changes["finished_acknowledged"] = counts["finished"]
        updated = _batches().filter(pk=batch.pk, rollout_state=state).update(**changes)
    batch.refresh_from_db()
    if not updated:
        raise UpgradeNotAllowed(_("The mass upgrade changed meanwhile: try again."))
    transaction.on_commit(publish.dispatch_soon)


def refresh_batch(batch_id, finished_operation_id=None):
    """Stops a batch whose failures reach its stop condition, and closes it
    once none of its operations is active any more (under its lock)."""
    if not batch_id:
        return
    with transaction.atomic():
        batch = locked_batch(batch_id)
        if batch is None:
            return
        counts = batch.status_counts()
        if any(counts[status] for status in ACTIVE_STATUSES):
            stop_on_failures(batch, counts, finished_operation_id)
            return
        if _kept_open(batch):
            # a firmware policy's rollout waits for its next enrollments;
            # its threshold still applies to the failures so far
            stop_on_failures(batch, counts, finished_operation_id)
            return
        if not counts["total"]:
            status = OperationStatus.FAILED
        elif counts[OperationStatus.SUCCESS] == counts["total"]:
            status = OperationStatus.SUCCESS
        elif counts[OperationStatus.CANCELLED] == counts["total"]:
            status = OperationStatus.CANCELLED
        else:
            status = OperationStatus.FAILED
        closed = (
            _batches()
            .filter(pk=batch_id, status__in=ACTIVE_STATUSES)
            .update(status=status, finished_at=timezone.now())
        )
        if closed:
            batch.status = status
            send_after_commit(modem_batch_finished, sender=type(batch), batch=batch)


def _kept_open(batch):
    """A firmware policy's rollout (``policy.py``) stays open between its
    passes."""
    return load_model("ModemFirmwarePolicy").objects.filter(batch_id=batch.pk).exists()


def mark_batch_started(batch_id, now):
    """idle -> in-progress, once: False when the batch was already fanned
    out (its fan-out delivered twice) or cancelled before."""
    return bool(
        _batches()
        .filter(pk=batch_id, status=OperationStatus.IDLE)
        .update(status=OperationStatus.IN_PROGRESS, started_at=now)
    )


def cancel_unstarted_batch(batch_id, now):
    """A batch not fanned out yet is cancelled as a whole (its fan-out then
    does nothing)."""
    _batches().filter(
        pk=batch_id, status=OperationStatus.IDLE, operations__isnull=True
    ).update(status=OperationStatus.CANCELLED, finished_at=now)


def touch_batches(batch_ids, now):
    """Marks a republished fan-out (``modified``): at most one message per
    ``REPUBLISH_AFTER``."""
    _batches().filter(pk__in=batch_ids).update(modified=now)
