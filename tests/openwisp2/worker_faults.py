"""Faults injected into a Celery worker of the real-stack run, by environment.

``MODEM_WORKER_PAUSE_AFTER_NO_RETURN=<seconds>:<marker file>`` makes the
worker wait that long right after crossing the point of no return
(``recorder.mark_flash_started``, the upgraders' write port), before
the flashing wrapper starts, and write the operation id to the marker file:
the run kills the worker inside that window. Test project only; nothing in
the module reads it.
"""

import os
import time

from celery.signals import worker_process_init

PAUSE_AFTER_NO_RETURN = "MODEM_WORKER_PAUSE_AFTER_NO_RETURN"


@worker_process_init.connect
def install_faults(**kwargs):
    setting = os.environ.get(PAUSE_AFTER_NO_RETURN)
    if not setting:
        return
    seconds, marker = setting.split(":", 1)
    from openwisp_modem_upgrader import recorder

    crossing = recorder.mark_flash_started

    def pause_after_crossing(operation_id, *args, **kwargs):
        crossed = crossing(operation_id, *args, **kwargs)
        with open(marker, "w") as marker_file:
            marker_file.write(str(operation_id))
        time.sleep(float(seconds))
        return crossed

    recorder.mark_flash_started = pause_after_crossing
