#!/usr/bin/env python
"""Queries and messages of a mass upgrade as the fleet grows.

Usage: .venv/bin/python benchmarks/fleet_engine.py [DEVICES...]
(default: 100 1000 10000)

For each fleet size, in a throwaway test database (SpatiaLite, or PostGIS
with DB=postgres), creates that many devices with a detected modem, then
prints the SQL queries and time of the preview (count of eligible devices),
of the fan-out (one operation per device, in waves) and of one scheduler
dispatch, and how many messages the dispatch published for a batch limited
to K=50 devices at once: constant queries, and K messages whatever the
fleet. Publishing is recorded, not sent to a broker. The fan-out inserts
in bulk: 500 rows per INSERT on PostgreSQL, fewer on SQLite (its limit on
query variables), hence a few more queries per thousand devices there.

The in-flight figure with real routers and workers is printed by the
real-stack run (tests/integration/real_stack.py, scenario 5).
"""

import os
import sys
import time
import uuid
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
os.environ["TESTING"] = "1"

import django  # noqa: E402

django.setup()

import swapper  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from openwisp_modem_upgrader.batch import preview_batch, start_batch  # noqa: E402
from openwisp_modem_upgrader.scheduler import dispatch  # noqa: E402
from openwisp_modem_upgrader.tests import (  # noqa: E402
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
    TestModemUpgraderMixin,
)

LIMIT = 50


def measure(function):
    # the log keeps 9,000 queries: emptied so each count starts from zero
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - started
    return result, len(queries), elapsed


def fleet(factory, org, credentials, count):
    Device = swapper.load_model("config", "Device")
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")
    devices = [
        Device(
            name=f"bench-{uuid.uuid4().hex[:12]}",
            mac_address=":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:6]),
            organization=org,
            key=uuid.uuid4().hex,
        )
        for _ in range(count)
    ]
    Device.objects.bulk_create(devices, batch_size=1000)
    DeviceConnection.objects.bulk_create(
        [DeviceConnection(device=d, credentials=credentials) for d in devices],
        batch_size=1000,
    )
    DeviceModemFirmware.objects.bulk_create(
        [
            DeviceModemFirmware(
                device=d,
                usb_path="2-1",
                modem_model="FN990A28",
                modem_firmware_version="M0R.010000-B020",
            )
            for d in devices
        ],
        batch_size=1000,
    )
    return devices


def main(sizes):
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    factory = TestModemUpgraderMixin()
    org = factory._get_org()
    credentials = factory._create_credentials(organization=org)
    image = factory._create_image()
    print(
        f"{'devices':>8} {'preview q':>9} {'preview s':>9} {'fan-out q':>9} "
        f"{'fan-out s':>9} {'dispatch q':>10} {'published':>9}"
    )
    for count in sizes:
        devices = fleet(factory, org, credentials, count)
        batch = ModemBatchUpgradeOperation(
            build=image.build,
            organization=org,
            device_ids=[str(d.pk) for d in devices],
            max_concurrent=LIMIT,
            canary_size=10,
            wave_size=1000,
        )
        eligible, preview_q, preview_s = measure(
            lambda: preview_batch(batch)["devices"].count()
        )
        batch.save()
        # the dispatch the fan-out asks for is measured on its own below
        with mock.patch("openwisp_modem_upgrader.publish.dispatch_soon"):
            _, fanout_q, fanout_s = measure(lambda: start_batch(batch))
        batch.refresh_from_db()
        # the canary wave (10) would limit the first dispatch: open the
        # waves up to the one with 1000 devices to show the K bound
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(current_wave=2)
        with mock.patch(
            "openwisp_modem_upgrader.scheduler.publish_upgrade"
        ) as publish, mock.patch(
            "openwisp_modem_upgrader.settings.MAX_CONCURRENT_UPGRADES", 10**6
        ):
            _, dispatch_q, _ = measure(dispatch)
        print(
            f"{count:>8} {preview_q:>9} {preview_s:>9.2f} {fanout_q:>9} "
            f"{fanout_s:>9.2f} {dispatch_q:>10} {publish.call_count:>9}"
        )
        assert eligible == count, (eligible, count)
        assert publish.call_count == LIMIT, publish.call_count
        batch.operations.all().delete()
        batch.delete()
        DeviceModemFirmware.objects.filter(device__in=devices).delete()
        swapper.load_model("config", "Device").objects.filter(
            pk__in=[d.pk for d in devices]
        ).delete()


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100, 1000, 10000])
