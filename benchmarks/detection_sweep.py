#!/usr/bin/env python
"""Times a modem detection sweep of emulated routers.

Usage: .venv/bin/python benchmarks/detection_sweep.py [ROUTERS]   (default 50)

Starts ROUTERS emulated routers (dropbear + BusyBox + fake modem), each on
its own loopback address 127.0.1.x, registers them in a throwaway test
database (SpatiaLite, or PostGIS with DB=postgres), runs the periodic sweep
with the default concurrency bound and prints routers per second, SSH
sessions per router (counted from each dropbear's log) and the peak number
of detections running at once (from the recorded timestamps). Needs root
(dropbear runs in a private mount namespace). On SQLite detections run one
at a time (see detection.py): measure with DB=postgres.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
os.environ["TESTING"] = "1"

import django  # noqa: E402

django.setup()

from device.router import EmulatedRouter  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from openwisp_modem_upgrader import detection  # noqa: E402
from openwisp_modem_upgrader import settings as app_settings  # noqa: E402
from openwisp_modem_upgrader.swapper import load_model  # noqa: E402
from openwisp_modem_upgrader.tests.test_detection import (  # noqa: E402
    DetectionMixin,
    max_overlap,
)


def main(count):
    setup_test_environment()
    database_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0)
    routers = []
    try:
        started = time.monotonic()
        for number in range(count):
            router = EmulatedRouter(host=f"127.0.1.{number + 1}")
            router.start()
            routers.append(router)
        print(f"{count} routers started in {time.monotonic() - started:.1f}s")
        factory = DetectionMixin()
        factory.addCleanup = lambda *args: None
        org = factory._get_org()
        for router in routers:
            factory.router_device(router, organization=org)
        started = time.monotonic()
        counts = detection.sweep()
        elapsed = time.monotonic() - started
        sessions = sum(_ssh_sessions(router) for router in routers)
        runs = load_model("DeviceModemDetection").objects.all()
        peak = max_overlap([(r.started_at, r.attempted_at) for r in runs])
        modems = load_model("DeviceModemFirmware").objects.count()
        statuses = {str(status): number for status, number in counts.items()}
        print(f"statuses: {statuses}; modem rows: {modems}")
        print(
            f"sweep of {count} routers: {elapsed:.2f}s, "
            f"{count / elapsed:.1f} routers/s, "
            f"bound {app_settings.DETECTION_CONCURRENCY}, peak concurrent {peak}"
        )
        print(f"SSH sessions per router: {sessions / count:.2f}")
        return 0 if counts.get("ok") == count and sessions == count else 1
    finally:
        for router in routers:
            router.stop()
        connection.creation.destroy_test_db(database_name, verbosity=0)


def _ssh_sessions(router):
    with open(os.path.join(router.root, "dropbear.log")) as f:
        return f.read().count("auth succeeded")


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
