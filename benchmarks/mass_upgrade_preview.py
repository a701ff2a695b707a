#!/usr/bin/env python
"""Time and SQL queries of the mass-upgrade preview as the fleet grows.

Usage: DB=postgres .venv/bin/python benchmarks/mass_upgrade_preview.py [DEVICES...]
(default: 10000 100000; start PostgreSQL first with scripts/postgres.sh;
``--keep`` keeps the seeded test database, and a later run reuses it)

In a throwaway test database, grows one organization's fleet to each size
(cumulatively) with every exclusion reason represented: most routers
eligible, one in ten with a second modem, and a few percent each
deactivated, upgrading already, of another modem model, already on the
version, of another router model, without an enabled SSH connection, never
detected, and detected without a modem. A second organization of the same
size is seeded too, so the preview has to keep to its own fleet. Then
prints, for the REST API's preview (``GET build/<pk>/upgrade/``) and for
the admin's mass-upgrade page, the median wall time of 3 requests
(after one warm-up request) and the SQL queries of one request: constant
whatever the fleet, and the time bound by the database.
"""

import os
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
os.environ["TESTING"] = "1"

import django  # noqa: E402

django.setup()

import swapper  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from openwisp_modem_upgrader.statuses import (  # noqa: E402
    DetectionStatus,
    OperationStatus,
)
from openwisp_modem_upgrader.swapper import load_model  # noqa: E402
from openwisp_modem_upgrader.tests import (  # noqa: E402
    FN990A28,
    NEW_VERSION,
    OLD_VERSION,
    DeviceModemFirmware,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)

Device = swapper.load_model("config", "Device")
Organization = swapper.load_model("openwisp_users", "Organization")
ModemFirmwareImage = load_model("ModemFirmwareImage")
DeviceConnection = swapper.load_model("connection", "DeviceConnection")
DeviceModemDetection = load_model("DeviceModemDetection")
REPEAT = 3
# one device in 50 of each kind, the rest eligible (i % 50 >= 8)
KINDS = (
    "deactivated",
    "running",
    "other-model",
    "on-version",
    "other-board",
    "no-connection",
    "never-detected",
    "no-modem",
)


def seed(org, credentials, image, start, count):
    """Devices ``start`` .. ``start + count`` of ``org``, in bulk."""
    now = timezone.now()
    devices = []
    for i in range(start, start + count):
        kind = KINDS[i % 50] if i % 50 < len(KINDS) else "eligible"
        devices.append(
            Device(
                name=f"{org.slug}-{i:07d}",
                mac_address=":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:6]),
                organization=org,
                key=uuid.uuid4().hex,
                model="Router B" if kind == "other-board" else "Router A",
                _is_deactivated=kind == "deactivated",
            )
        )
    Device.objects.bulk_create(devices, batch_size=2000)
    connections, modems, detections, operations = [], [], [], []
    for offset, device in enumerate(devices):
        i = start + offset
        kind = KINDS[i % 50] if i % 50 < len(KINDS) else "eligible"
        connections.append(
            DeviceConnection(
                device=device,
                credentials=credentials,
                enabled=kind != "no-connection",
            )
        )
        if kind == "never-detected":
            continue
        detections.append(
            DeviceModemDetection(
                device=device,
                attempted_at=now,
                succeeded_at=now,
                status=(
                    DetectionStatus.NO_MODEM
                    if kind == "no-modem"
                    else DetectionStatus.OK
                ),
                modem_count=0 if kind == "no-modem" else 1,
            )
        )
        if kind == "no-modem":
            continue
        modems.append(
            DeviceModemFirmware(
                device=device,
                usb_path="2-1",
                modem_manufacturer="Telit",
                modem_model="FN990A40" if kind == "other-model" else FN990A28,
                modem_firmware_version=(
                    NEW_VERSION if kind == "on-version" else OLD_VERSION
                ),
                modem_imei=f"35{i:013d}",
            )
        )
        if i % 10 == 9:
            modems.append(
                DeviceModemFirmware(
                    device=device,
                    usb_path="1-1",
                    modem_manufacturer="Telit",
                    modem_model=FN990A28,
                    modem_firmware_version=OLD_VERSION,
                    modem_imei=f"36{i:013d}",
                )
            )
        if kind == "running":
            operations.append(
                ModemUpgradeOperation(
                    device=device, image=image, status=OperationStatus.IN_PROGRESS
                )
            )
    DeviceConnection.objects.bulk_create(connections, batch_size=2000)
    DeviceModemDetection.objects.bulk_create(detections, batch_size=2000)
    DeviceModemFirmware.objects.bulk_create(modems, batch_size=2000)
    ModemUpgradeOperation.objects.bulk_create(operations, batch_size=2000)


def measure(client, url, params):
    timings = []
    for attempt in range(REPEAT + 1):
        connection.queries_log.clear()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, params)
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content[:500]
        if attempt:  # the first one warms caches up
            timings.append(elapsed)
    return statistics.median(timings), len(queries), response


def main(sizes, keep):
    # not setup_test_environment(): its template instrumentation (a copy of
    # every context for the test client) is no part of a served page
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=keep)
    try:
        run(sizes)
    finally:
        if not keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)


def run(sizes):
    factory = TestModemUpgraderMixin()
    image = ModemFirmwareImage.objects.filter(boards=["Router A"]).first()
    if image is None:  # a new database (else one kept by --keep)
        factory._create_org(name="other", slug="other")
        image = factory._create_image(boards=["Router A"])
    orgs = [factory._get_org(), Organization.objects.get(slug="other")]
    credentials = [
        factory._get_credentials(organization=org, name=f"creds {org.slug}")
        for org in orgs
    ]
    client = Client()
    client.force_login(factory._get_admin())
    api_url = reverse("modem_upgrader:api_build_upgrade", args=[image.build.pk])
    admin_url = reverse("admin:modem_upgrader_mass_upgrade", args=[image.build.pk])
    params = {"organization": str(orgs[0].pk)}
    print(
        f"{'devices':>8} {'API s':>7} {'API q':>6} {'admin s':>8} {'admin q':>8} "
        f"{'eligible':>9} {'excluded':>9}"
    )
    seeded = Device.objects.filter(organization=orgs[0]).count()
    for size in sizes:
        for org, creds in zip(orgs, credentials):
            seed(org, creds, image, seeded, size - seeded)
        seeded = max(seeded, size)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        api_s, api_q, response = measure(client, api_url, params)
        admin_s, admin_q, _ = measure(client, admin_url, params)
        data = response.json()
        print(
            f"{size:>8} {api_s:>7.3f} {api_q:>6} {admin_s:>8.3f} {admin_q:>8} "
            f"{data['devices_count']:>9} {data['excluded_count']:>9}"
        )
        # the mix above: 42 of 50 eligible
        assert data["devices_count"] == size * 42 // 50, data["devices_count"]


if __name__ == "__main__":
    # --keep: keep the seeded database for the next run (which reuses it)
    keep = "--keep" in sys.argv
    sizes = [int(arg) for arg in sys.argv[1:] if arg != "--keep"]
    main(sizes or [10000, 100000], keep)
