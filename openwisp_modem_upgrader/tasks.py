"""Thin Celery entry points; the work is done in ``engine.py``,
``scheduler.py``, ``batch.py`` and ``detection.py``. Every task is short
except the worker's part of an upgrade, whose time limit the scheduler sets
per operation, and modem detection (SSH sessions to routers).

The top of the job system: only the app config imports this module (it
registers the tasks); everything else publishes work by task name through
``publish.py``.

The engine's own short tasks (driver, dispatch, follow-ups, fan-out) name
``CONTROL_QUEUE``, which takes precedence over the project's routes: they
never wait behind image transfers (docs/developer/deployment.rst). The
others follow the project's routes (``modem_upgrader`` by the documented one).
"""

from celery import shared_task

from . import settings as app_settings
from .batch import start_batch
from .detection import detect_devices, sweep
from .engine import follow_operation, run_operation
from .policy import run_policies
from .scheduler import dispatch, drive
from .swapper import load_model

CONTROL = {"queue": app_settings.CONTROL_QUEUE}
# superseded by the next driver tick when not taken within its period
CONTROL_TICK = dict(CONTROL, expires=app_settings.CONTROL_MESSAGE_EXPIRES)


@shared_task(
    bind=True,
    name="openwisp_modem_upgrader.upgrade_modem_firmware",
    acks_late=True,
    soft_time_limit=app_settings.TASK_TIMEOUT,
    time_limit=app_settings.TASK_TIMEOUT + 60,
)
def upgrade_modem_firmware(self, operation_id, dispatched_at=None):
    run_operation(operation_id, task=self, dispatched_at=dispatched_at)


@shared_task(name="openwisp_modem_upgrader.fan_out_batch", **CONTROL)
def fan_out_batch(batch_id):
    batch = load_model("ModemBatchUpgradeOperation").objects.get(pk=batch_id)
    start_batch(batch)


@shared_task(
    name="openwisp_modem_upgrader.follow_modem_upgrade",
    acks_late=True,
    soft_time_limit=240,
    time_limit=300,
    # past its lease a newer follow-up replaces it (scheduler.follow_due)
    expires=app_settings.FOLLOW_LEASE,
    **CONTROL,
)
def follow_modem_upgrade(operation_id, lease=None):
    follow_operation(operation_id, lease=lease)


@shared_task(name="openwisp_modem_upgrader.dispatch_modem_upgrades", **CONTROL_TICK)
def dispatch_modem_upgrades():
    return dispatch()


@shared_task(name="openwisp_modem_upgrader.drive_modem_upgrades", **CONTROL_TICK)
def drive_modem_upgrades():
    return drive()


@shared_task(name="openwisp_modem_upgrader.fail_stuck_operations", **CONTROL_TICK)
def fail_stuck_operations():
    """Kept for beat schedules written for earlier versions: the driver."""
    return drive()


@shared_task(name="openwisp_modem_upgrader.detect_device_modems")
def detect_device_modems(device_id):
    return detect_devices([device_id])


@shared_task(name="openwisp_modem_upgrader.detect_modems")
def detect_modems(device_ids):
    return detect_devices(device_ids)


@shared_task(name="openwisp_modem_upgrader.sweep_modem_detection")
def sweep_modem_detection():
    return sweep()


@shared_task(name="openwisp_modem_upgrader.enforce_firmware_policies")
def enforce_firmware_policies():
    """The firmware policies' periodic pass (``policy.py``); on the
    project's routes like detection: a late pass only enrolls later, the
    dispatch it asks for goes to the control queue."""
    return run_policies()
