"""Runs one upgrade operation in a worker and maps every outcome to a status.

The upgrader only raises; this is where exceptions become statuses, retries
are scheduled, and where a worker's death is detected later (sweeper).
"""

import logging
from datetime import timedelta

import swapper
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from openwisp_controller.connection.exceptions import NoWorkingDeviceConnectionError

from . import settings as app_settings
from .base.models import OperationStatus
from .exceptions import (
    IrrecoverableModemFailure,
    ModemUpgradeAborted,
    ModemUpgradeCancelled,
    RecoverableModemFailure,
)
from .swapper import load_model
from .transfer import one_line
from .upgrade import (
    finish_operation,
    mark_in_progress,
    record_progress,
    requeue_operation,
)
from .upgraders import get_upgrader_class

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = app_settings.RETRY_OPTIONS.get("max_retries", 2) + 1


def run_operation(operation_id, task=None):
    Operation = load_model("ModemUpgradeOperation")
    if not mark_in_progress(operation_id):
        # cancelled or finished meanwhile, or a duplicate delivery: a task
        # redelivered after its worker died (acks_late) finds the operation
        # in progress and never starts a second upgrade (nor a second
        # flash); the stuck-operation sweeper finishes it from the router's
        # journal
        if task is not None and task.request.delivery_info.get("redelivered"):
            logger.warning(
                "modem upgrade %s: task delivered again while the operation "
                "is not idle (its worker stopped?): not started twice",
                operation_id,
            )
        return
    operation = Operation.objects.select_related(
        "device", "image__build__category"
    ).get(pk=operation_id)
    attempt = operation.attempts
    try:
        if operation.image is None:
            raise IrrecoverableModemFailure("the firmware image was deleted")
        try:
            upgrader_class = get_upgrader_class(operation.image.type)
        except LookupError as error:
            raise IrrecoverableModemFailure(str(error))
        record_progress(operation_id, message=f"attempt {attempt} of {MAX_ATTEMPTS}")
        connection = _get_connection(operation.device)
        upgrader = upgrader_class(operation, connection)
        # a partial image is kept on the router only for a retry to continue
        upgrader.retry_follows = attempt < MAX_ATTEMPTS
        try:
            upgrader.upgrade(operation.image)
        finally:
            connection.disconnect()
    except RecoverableModemFailure as error:
        _retry_or_fail(operation, attempt, error, task)
    except ModemUpgradeCancelled as error:
        record_progress(operation_id, message=str(error))
    except ModemUpgradeAborted as error:
        finish_operation(operation_id, OperationStatus.ABORTED, str(error))
    except IrrecoverableModemFailure as error:
        finish_operation(operation_id, OperationStatus.FAILED, str(error))
    except SoftTimeLimitExceeded:
        finish_operation(
            operation_id,
            OperationStatus.FAILED,
            f"the upgrade exceeded the time limit of {app_settings.TASK_TIMEOUT}s",
        )
    except Exception as error:  # a bug must still leave a terminal record
        logger.exception("modem upgrade %s crashed", operation_id)
        finish_operation(
            operation_id, OperationStatus.FAILED, f"unexpected error: {error!r}"
        )
    else:
        finish_operation(operation_id, OperationStatus.SUCCESS, "upgrade successful")


def _get_connection(device):
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")
    try:
        return DeviceConnection.get_working_connection(device)
    except NoWorkingDeviceConnectionError as error:
        reason = error.connection.failure_reason if error.connection else ""
        raise RecoverableModemFailure(
            f"no working SSH connection to the device{': ' + reason if reason else ''}"
        )


def _retry_or_fail(operation, attempt, error, task):
    from .tasks import upgrade_modem_firmware

    # re-read: the upgrader crossed the point of no return after the load
    flash_started = (
        type(operation)
        .objects.filter(pk=operation.pk)
        .values_list("flash_started", flat=True)
        .get()
    )
    if flash_started:
        # the router may still be flashing: never start a second flash blindly
        finish_operation(
            operation.pk,
            OperationStatus.FAILED,
            f"{one_line(error)}; the flash had started, not retrying",
        )
        return
    if attempt >= MAX_ATTEMPTS:
        finish_operation(
            operation.pk,
            OperationStatus.FAILED,
            f"{one_line(error)}; giving up after {attempt} attempts",
        )
        return
    options = app_settings.RETRY_OPTIONS
    delay = min(
        options.get("retry_backoff", 60) * 2 ** (attempt - 1),
        options.get("retry_backoff_max", 600),
    )
    if requeue_operation(operation.pk, f"{one_line(error)}; retrying in {delay}s"):
        upgrade_modem_firmware.apply_async((str(operation.pk),), countdown=delay)


def fail_stuck_operations():
    """Finishes operations whose worker died: no progress for too long.

    When the router can still be reached its journal decides the outcome;
    otherwise the record says truthfully that the outcome is unknown.
    """
    Operation = load_model("ModemUpgradeOperation")
    limit = timezone.now() - timedelta(seconds=app_settings.STUCK_OPERATION_TIMEOUT)
    stuck = Operation.objects.filter(
        status=OperationStatus.IN_PROGRESS, last_progress_at__lt=limit
    ).select_related("device", "image")
    finished = 0
    for operation in stuck.iterator():
        status, message = _outcome_from_router(operation)
        finished += finish_operation(operation.pk, status, message)
    idle_limit = timezone.now() - timedelta(seconds=app_settings.TASK_TIMEOUT * 2)
    for operation_id in Operation.objects.filter(
        status=OperationStatus.IDLE, created__lt=idle_limit
    ).values_list("pk", flat=True):
        finished += finish_operation(
            operation_id, OperationStatus.FAILED, "never picked up by a worker"
        )
    return finished


def _outcome_from_router(operation):
    if not operation.flash_started:
        return (
            OperationStatus.FAILED,
            "the worker stopped before the flash started; nothing was written "
            "to the modem",
        )
    unknown = (
        "the worker stopped during the flash and the router cannot be reached "
        "({error}): the modem state is unknown, check the device"
    )
    try:
        upgrader_class = get_upgrader_class(operation.image.type)
        connection = _get_connection(operation.device)
    except (LookupError, AttributeError, RecoverableModemFailure) as error:
        return OperationStatus.FAILED, unknown.format(error=one_line(error))
    upgrader = upgrader_class(operation, connection)
    if not hasattr(upgrader, "outcome_after_worker_death"):
        connection.disconnect()
        return (
            OperationStatus.FAILED,
            "the worker stopped during the flash: the modem state is unknown, "
            "check the device",
        )
    try:
        message = upgrader.outcome_after_worker_death(operation.image)
    except ModemUpgradeAborted as error:
        return OperationStatus.ABORTED, str(error)
    except RecoverableModemFailure as error:
        return OperationStatus.FAILED, unknown.format(error=one_line(error))
    except IrrecoverableModemFailure as error:
        return OperationStatus.FAILED, str(error)
    finally:
        connection.disconnect()
    return OperationStatus.SUCCESS, message
