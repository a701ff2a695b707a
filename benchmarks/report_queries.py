#!/usr/bin/env python
"""Cost of one device progress report: SQL queries and in-process latency.

Usage: .venv/bin/python benchmarks/report_queries.py [REPORTS]

Runs against a throwaway test database (SpatiaLite, or PostGIS with
DB=postgres). Prints queries per report, which must not grow with the log
size or the number of reports, and reports per second of one process.
"""

import json
import os
import sys
import time
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
os.environ["TESTING"] = "1"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import (  # noqa: E402
    CaptureQueriesContext,
    setup_test_environment,
)
from django.urls import reverse  # noqa: E402

from openwisp_modem_upgrader.tests import TestModemUpgraderMixin  # noqa: E402
from openwisp_modem_upgrader.upgrade import (  # noqa: E402
    mark_in_progress,
    start_upgrade,
)


def main(reports):
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    factory = TestModemUpgraderMixin()
    device = factory._create_modem_device()
    with mock.patch("openwisp_modem_upgrader.tasks.upgrade_modem_firmware.delay"):
        operation = start_upgrade(device, factory._create_image())
    mark_in_progress(operation.pk)
    url = reverse("modem_upgrader:api_upgrade_operation_detail", args=[operation.pk])
    url = f"{url}?key={device.key}"
    client = Client()
    queries = []
    start = time.monotonic()
    for seq in range(1, reports + 1):
        body = {
            "seq": seq,
            "progress_percent": 20 + seq * 70 // reports,
            "status": "in-progress",
            "log": f"[+] flashing [modem] {seq}%, transferred {seq}/100 B",
        }
        with CaptureQueriesContext(connection) as captured:
            response = client.post(url, json.dumps(body), "application/json")
        assert response.status_code == 200, response.content
        queries.append(len(captured))
    elapsed = time.monotonic() - start
    print(f"reports: {reports}")
    print(f"queries per report: min {min(queries)} max {max(queries)}")
    print(f"reports per second (1 process, test client): {reports / elapsed:.0f}")
    print(f"mean latency: {elapsed * 1000 / reports:.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
