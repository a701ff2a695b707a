"""The only way work reaches Celery.

A leaf: tasks are looked up by their registered name (``tasks.py``, imported
by the app config alone), so the services and the scheduler publish work
without importing the task module, and the task module imports them one
way. The registered task objects are used (not ``send_task``): eager mode,
routes and the options set on each task apply as before.
"""

from celery import current_app
from django.core.cache import cache

from . import settings as app_settings

UPGRADE_TASK = "openwisp_modem_upgrader.upgrade_modem_firmware"
FOLLOW_TASK = "openwisp_modem_upgrader.follow_modem_upgrade"
FAN_OUT_TASK = "openwisp_modem_upgrader.fan_out_batch"
DISPATCH_TASK = "openwisp_modem_upgrader.dispatch_modem_upgrades"
DETECT_DEVICE_TASK = "openwisp_modem_upgrader.detect_device_modems"
DETECT_DEVICES_TASK = "openwisp_modem_upgrader.detect_modems"
# set while a dispatch message waits for a worker (``dispatch_soon``)
QUEUED_KEY = "openwisp-modem-upgrader:dispatch-queued"


def _task(name):
    return current_app.tasks[name]


def dispatch_soon():
    """Asks for a dispatch without waiting for the next beat.

    One dispatch message at a time: fifty upgrades finishing together ask
    once, not fifty times (the note is dropped when that dispatch starts,
    or expires with its message).
    """
    if cache.add(QUEUED_KEY, 1, timeout=app_settings.CONTROL_MESSAGE_EXPIRES):
        _task(DISPATCH_TASK).delay()


def upgrade(operation_id, time_limit, token):
    """The worker's part of one attempt, limited to ``time_limit`` seconds;
    ``token``: the claim's ``dispatched_at`` (ISO), only the latest starts."""
    _task(UPGRADE_TASK).apply_async(
        (str(operation_id), token),
        soft_time_limit=time_limit,
        time_limit=time_limit + 60,
    )


def follow(operation_id, lease_token):
    _task(FOLLOW_TASK).delay(str(operation_id), lease_token)


def fan_out(batch_id):
    _task(FAN_OUT_TASK).delay(str(batch_id))


def detect_device(device_id):
    _task(DETECT_DEVICE_TASK).delay(str(device_id))


def detect_devices(device_ids):
    _task(DETECT_DEVICES_TASK).delay([str(pk) for pk in device_ids])
