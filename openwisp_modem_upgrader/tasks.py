"""Thin Celery entry points; the work is done in ``engine.py`` and ``batch.py``."""

from celery import shared_task

from . import settings as app_settings
from .swapper import load_model


@shared_task(
    bind=True,
    name="openwisp_modem_upgrader.upgrade_modem_firmware",
    acks_late=True,
    soft_time_limit=app_settings.TASK_TIMEOUT,
    time_limit=app_settings.TASK_TIMEOUT + 60,
)
def upgrade_modem_firmware(self, operation_id):
    from .engine import run_operation

    run_operation(operation_id, task=self)


@shared_task(name="openwisp_modem_upgrader.fan_out_batch")
def fan_out_batch(batch_id):
    from .batch import start_batch

    batch = load_model("ModemBatchUpgradeOperation").objects.get(pk=batch_id)
    start_batch(batch)


@shared_task(name="openwisp_modem_upgrader.fail_stuck_operations")
def fail_stuck_operations():
    from .engine import fail_stuck_operations as sweep

    return sweep()


@shared_task(name="openwisp_modem_upgrader.detect_device_modems")
def detect_device_modems(device_id):
    from .detection import detect_devices

    return detect_devices([device_id])


@shared_task(name="openwisp_modem_upgrader.detect_modems")
def detect_modems(device_ids):
    from .detection import detect_devices

    return detect_devices(device_ids)


@shared_task(name="openwisp_modem_upgrader.sweep_modem_detection")
def sweep_modem_detection():
    from .detection import sweep

    return sweep()
