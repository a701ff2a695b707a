"""Loaded into the benchmark's Celery workers (``--include latency_probe``):
appends one line per task start and end of the engine's driver and
follow-ups to ``$LATENCY_PROBE_FILE`` (tab-separated: event, task, wall
time, operation id). Benchmark only; nothing in the module reads it."""

import os
import time

from celery.signals import task_postrun, task_prerun

WATCHED = {
    "openwisp_modem_upgrader.drive_modem_upgrades": "drive",
    "openwisp_modem_upgrader.follow_modem_upgrade": "follow",
}


def _record(event, task, args):
    short = WATCHED.get(getattr(task, "name", ""))
    path = os.environ.get("LATENCY_PROBE_FILE")
    if not short or not path:
        return
    operation = str(args[0]) if args else ""
    # one small O_APPEND write per line: processes do not interleave
    with open(path, "a") as probe:
        probe.write(f"{event}\t{short}\t{time.time():.6f}\t{operation}\n")


@task_prerun.connect
def task_started(task=None, args=None, **kwargs):
    _record("start", task, args)


@task_postrun.connect
def task_ended(task=None, args=None, **kwargs):
    _record("end", task, args)
