"""The one scheduler: which operations start now, which routers are read now.

Everything it decides from is in the database (schedules, windows, waves,
retry backoffs, outcome deadlines), so a restart of every worker, of beat or
of the broker loses nothing. It runs:

* ``drive()`` from Celery beat every ``DRIVER_SCHEDULE`` seconds;
* ``dispatch()`` as soon as something frees or adds work (an upgrade
  created or finished, a batch resumed), through ``publish.dispatch_soon()``.

Only what may run now is published, so the broker never holds more than the
concurrency limits allow, and never a long countdown.
"""

import logging
import uuid
from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import publish
from . import settings as app_settings
from .batch import release_next_modems
from .engine import recover_lost_workers
from .publish import QUEUED_KEY
from .rollout import advance_waves, locked_batch, stop_on_failures, touch_batches
from .staging import expire_staged, stageable, stages_now
from .start_spread import spread_single, spread_starts
from .statuses import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    OperationStatus,
    RolloutState,
    in_flight,
    waiting,
)
from .swapper import load_model
from .upgrade import (
    claim_for_dispatch,
    finish_operation,
    followable,
    lease_follow_ups,
    mark_dispatched,
)
from .upgraders import get_upgrader_class

logger = logging.getLogger(__name__)
LOCK_KEY = "openwisp-modem-upgrader:dispatch"
AGAIN_KEY = "openwisp-modem-upgrader:dispatch-again"
# a dispatch takes well under a second; a worker killed while holding the
# lock delays the next dispatches by at most this
LOCK_TIMEOUT = 20


def _operations():
    return load_model("ModemUpgradeOperation").objects


def dispatch(now=None):
    """Publishes the operations that may start now; how many.

    One dispatcher at a time (a lock in the shared cache): two would each
    see the same free slots. A dispatcher asked for while another runs
    leaves a note, and the running one goes round once more.
    """
    # from here on, a new request publishes a new message
    cache.delete(QUEUED_KEY)
    token = uuid.uuid4().hex
    if not cache.add(LOCK_KEY, token, timeout=LOCK_TIMEOUT):
        cache.set(AGAIN_KEY, 1, timeout=LOCK_TIMEOUT)
        return 0
    published = 0
    try:
        for _round in range(10):
            cache.delete(AGAIN_KEY)
            published += _dispatch_once(now or timezone.now())
            if not cache.get(AGAIN_KEY):
                break
    finally:
        # not a lock that expired and another dispatcher took since
        if cache.get(LOCK_KEY) == token:
            cache.delete(LOCK_KEY)
    return published


def _dispatch_once(now):
    release_next_modems()

    free = app_settings.MAX_CONCURRENT_UPGRADES - in_flight(_operations()).count()
    published = 0
    # single upgrades first: an operator is waiting for that one device
    if free > 0:
        singles = waiting(_operations().filter(batch__isnull=True), now).order_by(
            "created"
        )
        chosen = [
            operation.pk
            for operation in singles.only(*_SCHEDULE_FIELDS)[: free * 2]
            if operation.may_start(now) and not spread_single(operation, now)
        ][:free]
        count = _claim_and_publish(chosen, now)
        published += count
        free -= count
    Batch = load_model("ModemBatchUpgradeOperation")
    batch_ids = Batch.objects.filter(
        status__in=ACTIVE_STATUSES,
        started_at__isnull=False,
        rollout_state=RolloutState.RUNNING,
    ).order_by("created")
    for batch_id in batch_ids.values_list("pk", flat=True):
        if free <= 0:
            break
        rows = _claim_batch(batch_id, now, free)
        _publish(rows, now)
        published += len(rows)
        free -= len(rows)
    if free > 0:
        published += _claim_and_publish(_to_stage(now, free), now)
    return published


def _to_stage(now, free):
    """Upgrades that stage their image outside their window (staging.py),
    with the slots the upgrades starting now left: at most ``free``, and
    within each mass upgrade's concurrency limit."""
    chosen, room = [], {}
    candidates = stageable(now).select_related("batch").order_by("created")
    for operation in candidates[: free * 4]:
        if len(chosen) >= free:
            break
        if not stages_now(operation, now):
            continue
        if operation.batch_id:
            if operation.batch_id not in room:
                batch_operations = _operations().filter(batch_id=operation.batch_id)
                room[operation.batch_id] = (
                    operation.batch.max_concurrent - in_flight(batch_operations).count()
                )
            if room[operation.batch_id] <= 0:
                continue
            room[operation.batch_id] -= 1
        chosen.append(operation.pk)
    return chosen


def _claim_batch(batch_id, now, free):
    """Claims the operations of a batch that may start now (at most
    ``free``), deciding under the batch's lock (``rollout.locked_batch``):
    its failures are counted and its stop condition applied first, so a
    failure recorded by another worker is either seen here or waits for
    this claim to commit, and then stops the devices claimed here before
    they start (``upgrade.mark_in_progress``)."""
    with transaction.atomic():
        batch = locked_batch(
            batch_id,
            status__in=ACTIVE_STATUSES,
            started_at__isnull=False,
            rollout_state=RolloutState.RUNNING,
        )
        if batch is None or not batch.may_start(now):
            return []
        if stop_on_failures(batch, batch.status_counts()):
            return []
        if not advance_waves(batch):
            return []
        operations = _operations().filter(batch_id=batch.pk)
        current = waiting(operations, now).filter(wave__lte=batch.current_wave)
        spread_starts(current, batch, now)
        room = min(batch.max_concurrent - in_flight(operations).count(), free)
        if room <= 0:
            return []
        chosen = list(
            waiting(operations, now)
            .filter(wave__lte=batch.current_wave)
            .order_by("wave", "created", "pk")
            .values_list("pk", flat=True)[:room]
        )
        return _claim(chosen, now)


_SCHEDULE_FIELDS = (
    "pk",
    "not_before",
    "deadline",
    "scheduled_at",
    "window_start",
    "window_end",
    "window_timezone",
)


def _claim_and_publish(operation_ids, now):
    rows = _claim(operation_ids, now)
    _publish(rows, now)
    return len(rows)


def _claim(operation_ids, now):
    """Marks the operations queued; the rows to publish."""
    if not claim_for_dispatch(operation_ids, now):
        return []
    queued = _operations().filter(pk__in=operation_ids, dispatched_at=now)
    return list(queued.values_list("pk", "upgrade_options", "image__type"))


def _publish(rows, now):
    """Publishes claimed operations (once their claim is committed: a
    worker taking the message must find it)."""
    for pk, options, upgrader_type in rows:
        publish_upgrade(
            str(pk), time_limit=_time_limit(upgrader_type, options), dispatched_at=now
        )


def _time_limit(upgrader_type, options):
    try:
        return get_upgrader_class(upgrader_type).worker_time_limit(options)
    except LookupError:
        return app_settings.TASK_TIMEOUT  # the engine fails it at once


def publish_upgrade(operation_id, time_limit=None, dispatched_at=None):
    """Queues the worker's part of one attempt, limited to ``time_limit``.
    The message carries ``dispatched_at``: only the latest one can start
    the operation."""
    time_limit = time_limit or app_settings.TASK_TIMEOUT
    token = dispatched_at.isoformat() if dispatched_at else None
    publish.upgrade(operation_id, time_limit, token)


def publish_follow(operation_id, lease=None):
    """Queues one follow-up; ``lease`` (the lease's end) is its token: only
    the follow-up holding the operation's current lease reads the router."""
    publish.follow(operation_id, lease.isoformat() if lease else None)


def drive(now=None):
    """The periodic pass: everything time-driven, then a dispatch."""
    now = now or timezone.now()
    result = {
        "expired": expire_waiting(now),
        "staged_expired": expire_staged(now),
        "lost_workers": recover_lost_workers(now),
        "republished": republish_lost_messages(now),
        "fanned_out_again": republish_lost_fan_outs(now),
        "followed": follow_due(now),
    }
    result["dispatched"] = dispatch(now)
    return result


def follow_due(now):
    """Publishes one follow-up per operation whose router is due a read.

    Each is leased (``follow_lease_until``) before it is published, so no
    operation is followed twice at the same time; a follow-up that dies is
    retried when its lease ends, since ``next_check_at`` is moved to then.
    The lease has a field of its own: a router's report may ask for an
    early read (``follow_now``), never break the lease.
    """
    due = followable(now).filter(
        Q(status=OperationStatus.IN_PROGRESS, flash_started=True)
        | Q(status__in=TERMINAL_STATUSES)
    )
    ids = list(due.values_list("pk", flat=True)[: app_settings.MAX_CONCURRENT_UPGRADES])
    if not ids:
        return 0
    lease = now + timedelta(seconds=app_settings.FOLLOW_LEASE)
    leased = lease_follow_ups(ids, now, lease)
    for pk in leased:
        publish_follow(str(pk), lease)
    return len(leased)


def republish_lost_messages(now):
    """Queued operations no worker took for ``REPUBLISH_AFTER`` seconds:
    their message may be lost (a broker restarted without persistence).
    Publishing again is safe: only one delivery can start an operation."""
    limit = now - timedelta(seconds=app_settings.REPUBLISH_AFTER)
    stale = _operations().filter(status__in=WAITING_STATUSES, dispatched_at__lt=limit)
    rows = list(stale.values_list("pk", "upgrade_options", "image__type")[:1000])
    if rows:
        mark_dispatched([row[0] for row in rows], now)
    for pk, options, upgrader_type in rows:
        logger.warning("modem upgrade %s: queued for too long, publishing again", pk)
        publish_upgrade(
            str(pk), time_limit=_time_limit(upgrader_type, options), dispatched_at=now
        )
    return len(rows)


def republish_lost_fan_outs(now):
    """Mass upgrades still not fanned out ``REPUBLISH_AFTER`` seconds after
    their creation (or their last republish): the fan-out message was lost
    with a broker restart. Publishing again is safe: only an idle batch is
    fanned out, once."""
    limit = now - timedelta(seconds=app_settings.REPUBLISH_AFTER)
    Batch = load_model("ModemBatchUpgradeOperation")
    stale = Batch.objects.filter(
        status=OperationStatus.IDLE, started_at__isnull=True, modified__lt=limit
    )
    ids = list(stale.values_list("pk", flat=True)[:100])
    # ``modified`` marks the publish: at most one message per REPUBLISH_AFTER
    touch_batches(ids, now)
    for pk in ids:
        logger.warning("mass upgrade %s: not fanned out yet, publishing again", pk)
        publish.fan_out(pk)
    return len(ids)


def expire_waiting(now):
    """Operations not started by their (or their batch's) deadline."""
    # not queued yet, whether or not a retry backoff is pending
    not_started = _operations().filter(
        status__in=WAITING_STATUSES, dispatched_at__isnull=True
    )
    expired = not_started.filter(
        Q(deadline__lt=now) | Q(deadline__isnull=True, batch__deadline__lt=now)
    )
    count = 0
    for pk, staged_at in expired.values_list("pk", "staged_at"):
        # staged ahead (waiting staged, or again after a failed attempt):
        # the image is removed from the router
        staged = staged_at is not None
        count += finish_operation(
            pk,
            OperationStatus.FAILED,
            (
                "not flashed before the deadline: the staged image is removed"
                if staged
                else "not started before the deadline: nothing was sent to the router"
            ),
            clean_up=staged,
        )
    return count
