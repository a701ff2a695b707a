"""Runs the two halves of an upgrade and maps every outcome to a status.

* ``run_operation``: a worker does what needs it (``upgrader.start()``:
  prepare the router, send the image, start the flash) and is freed;
* ``follow_operation``: a short follow-up task, one look at the router
  (``upgrader.poll()``), until the outcome or the outcome deadline.

Upgraders only raise; this is where exceptions become statuses and retries
are decided. When an operation runs next is the scheduler's business
(``scheduler.py``): retries, offline routers and follow-ups are rows in the
database, never long countdowns.
"""

import logging
import random
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db.utils import (
    DatabaseError,
    DataError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
)
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from openwisp_controller.connection.exceptions import NoWorkingDeviceConnectionError

from . import settings as app_settings
from .attempt_heartbeat import attempt_heartbeat
from .carrier_switch import follow_switch, switch_carrier_image
from .exceptions import (
    IrrecoverableModemFailure,
    ModemUntouched,
    ModemUpgradeAborted,
    ModemUpgradeCancelled,
    PreflightRefused,
    RecoverableModemFailure,
    RouterUnreachable,
    ServiceNotRestored,
)
from .recorder import OperationRecorder
from .ssh import working_connection
from .staging import staged_until, stages_ahead, stages_now
from .statuses import TERMINAL_STATUSES, OperationStatus
from .swapper import load_model
from .transfer import one_line, transfer_progressed
from .upgrade import (
    finish_operation,
    holds_follow_lease,
    image_kept_by_another,
    mark_in_progress,
    mark_staged,
    note_finished,
    record_progress,
    record_transfer_progress,
    release_follow_lease,
    requeue_operation,
    save_follow_state,
    start_previous_build,
    stop_following,
)
from .upgraders import get_upgrader_class
from .upgraders.base import FLASHING

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = app_settings.RETRY_OPTIONS.get("max_retries", 2) + 1
# ``_stage``'s result: the image waits on the router for the window
STAGED = "staged"


def _load(operation_id):
    return (
        load_model("ModemUpgradeOperation")
        .objects.select_related("device", "image__build__category", "batch")
        .get(pk=operation_id)
    )


def run_operation(operation_id, task=None, dispatched_at=None):
    """The worker's part of an attempt (``dispatched_at``: the scheduler's
    token, an ISO date)."""
    token = parse_datetime(dispatched_at) if dispatched_at else None
    if not mark_in_progress(operation_id, token):
        # cancelled or finished meanwhile, requeued for a later retry, or a
        # duplicate delivery: a task redelivered after its worker died
        # (acks_late) finds the operation in progress and never starts a
        # second upgrade (nor a second flash)
        if task is not None and task.request.delivery_info.get("redelivered"):
            logger.warning(
                "modem upgrade %s: task delivered again while the operation "
                "is not queued (its worker stopped?): not started twice",
                operation_id,
            )
        return
    operation = _load(operation_id)
    # a live worker is never taken for a lost one (attempt_heartbeat.py)
    with attempt_heartbeat(operation_id, operation.attempts):
        if operation.target_carrier_image:
            _run_carrier_switch(operation)
        else:
            _run_attempt(operation, token)


def _run_attempt(operation, token):
    operation_id = operation.pk
    attempt = operation.attempts
    # the scheduler's instant (an injected clock in tests): staging or
    # flashing is decided as the scheduler decided it
    staging = stages_now(operation, token or timezone.now())
    try:
        upgrader_class = _upgrader_class(operation)
        record_progress(
            operation_id,
            message=f"{'staging: ' if staging else ''}attempt {attempt} of "
            f"{MAX_ATTEMPTS}",
        )
        connection = _get_connection(operation.device)
        upgrader = _upgrader(upgrader_class, operation, connection)
        # a partial image is kept on the router only for a retry to continue
        upgrader.retry_follows = attempt < MAX_ATTEMPTS
        try:
            if staging:
                result = _stage(operation, upgrader)
            else:
                result = upgrader.start(operation.image)
            if result not in (FLASHING, STAGED):
                verify_reading(operation, upgrader)
        finally:
            connection.disconnect()
    except SoftTimeLimitExceeded:
        limit = _upgrader_time_limit(operation)
        settle(
            operation, IrrecoverableModemFailure(f"exceeded the time limit of {limit}s")
        )
    except Exception as error:
        settle(operation, error)
    else:
        if result == STAGED:
            return
        if result == FLASHING:
            save_follow_state(
                operation_id, upgrader.state, app_settings.FOLLOW_INTERVAL
            )
            upgrader.log(
                "the flash goes on on the router; the server follows its reports"
            )
        else:
            finish_operation(
                operation_id, OperationStatus.SUCCESS, "upgrade successful"
            )


def _run_carrier_switch(operation):
    """A "select carrier image" operation (carrier_switch.py): no
    transfer, no upgrader; its outcomes go through ``settle`` like an
    upgrade's."""
    record_progress(
        operation.pk, message=f"attempt {operation.attempts} of {MAX_ATTEMPTS}"
    )
    try:
        connection = _get_connection(operation.device)
        try:
            message = switch_carrier_image(operation, connection)
        finally:
            connection.disconnect()
    except Exception as error:
        settle(operation, error)
    else:
        if message is not None:  # None: cancelled before the switch
            finish_operation(operation.pk, OperationStatus.SUCCESS, message)


def _stage(operation, upgrader):
    """The image sent and verified on the router, the flash left to the
    window (staging.py); an upgrade cancelled meanwhile has it removed."""
    upgrader.stage(operation.image)
    if not mark_staged(operation.pk, staged_until(timezone.now())):
        upgrader.remove_staged_image()
    return STAGED


def follow_operation(operation_id, lease=None):
    """One look at a flash that goes on without a worker, by the follow-up
    holding the operation's lease (``lease``: its token, an ISO date)."""
    if lease is None:  # a message published before leases had a token
        _follow(operation_id)
        return
    if not holds_follow_lease(operation_id, lease):
        logger.info("modem upgrade %s: follow-up past its lease, skipped", operation_id)
        return
    try:
        _follow(operation_id)
    finally:
        release_follow_lease(operation_id, lease)


def _follow(operation_id):
    operation = _load(operation_id)
    if operation.status in TERMINAL_STATUSES:
        # finished by the router's own report: let the upgrader tidy up
        _clean_up(operation)
        return
    if operation.status != OperationStatus.IN_PROGRESS or not operation.flash_started:
        return
    if operation.target_carrier_image:
        status, outcome = follow_switch(operation)
        if status:
            finish_operation(operation.pk, status, outcome)
        else:
            save_follow_state(operation.pk, operation.follow_state, outcome)
        return
    try:
        upgrader_class = _upgrader_class(operation)
        if not upgrader_class.detached:
            _outcome_of_held_worker(operation, upgrader_class)
            return
        connection = _get_connection(operation.device)
        upgrader = _upgrader(upgrader_class, operation, connection)
        try:
            message = upgrader.poll(operation.image)
            if message is not None:
                verify_reading(operation, upgrader)
        finally:
            connection.disconnect()
    except ModemUntouched as error:
        settle(operation, error)
    except RecoverableModemFailure as error:
        # the modem is the router's uplink: silence during a flash is normal
        if not operation.follow_state.get("unreachable"):
            record_progress(
                operation_id,
                message=(
                    f"router unreachable ({one_line(error)}); "
                    "the flash goes on there"
                ),
            )
        state = dict(operation.follow_state, unreachable=True)
        _keep_following(operation, state)
    except Exception as error:
        settle(operation, error)
    else:
        state = dict(upgrader.state)
        if state.pop("unreachable", None):
            record_progress(operation_id, message="router reachable again")
        if message is None:
            _keep_following(operation, state)
        else:
            finish_operation(operation_id, OperationStatus.SUCCESS, message)


def _outcome_of_held_worker(operation, upgrader_class):
    """An upgrader that flashes while its worker waits: the worker finishes
    the operation; past the outcome deadline, it died."""
    remaining = (operation.outcome_deadline - timezone.now()).total_seconds()
    if remaining > 0:
        save_follow_state(operation.pk, operation.follow_state, remaining)
        return
    try:
        connection = _get_connection(operation.device)
    except RecoverableModemFailure as error:
        finish_operation(
            operation.pk,
            OperationStatus.FAILED,
            "the worker stopped during the flash and the router cannot be "
            f"reached ({one_line(error)}): the modem state is unknown, check "
            "the device",
        )
        return
    try:
        upgrader = _upgrader(upgrader_class, operation, connection)
        message = upgrader.outcome_after_worker_death(operation.image)
        verify_reading(operation, upgrader, context=message)
    except RecoverableModemFailure as error:
        error = IrrecoverableModemFailure(
            f"the modem state is unknown ({one_line(error)}), check the device"
        )
        settle(operation, error)
    except Exception as error:
        settle(operation, error)
    else:
        finish_operation(operation.pk, OperationStatus.SUCCESS, message)
    finally:
        connection.disconnect()


def _keep_following(operation, state):
    if timezone.now() >= operation.outcome_deadline:
        timeout = int(
            (operation.outcome_deadline - operation.started_at).total_seconds()
        )
        finish_operation(
            operation.pk,
            OperationStatus.FAILED,
            f"no outcome from the router within the deadline ({timeout}s after "
            "the start): the modem state is unknown, check the router",
        )
        return
    save_follow_state(operation.pk, state, app_settings.FOLLOW_INTERVAL)


def _clean_up(operation):
    stop_following(operation.pk)
    if operation.image is None:
        return
    if not (operation.flash_started or stages_ahead(operation)):
        return
    if image_kept_by_another(operation):
        return  # the device's next upgrade sends the same image: it stays
    try:
        connection = _get_connection(operation.device)
    except RecoverableModemFailure:
        return
    try:
        upgrader = _upgrader(_upgrader_class(operation), operation, connection)
        upgrader.clean_up(operation.image)
    except Exception:  # never fails a finished operation
        logger.exception("modem upgrade %s: clean-up failed", operation.pk)
    finally:
        connection.disconnect()


def settle(operation, error):
    """Turns an upgrader's exception into a status or a retry."""
    operation_id = operation.pk
    if isinstance(error, RecoverableModemFailure):
        _retry_or_fail(operation, error)
    elif isinstance(error, ModemUpgradeCancelled):
        record_progress(operation_id, message=str(error))
    elif isinstance(error, ModemUpgradeAborted):
        finish_operation(operation_id, OperationStatus.ABORTED, str(error))
    elif isinstance(error, ServiceNotRestored):
        if finish_operation(operation_id, OperationStatus.NO_SERVICE, str(error)):
            _reflash_previous(operation)
    elif isinstance(error, IrrecoverableModemFailure):
        finish_operation(operation_id, OperationStatus.FAILED, str(error))
    elif _transient_database_error(error):
        # the database went away (a restart, a failover) or an update found
        # no row for a moment, not the router: what is stored stands, and
        # the driver takes the operation up again (lost-worker retry before
        # the flash, the next follow-up after it)
        logger.warning(
            "modem upgrade %s: database error (%s), left to the driver",
            operation_id,
            one_line(error),
        )
        if operation.flash_started:
            try:
                save_follow_state(
                    operation_id, operation.follow_state, app_settings.FOLLOW_INTERVAL
                )
            except DatabaseError:
                pass  # still down: the follow-up's lease ends later
    else:  # a bug must still leave a terminal record
        logger.error("modem upgrade %s crashed", operation_id, exc_info=error)
        finish_operation(
            operation_id, OperationStatus.FAILED, f"unexpected error: {error!r}"
        )


def _reflash_previous(operation):
    """The last remediation step, when the operator allowed it: the previous
    build flashed again by a linked operation (never a loop)."""
    if not operation.upgrade_options.get("reflash_previous"):
        return
    try:
        linked = start_previous_build(operation.pk)
    except (LookupError, ValidationError) as error:
        reason = "; ".join(getattr(error, "messages", [])) or str(error)
        note_finished(
            operation.pk, f"remediation: no re-flash of the previous build ({reason})"
        )
        return
    note_finished(
        operation.pk,
        f"remediation: re-flashing the previous build "
        f"{linked.image.build.version} (operation {linked.pk})",
    )


def _transient_database_error(error):
    """A database error that says nothing of the upgrade (a connection lost,
    "forced update did not affect any rows" during a concurrent write);
    integrity and data errors are bugs."""
    return isinstance(error, DatabaseError) and not isinstance(
        error, (IntegrityError, DataError, ProgrammingError, NotSupportedError)
    )


def _upgrader(upgrader_class, operation, connection):
    """An upgrader of ``operation``, with its recorder (the write port)."""
    return upgrader_class(operation, connection, recorder=OperationRecorder(operation))


def verify_reading(operation, upgrader, context=""):
    """A success is the server's own reading of the flashed modem: from
    the upgrader's recorded reading, its ``read_version()``, else modem
    detection over SSH. Raises ``IrrecoverableModemFailure`` ("version
    unverified") unless the modem reports the build's version."""
    expected = operation.image.build.version
    recorder = upgrader.recorder
    version, why = recorder.read_version, ""
    if version is None:
        version = upgrader.read_version()
    if version is None:
        _info, why = recorder.read_modems()
        version = recorder.read_version
    if version == expected:
        return
    prefix = f"{context}: " if context else ""
    if version is None:
        raise IrrecoverableModemFailure(
            f"{prefix}version unverified: the server could not read the "
            f"flashed modem ({why}), check the device"
        )
    raise IrrecoverableModemFailure(
        f"{prefix}version unverified: the modem reports {version!r}, "
        f"expected {expected!r}"
    )


def _upgrader_class(operation):
    if operation.image is None:
        raise IrrecoverableModemFailure("the firmware image was deleted")
    try:
        return get_upgrader_class(operation.image.type)
    except LookupError as error:
        raise IrrecoverableModemFailure(str(error))


def _upgrader_time_limit(operation):
    try:
        return _upgrader_class(operation).worker_time_limit(operation.upgrade_options)
    except IrrecoverableModemFailure:
        return app_settings.TASK_TIMEOUT


def _get_connection(device):
    try:
        return working_connection(device)
    except NoWorkingDeviceConnectionError as error:
        reason = error.connection.failure_reason if error.connection else ""
        raise RouterUnreachable(
            f"no working SSH connection to the device{': ' + reason if reason else ''}"
        )


def retry_delay(attempt):
    """The documented policy: exponential backoff, capped, with jitter."""
    options = app_settings.RETRY_OPTIONS
    delay = min(
        options.get("retry_backoff", 60) * 2 ** max(attempt - 1, 0),
        options.get("retry_backoff_max", 600),
    )
    if options.get("retry_jitter", True):
        delay = random.randint(delay // 2, delay)  # spread a fleet's retries
    return delay


def waiting_deadline(operation):
    """Until when an offline router is waited for."""
    batch = operation.batch
    deadline = operation.deadline or (batch.deadline if batch else None)
    if deadline:
        return deadline
    return operation.created + timedelta(seconds=app_settings.OFFLINE_WAIT)


def _retry_or_fail(operation, error):
    Operation = load_model("ModemUpgradeOperation")
    # re-read: the upgrader may have crossed the point of no return
    current = Operation.objects.values(
        "flash_started", "attempts", "transfer_confirmed"
    ).get(pk=operation.pk)
    attempt = current["attempts"]
    untouched = isinstance(error, ModemUntouched)
    reason = one_line(error)
    if current["flash_started"] and not untouched:
        # the router may still be flashing: never start a second flash blindly
        finish_operation(
            operation.pk,
            OperationStatus.FAILED,
            f"{reason}; the flash had started, not retrying",
        )
        return
    now = timezone.now()
    if isinstance(error, PreflightRefused):
        _retry_gate(operation, reason, now)
        return
    if isinstance(error, RouterUnreachable):
        deadline = waiting_deadline(operation)
        delay = retry_delay(attempt)
        if now + timedelta(seconds=delay) >= deadline:
            finish_operation(
                operation.pk,
                OperationStatus.FAILED,
                f"{reason}; the router stayed offline until the deadline "
                f"({deadline:%Y-%m-%d %H:%M} UTC)",
            )
            return
        requeue_operation(
            operation.pk,
            f"{reason}; router offline, trying again in {delay}s "
            f"(waiting until {deadline:%Y-%m-%d %H:%M} UTC)",
            not_before=now + timedelta(seconds=delay),
            refund_attempt=True,
        )
        return
    if transfer_progressed(
        error, current["transfer_confirmed"]
    ) and record_transfer_progress(operation.pk, error.router_holds):
        # a link drop after progress: attempts count failures, and the next
        # one continues from what the router holds
        delay = retry_delay(attempt)
        requeue_operation(
            operation.pk,
            f"{reason}; the router holds {error.router_holds} bytes of the image, "
            f"more than before: resuming in {delay}s, not counted as an attempt",
            not_before=now + timedelta(seconds=delay),
            refund_attempt=True,
        )
        return
    if attempt >= MAX_ATTEMPTS:
        finish_operation(
            operation.pk,
            OperationStatus.FAILED,
            f"{reason}; giving up after {attempt} attempts",
        )
        return
    delay = retry_delay(attempt)
    requeue_operation(
        operation.pk,
        f"{reason}; retrying in {delay}s",
        not_before=now + timedelta(seconds=delay),
        untouched=untouched,
    )


def _retry_gate(operation, reason, now):
    """A refused pre-flight gate touched nothing: the gate is read again
    every ``PREFLIGHT_RETRY_INTERVAL`` until the deadline, without using an
    attempt (no worker waits: the retry is a row for the scheduler)."""
    deadline = waiting_deadline(operation)
    delay = app_settings.PREFLIGHT_RETRY_INTERVAL
    if now + timedelta(seconds=delay) >= deadline:
        finish_operation(
            operation.pk,
            OperationStatus.FAILED,
            f"{reason}; refused at every reading until the deadline "
            f"({deadline:%Y-%m-%d %H:%M:%S} UTC)",
        )
        return
    requeue_operation(
        operation.pk,
        f"{reason}; reading the gate again in {delay}s "
        f"(until {deadline:%Y-%m-%d %H:%M:%S} UTC)",
        not_before=now + timedelta(seconds=delay),
        refund_attempt=True,
    )


def recover_lost_workers(now):
    """Operations whose worker went silent before the point of no return
    (it died, or its machine did): the attempt is retried. After the point
    of no return the follow-up tasks decide, from the router."""
    Operation = load_model("ModemUpgradeOperation")
    limit = now - timedelta(seconds=app_settings.STUCK_OPERATION_TIMEOUT)
    lost = Operation.objects.filter(
        status=OperationStatus.IN_PROGRESS,
        flash_started=False,
        last_progress_at__lt=limit,
    ).select_related("batch")
    count = 0
    for operation in lost.iterator():
        _retry_or_fail(
            operation,
            RecoverableModemFailure(
                "the worker stopped before the flash started; nothing was "
                "written to the modem"
            ),
        )
        count += 1
    return count
