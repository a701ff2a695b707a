"""Start, cancel, record and finish modem upgrades.

Every write of an operation row is here (its status, the scheduler's claims
and leases, the fan-out's inserts), and the one call that assigns a modem
its target image. Every change is a conditional UPDATE, so a worker, the
device's own reports, an operator's cancel and the stuck-operation sweeper
can race without overwriting each other. A batch's row is written by
``rollout.py``, modem readings by ``detection.py``.
"""

import logging
from datetime import timedelta
from functools import lru_cache

import swapper
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.db.models.functions import Concat, Greatest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from . import publish
from . import settings as app_settings
from .detection import record_installed
from .exceptions import UpgradeNotAllowed
from .rollout import (
    cancel_unstarted_batch,
    locked_batch,
    may_start_devices,
    refresh_batch,
)
from .signals import modem_upgrade_finished, send_after_commit
from .statuses import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    OperationStatus,
)
from .swapper import load_model

logger = logging.getLogger(__name__)
# How far past the last applied record a batch of journal records may start.
# The router numbers records 1, 2, 3... and re-sends from its last
# acknowledged one, so a real batch starts right after the last applied
# record; a gap only follows an acknowledgement of a report that was not
# applied. Far more than that means a seq the journal cannot have produced:
# applying it would make every later record look old (the journal pinned).
MAX_JOURNAL_SEQ_GAP = 1000


def _operations():
    return load_model("ModemUpgradeOperation").objects


def start_upgrade(
    device, image, upgrade_options=None, batch=None, usb_path=None, **schedule
):
    """Validates and creates an operation, then queues it once committed.

    The operation waits for the scheduler (``scheduler.py``), which starts
    it as soon as its schedule (``scheduled_at``, ``deadline``, a daily
    window: ``schedule``) and the concurrency limits allow.
    ``usb_path`` names the modem to flash; when not given, the one modem of
    the router that the image fits (see ``target_usb_path``). Raises
    ``ValidationError`` with the reason when the upgrade is not allowed
    (incompatible image, invalid options, another upgrade running, several
    modems and none chosen...).
    """
    if usb_path is None:
        usb_path = target_usb_path(device, image.build)
    operation = load_model("ModemUpgradeOperation")(
        device=device,
        image=image,
        upgrade_options=upgrade_options or {},
        batch=batch,
        usb_path=usb_path,
        **schedule,
    )
    # the one-upgrade-per-device constraint is checked once a staged
    # upgrade of the device is superseded (and stays if the check fails)
    operation.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            supersede_staged(device)
            operation.validate_constraints()
            operation.save()
            assign_target_image(_operations().filter(pk=operation.pk))
    except IntegrityError:
        # lost a race with another start: the partial unique index said no
        raise ValidationError(
            _("Another modem upgrade is already running on this device.")
        )
    transaction.on_commit(publish.dispatch_soon)
    return operation


def supersede_staged(device):
    """A new upgrade of ``device`` supersedes its upgrade waiting staged
    (not queued yet): that one is cancelled and its image removed from the
    router (unless the new upgrade sends the same image: then it stays and
    the new one sends nothing). How many were superseded."""
    staged = _operations().filter(
        device=device, status=OperationStatus.STAGED, dispatched_at__isnull=True
    )
    count = 0
    for pk in staged.values_list("pk", flat=True):
        count += finish_operation(
            pk,
            OperationStatus.CANCELLED,
            _(
                "Superseded by a new upgrade of the device: the staged image "
                "is removed."
            ),
            clean_up=True,
        )
    return count


def target_usb_path(device, build):
    """The modem an upgrade to ``build`` targets when none was chosen.

    The router's only modem; among several, the only one of the build's
    model; otherwise ``""`` (operation validation then asks for a choice).
    """
    modems = list(
        load_model("DeviceModemFirmware")
        .objects.filter(device=device)
        .values_list("usb_path", "modem_model")
    )
    if len(modems) == 1:
        return modems[0][0]
    matching = [path for path, model in modems if model == build.modem_model]
    return matching[0] if len(matching) == 1 else ""


def assign_target_image(operations):
    """The one writer of a modem's target image (detection writes the rest
    of a modem row): the modem each of ``operations`` flashes gets the
    operation's image, not installed yet; a modem not detected yet gets its
    row. A constant number of queries, whatever the number of operations."""
    Modem = load_model("DeviceModemFirmware")
    same_modem = {"device_id": OuterRef("device_id"), "usb_path": OuterRef("usb_path")}
    image_ids = set(operations.values_list("image_id", flat=True))
    for image_id in image_ids:
        targeted = operations.filter(image_id=image_id, **same_modem)
        Modem.objects.filter(Exists(targeted)).update(
            image_id=image_id, installed=False
        )
    missing = operations.exclude(Exists(Modem.objects.filter(**same_modem)))
    Modem.objects.bulk_create(
        Modem(device_id=device_id, usb_path=usb_path, image_id=image_id)
        for device_id, usb_path, image_id in missing.values_list(
            "device_id", "usb_path", "image_id"
        )
    )


def cancel_upgrade(operation):
    """Cancels an operation that has not reached the point of no return."""
    now = timezone.now()
    updated = (
        _operations()
        .filter(pk=operation.pk, status__in=ACTIVE_STATUSES, flash_started=False)
        .update(
            status=OperationStatus.CANCELLED,
            finished_at=now,
            modified=now,
            log=Concat(F("log"), Value(_log_line(_("Cancelled by an operator.")))),
            next_check_at=image_removal(now),
        )
    )
    operation.refresh_from_db()
    if not updated:
        if operation.status in TERMINAL_STATUSES:
            raise UpgradeNotAllowed(_("This upgrade has already finished."))
        raise UpgradeNotAllowed(
            _("The modem is being flashed: cancelling now could brick it.")
        )
    refresh_batch(operation.batch_id)


def cancel_batch(batch):
    """Cancels every operation of a batch that has not started flashing.

    A batch not fanned out yet is cancelled as a whole (its fan-out then does
    nothing). Returns ``(cancelled operation ids, ids refused because they
    are flashing)``.
    """
    now = timezone.now()
    with transaction.atomic():
        cancel_unstarted_batch(batch.pk, now)
        _operations().filter(
            batch_id=batch.pk, status__in=ACTIVE_STATUSES, flash_started=False
        ).update(
            status=OperationStatus.CANCELLED,
            finished_at=now,
            modified=now,
            log=Concat(F("log"), Value(_log_line(_("Cancelled by an operator.")))),
            next_check_at=image_removal(now),
        )
    cancelled = list(
        _operations()
        .filter(batch_id=batch.pk, status=OperationStatus.CANCELLED, finished_at=now)
        .values_list("pk", flat=True)
    )
    refused = list(
        _operations()
        .filter(batch_id=batch.pk, status__in=ACTIVE_STATUSES)
        .values_list("pk", flat=True)
    )
    refresh_batch(batch.pk)
    return cancelled, refused


def image_kept_by_another(operation):
    """Whether another active upgrade of the operation's device sends the
    same image (same content, same file on the router)."""
    return (
        _operations()
        .filter(
            device_id=operation.device_id,
            status__in=ACTIVE_STATUSES,
            image__sha256=operation.image.sha256,
        )
        .exclude(pk=operation.pk)
        .exists()
    )


def image_removal(now):
    """``next_check_at`` of operations being finished: an operation that
    staged (or was staging) its image ahead of the window is read once more,
    and the engine removes the image from the router (``_clean_up``)."""
    return Case(
        When(upgrade_options__stage_ahead=True, then=Value(now)),
        default=F("next_check_at"),
    )


def mark_staged(operation_id, staged_until):
    """in-progress -> staged: the image is on the router, verified, and
    the flash waits for the window (queued there like a waiting upgrade);
    False when cancelled meanwhile. Staging is not an attempt."""
    now = timezone.now()
    message = _(
        "Staged: the flash waits for the window (the image is kept on the "
        "router until %(until)s UTC)."
    ) % {"until": f"{staged_until:%Y-%m-%d %H:%M}"}
    return bool(
        _operations()
        .filter(
            pk=operation_id, status=OperationStatus.IN_PROGRESS, flash_started=False
        )
        .update(
            status=OperationStatus.STAGED,
            staged_at=now,
            staged_until=staged_until,
            dispatched_at=None,
            attempts=Greatest(F("attempts") - 1, Value(0)),
            last_progress_at=now,
            modified=now,
            log=Concat(F("log"), Value(_log_line(message))),
        )
    )


def mark_in_progress(operation_id, dispatched_at=None):
    """idle -> in-progress; False when another worker has it or it finished.

    Only an idle operation can start, so a task delivered twice never runs
    two upgrades of the same device at once. ``dispatched_at`` (carried by
    the scheduler's message) must still be the operation's: a stale message
    (its operation requeued for a later retry, or published again) starts
    nothing. A device of a batch starts only while its batch runs, checked
    under the batch's lock (``rollout.may_start_devices``): queued before a
    stop or a pause, it goes back to waiting.
    """
    now = timezone.now()
    filters = {"pk": operation_id, "status__in": WAITING_STATUSES}
    if dispatched_at is not None:
        filters["dispatched_at"] = dispatched_at
    with transaction.atomic():
        batch_id = _batch_id(operation_id)
        if batch_id and not may_start_devices(batch_id):
            _operations().filter(**filters).update(dispatched_at=None)
            return False
        return bool(
            _operations()
            .filter(**filters)
            .update(
                status=OperationStatus.IN_PROGRESS,
                started_at=now,
                last_progress_at=now,
                modified=now,
                attempts=F("attempts") + 1,
                # each attempt starts a fresh journal on the router
                device_seq=0,
            )
        )


def touch_attempt(operation_id, attempt):
    """A live worker's heartbeat (``attempt_heartbeat``): its attempt's
    ``last_progress_at`` moved to now, so that the stuck-operation rule
    (``engine.recover_lost_workers``) takes only a silent worker for lost.
    Nothing once the flash started (the follow-ups decide from the router)
    or once another attempt began. ``modified`` is left alone: nothing an
    operator sees changed."""
    return bool(
        _operations()
        .filter(
            pk=operation_id,
            status=OperationStatus.IN_PROGRESS,
            flash_started=False,
            attempts=attempt,
        )
        .update(last_progress_at=timezone.now())
    )


def _batch_id(operation_id):
    return (
        _operations().filter(pk=operation_id).values_list("batch_id", flat=True).first()
    )


def requeue_operation(
    operation_id, message, not_before, untouched=False, refund_attempt=False
):
    """in-progress -> idle, waiting for the scheduler until ``not_before``.

    Refused once the flash started, unless the modem is known ``untouched``
    (the router says nothing was written). ``refund_attempt``: the router
    was offline, which does not count as an attempt.
    """
    now = timezone.now()
    filters = {"pk": operation_id, "status": OperationStatus.IN_PROGRESS}
    if not untouched:
        filters["flash_started"] = False
    changes = {
        "status": OperationStatus.IDLE,
        "flash_started": False,
        "dispatched_at": None,
        "not_before": not_before,
        "outcome_deadline": None,
        "next_check_at": None,
        "follow_state": {},
        "last_progress_at": now,
        "modified": now,
        "log": Concat(F("log"), Value(_log_line(message))),
    }
    if refund_attempt:
        changes["attempts"] = Greatest(F("attempts") - 1, Value(0))
    return bool(_operations().filter(**filters).update(**changes))


def record_transfer_progress(operation_id, router_holds):
    """Raises the most image bytes the router was known to hold; False when
    an earlier attempt already got that far (no progress)."""
    return bool(
        _operations()
        .filter(
            pk=operation_id,
            status=OperationStatus.IN_PROGRESS,
            transfer_confirmed__lt=router_holds,
        )
        .update(transfer_confirmed=router_holds)
    )


def mark_flash_started(operation_id, outcome_timeout=2220, state=None):
    """Crosses the point of no return; False if cancelled in the meantime.

    From now on the database holds when the outcome is due, when the
    router is read next and the upgrader's ``state`` (when given): the
    follow-up does not depend on this worker.
    """
    now = timezone.now()
    extra = {} if state is None else {"follow_state": state}
    return bool(
        _operations()
        .filter(
            pk=operation_id, status=OperationStatus.IN_PROGRESS, flash_started=False
        )
        .update(
            flash_started=True,
            outcome_deadline=now + timedelta(seconds=outcome_timeout),
            next_check_at=now + timedelta(seconds=app_settings.FOLLOW_START_GRACE),
            last_progress_at=now,
            modified=now,
            **extra,
        )
    )


def save_upgrader_state(operation_id, state):
    """Keeps an upgrader's ``state`` (a JSON-serialisable dict) while its
    operation runs, without touching when the router is read next."""
    return bool(
        _operations()
        .filter(pk=operation_id, status=OperationStatus.IN_PROGRESS)
        .update(follow_state=state, modified=timezone.now())
    )


def record_health(operation_id, key, reading):
    """Stores one health reading of the operation (``key``: baseline,
    remediation or after), under the row's lock."""
    with transaction.atomic():
        health = (
            _operations()
            .select_for_update()
            .filter(pk=operation_id)
            .values_list("health", flat=True)
            .first()
        )
        if health is None:
            return False
        health[key] = reading
        return bool(
            _operations()
            .filter(pk=operation_id)
            .update(health=health, modified=timezone.now())
        )


def modem_version_before(operation, usb_path):
    """The firmware version the modem at ``usb_path`` runs as far as the
    server knows (its modem row, or the row of a modem known before its
    path was), read before the flash: the baseline's."""
    row = (
        load_model("DeviceModemFirmware")
        .objects.filter(device_id=operation.device_id, usb_path__in=(usb_path, ""))
        .order_by("-usb_path")
        .values("modem_firmware_version", "modem_revision")
        .first()
    )
    if not row:
        return ""
    return row["modem_firmware_version"] or row["modem_revision"] or ""


def start_previous_build(operation_id):
    """Re-flashes the build the modem ran before an upgrade whose service was
    not restored: a new operation linked to it (``remediation_of``), with
    no remediation of its own, so it never loops. The pre-flight gate is
    off (the modem has no service: that is why it runs); the service
    verification stays on. Returns the operation; raises ``LookupError``
    or ``ValidationError`` with the reason."""
    operation = (
        _operations().select_related("image__build", "device").get(pk=operation_id)
    )
    if operation.remediation_of_id:
        raise LookupError("this upgrade is itself a remediation: not repeated")
    previous = (operation.health or {}).get("baseline", {}).get("firmware")
    if not previous or operation.image is None:
        raise LookupError("the version the modem ran before is not known")
    build = operation.image.build
    image = (
        load_model("ModemFirmwareImage")
        .objects.filter(
            type=operation.image.type,
            build__version=previous,
            build__modem_model=build.modem_model,
        )
        .filter(
            Q(build__category__organization_id=operation.device.organization_id)
            | Q(build__category__organization__isnull=True)
        )
        .order_by("-created")
        .first()
    )
    if image is None:
        raise LookupError(f"no image of the previous build {previous} in the catalogue")
    options = dict(
        operation.upgrade_options,
        preflight_checks=False,
        remediation=False,
        reflash_previous=False,
        recovery_run=False,
    )
    return start_upgrade(
        operation.device,
        image,
        options,
        usb_path=operation.usb_path,
        remediation_of=operation,
    )


def note_finished(operation_id, message):
    """Appends a line to a finished operation's log (what followed it)."""
    _operations().filter(pk=operation_id).update(
        log=Concat(F("log"), Value(_log_line(message))), modified=timezone.now()
    )


def journal_seq(operation_id):
    """The seq of the last router journal record applied."""
    return (
        _operations()
        .filter(pk=operation_id)
        .values_list("device_seq", flat=True)
        .first()
    )


def save_follow_state(operation_id, state, next_check_in):
    """Keeps an upgrader's state between two looks at the router and says
    when to look next; nothing changes once the operation finished.

    A read already due (the router reported meanwhile: ``follow_now``) stays
    due; otherwise ``next_check_at`` is ahead (the follow-up's lease end, or
    the grace after the point of no return) and is replaced.
    """
    now = timezone.now()
    return bool(
        _operations()
        .filter(pk=operation_id, status=OperationStatus.IN_PROGRESS)
        .update(
            follow_state=state,
            next_check_at=Case(
                When(next_check_at__lte=now, then=F("next_check_at")),
                default=Value(now + timedelta(seconds=next_check_in)),
            ),
            modified=now,
        )
    )


def follow_now(operation_id):
    """The router reported an outcome: read it at the next pass, or right
    after the follow-up that holds the operation now (it keeps a read
    asked for meanwhile: ``save_follow_state``)."""
    _operations().filter(
        pk=operation_id, status=OperationStatus.IN_PROGRESS, flash_started=True
    ).update(next_check_at=timezone.now())


def followable(now):
    """Due a read, and no follow-up holds them."""
    return (
        _operations()
        .filter(next_check_at__lte=now)
        .filter(Q(follow_lease_until__isnull=True) | Q(follow_lease_until__lte=now))
    )


def claim_for_dispatch(operation_ids, now):
    """Marks waiting operations queued (``dispatched_at``): how many. Only
    an operation not queued yet is claimed, so two dispatchers never
    publish the same one."""
    if not operation_ids:
        return 0
    return (
        _operations()
        .filter(
            pk__in=operation_ids,
            status__in=WAITING_STATUSES,
            dispatched_at__isnull=True,
        )
        .update(dispatched_at=now)
    )


def mark_dispatched(operation_ids, now):
    """Queued again (a lost message published anew): the new token."""
    _operations().filter(pk__in=operation_ids).update(dispatched_at=now)


def lease_follow_ups(operation_ids, now, lease):
    """Leases a follow-up of each operation still followable (no follow-up
    holds it): the ids leased until ``lease``, whose next read is then."""
    followable(now).filter(pk__in=operation_ids).update(
        follow_lease_until=lease, next_check_at=lease
    )
    return list(
        _operations()
        .filter(pk__in=operation_ids, follow_lease_until=lease)
        .values_list("pk", flat=True)
    )


def put_off_start(operation_id, not_before):
    """A waiting operation starts no earlier than ``not_before`` (spread
    inside its window); nothing changes once it is queued."""
    _operations().filter(pk=operation_id, dispatched_at__isnull=True).update(
        not_before=not_before
    )


def put_off_starts(starts):
    """``put_off_start`` of many: ``{operation id: not_before}``."""
    Operation = load_model("ModemUpgradeOperation")
    rows = [Operation(pk=pk, not_before=when) for pk, when in starts.items()]
    Operation.objects.bulk_update(rows, ["not_before"], batch_size=500)


def stop_following(operation_id):
    """No more reads of a finished operation (its router was tidied up)."""
    _operations().filter(pk=operation_id).update(next_check_at=None)


def insert_operations(operations, ignore_conflicts=False):
    """Saves the operations a mass upgrade fans out to, in bulk;
    ``ignore_conflicts``: a device that started another upgrade meanwhile
    is skipped by the database's one-active-upgrade constraint."""
    _operations().bulk_create(
        operations, batch_size=500, ignore_conflicts=ignore_conflicts
    )


def release_following(operation_id):
    """The next modem's upgrade of a router may start (``runs_after``
    cleared): 1, or 0 when another upgrade of the router comes first (a
    single one started meanwhile: the database refuses two)."""
    busy = _operations().filter(
        device_id=OuterRef("device_id"),
        status__in=ACTIVE_STATUSES,
        runs_after__isnull=True,
    )
    try:
        with transaction.atomic():
            return (
                _operations()
                .filter(pk=operation_id, status=OperationStatus.IDLE)
                .exclude(Exists(busy))
                .update(runs_after=None)
            )
    except IntegrityError:
        return 0  # lost a race with a single upgrade: the next pass


def holds_follow_lease(operation_id, lease):
    """Whether the follow-up of token ``lease`` (ISO date) still holds the
    operation: a follow-up whose lease ended and was given to another
    reads nothing."""
    return (
        _operations()
        .filter(pk=operation_id, follow_lease_until=parse_datetime(lease))
        .exists()
    )


def release_follow_lease(operation_id, lease):
    _operations().filter(
        pk=operation_id, follow_lease_until=parse_datetime(lease)
    ).update(follow_lease_until=None)


def record_journal(operation_id, last_seq, messages, progress=None):
    """Applies router journal records ``last_seq - len(messages) + 1 .. last_seq``.

    The same records reach the server twice (the router's HTTP reports and
    the worker reading the journal over SSH) and again when the router
    replays after a link loss: records at or below the operation's
    ``device_seq`` are skipped. An optimistic UPDATE on ``device_seq`` keeps
    concurrent appliers from writing a record twice. Returns whether anything
    new was applied.
    """
    first_seq = last_seq - len(messages) + 1
    for _attempt in range(10):
        current = (
            _operations()
            .filter(pk=operation_id, status=OperationStatus.IN_PROGRESS)
            .values_list("device_seq", flat=True)
            .first()
        )
        if current is None or last_seq <= current:
            return False
        if not journal_seq_plausible(current, first_seq):
            return False
        new = [m for i, m in enumerate(messages) if first_seq + i > current]
        if _apply(
            {"device_seq": current},
            operation_id,
            progress,
            "\n".join(new),
            device_seq=last_seq,
        ):
            return True
    return False


def record_new_journal(operation_id, last_seq, messages, progress, device_key):
    """``record_journal`` in one statement, for the usual device report:
    records that all follow the last applied one, sent with the key of the
    operation's device.

    A single conditional UPDATE, no read first: True when it applied the
    records; False when anything else holds (unknown operation or key, not
    in progress, a replay, an overlap or a gap too large), and the caller
    then takes the general path (read, explain, ``record_journal``). The
    statement is written out (see ``_new_journal_sql``): building it with
    the ORM cost more CPU than the rest of the request.
    """
    Operation = load_model("ModemUpgradeOperation")
    connection = connections[router.db_for_write(Operation)]
    first_seq = last_seq - len(messages) + 1
    now = timezone.now()
    fields = Operation._meta
    timestamp = fields.get_field("modified").get_db_prep_value(now, connection)
    params = [last_seq, timestamp, timestamp, int(progress), int(progress)]
    if messages:
        params.append(_log_line("\n".join(messages)))
    params += [
        fields.pk.get_db_prep_value(operation_id, connection),
        OperationStatus.IN_PROGRESS.value,
        # with no message, first_seq is last_seq + 1: last_seq must be new
        min(first_seq, last_seq),
        # journal_seq_plausible(device_seq, first_seq)
        first_seq - 1 - MAX_JOURNAL_SEQ_GAP,
        device_key,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_new_journal_sql(connection.alias, bool(messages)), params)
        return cursor.rowcount == 1


@lru_cache(maxsize=None)
def _new_journal_sql(alias, with_log):
    Operation = load_model("ModemUpgradeOperation")
    Device = swapper.load_model("config", "Device")
    quote = connections[alias].ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    seq, progress, log = (
        column(Operation, name) for name in ("device_seq", "progress", "log")
    )
    changes = [
        f"{seq} = %s",
        f"{column(Operation, 'last_progress_at')} = %s",
        f"{column(Operation, 'modified')} = %s",
        # Greatest(): never lowers progress (GREATEST is not SQLite's)
        f"{progress} = CASE WHEN {progress} < %s THEN %s ELSE {progress} END",
    ]
    if with_log:
        changes.append(f"{log} = {log} || %s")
    return (
        f"UPDATE {quote(Operation._meta.db_table)} SET {', '.join(changes)} "
        f"WHERE {quote(Operation._meta.pk.column)} = %s "
        f"AND {column(Operation, 'status')} = %s "
        f"AND {seq} < %s AND {seq} >= %s "
        f"AND {column(Operation, 'device')} IN ("
        f"SELECT {quote(Device._meta.pk.column)} "
        f"FROM {quote(Device._meta.db_table)} "
        f"WHERE {column(Device, 'key')} = %s)"
    )


def journal_seq_plausible(last_applied, first_seq):
    """Whether a batch starting at ``first_seq`` can come from the journal."""
    return first_seq <= last_applied + 1 + MAX_JOURNAL_SEQ_GAP


def record_progress(operation_id, progress=None, message=None):
    """Appends to the log and raises progress (never lowers it)."""
    return _apply({}, operation_id, progress, message)


def add_bytes_sent(operation_id, count):
    """Counts data sent to the router (whatever the status: it was paid for)."""
    if count > 0:
        _operations().filter(pk=operation_id).update(
            bytes_sent=F("bytes_sent") + int(count)
        )


def _apply(filters, operation_id, progress, message, **changes):
    now = timezone.now()
    filters.update(pk=operation_id, status=OperationStatus.IN_PROGRESS)
    changes.update(last_progress_at=now, modified=now)
    if progress is not None:
        changes["progress"] = Greatest(F("progress"), Value(int(progress)))
    if message:
        changes["log"] = Concat(F("log"), Value(_log_line(message)))
    return bool(_operations().filter(**filters).update(**changes))


def finish_operation(operation_id, status, message=None, clean_up=False):
    """Moves an active operation to a terminal status, exactly once.

    Returns False when it had already finished (e.g. cancelled, or finished by
    the device's own report), in which case nothing changes. ``clean_up``
    (an outcome the router reported itself): one more follow-up lets the
    upgrader tidy the router (e.g. remove the image).

    The operation's batch is locked first and its stop condition evaluated
    in the same transaction (``refresh_batch``): a failure and the stop it
    causes are committed together, before any dispatch is asked for.
    """
    assert status in TERMINAL_STATUSES, status
    now = timezone.now()
    changes = {
        "status": status,
        "finished_at": now,
        "modified": now,
        "next_check_at": now if clean_up else None,
    }
    if status == OperationStatus.SUCCESS:
        changes["progress"] = 100
    if message:
        changes["log"] = Concat(F("log"), Value(_log_line(message)))
    with transaction.atomic():
        batch_id = _batch_id(operation_id)
        if batch_id:
            locked_batch(batch_id)
        updated = (
            _operations()
            .filter(pk=operation_id, status__in=ACTIVE_STATUSES)
            .update(**changes)
        )
        if not updated:
            return False
        operation = _operations().select_related("image").get(pk=operation_id)
        if status == OperationStatus.SUCCESS and operation.image_id:
            record_installed(operation)
        operation.status = status
        refresh_batch(operation.batch_id, finished_operation_id=operation_id)
        # a slot is free: the next waiting device may start (once committed,
        # with the stop if this failure caused one)
        transaction.on_commit(publish.dispatch_soon)
        send_after_commit(
            modem_upgrade_finished,
            sender=type(operation),
            operation=operation,
            status=status,
        )
    return True


def _log_line(message):
    return f"{message.rstrip()}\n"
