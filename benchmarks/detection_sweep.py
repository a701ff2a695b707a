#!/usr/bin/env python
"""Times a modem detection sweep of emulated routers.

Usage: .venv/bin/python benchmarks/detection_sweep.py [ROUTERS [UNREACHABLE]]
(default 50 routers, 4 unreachable of each kind)

Starts ROUTERS emulated routers (dropbear + BusyBox + fake modem), each on
its own loopback address 127.0.1.x, registers them in a throwaway test
database (SpatiaLite, or PostGIS with DB=postgres), runs the periodic sweep
with the default concurrency bound and prints routers per second, SSH
sessions per router (counted from each dropbear's log) and the peak number
of detections running at once (from the recorded timestamps). UNREACHABLE
more devices of each kind measure what an unreachable router costs the
sweep with the default timeouts: a "silent" one (a loopback listener that
accepts the TCP connection and never sends the SSH banner, like a router
whose link hangs) and a "refused" one (nothing listens). A second sweep
started while the first runs is refused by the lease (printed). Needs root
(dropbear runs in a private mount namespace). On SQLite detections run one
at a time (see detection.py): measure with DB=postgres.
"""

import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
os.environ["TESTING"] = "1"

import django  # noqa: E402

django.setup()

from device.router import EmulatedRouter  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from openwisp_modem_upgrader import detection  # noqa: E402
from openwisp_modem_upgrader import settings as app_settings  # noqa: E402
from openwisp_modem_upgrader.swapper import load_model  # noqa: E402
from openwisp_modem_upgrader.tests.test_detection import (  # noqa: E402
    DetectionMixin,
    max_overlap,
)


def silent_listener(host):
    """A TCP listener that accepts and never answers (a hung router)."""
    server = socket.socket()
    server.bind((host, 0))
    server.listen(64)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server


def closed_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Unreachable:
    """What ``DetectionMixin.router_device`` needs of a router."""

    def __init__(self, host, port, private_key):
        self.host, self.port, self.private_key = host, port, private_key


def durations(devices):
    runs = load_model("DeviceModemDetection").objects.filter(device__in=devices)
    seconds = sorted((r.attempted_at - r.started_at).total_seconds() for r in runs)
    if not seconds:
        return "none"
    statuses = sorted({str(r.status) for r in runs})
    return (
        f"{len(seconds)} detections, {seconds[0]:.1f}-{seconds[-1]:.1f}s each "
        f"({', '.join(statuses)})"
    )


def main(count, unreachable):
    setup_test_environment()
    database_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0)
    routers, listeners = [], []
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
        reachable = [factory.router_device(r, organization=org) for r in routers]
        key = routers[0].private_key
        silent, refused = [], []
        for number in range(unreachable):
            host = f"127.0.2.{number + 1}"
            listener = silent_listener(host)
            listeners.append(listener)
            port = listener.getsockname()[1]
            silent.append(
                factory.router_device(Unreachable(host, port, key), organization=org)
            )
            host = f"127.0.3.{number + 1}"
            refused.append(
                factory.router_device(
                    Unreachable(host, closed_port(host), key), organization=org
                )
            )
        second = []
        started = time.monotonic()

        def first_sweep():
            try:
                second.append(detection.sweep())
            finally:
                connection.close()

        sweeping = threading.Thread(target=first_sweep)
        sweeping.start()
        # a second sweep while the first holds the lease
        while cache.get(detection.SweepLease.key) is None and sweeping.is_alive():
            time.sleep(0.01)
        refused_sweep = detection.sweep()
        sweeping.join()
        elapsed = time.monotonic() - started
        counts = second[0]
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
        print(f"reachable: {durations(reachable)}")
        print(f"silent (no SSH banner): {durations(silent)}")
        print(f"refused (nothing listens): {durations(refused)}")
        print(f"a second sweep during the first: {refused_sweep} (skipped)")
        ok = counts.get("ok") == count and sessions == count
        return 0 if ok and refused_sweep is None else 1
    finally:
        for listener in listeners:
            listener.close()
        for router in routers:
            router.stop()
        connection.creation.destroy_test_db(database_name, verbosity=0)


def _ssh_sessions(router):
    with open(os.path.join(router.root, "dropbear.log")) as f:
        return f.read().count("auth succeeded")


if __name__ == "__main__":
    arguments = [int(arg) for arg in sys.argv[1:]]
    sys.exit(main(*(arguments + [50, 4][len(arguments) :])))
