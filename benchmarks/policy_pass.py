#!/usr/bin/env python
"""One firmware-policy pass as the fleet grows.

Usage: .venv/bin/python benchmarks/policy_pass.py [DEVICES...]
(default: 100 1000 10000)

For each fleet size, in a throwaway test database (SpatiaLite, or PostGIS
with DB=postgres), creates that many devices with a detected modem behind a
policy's build, then prints the SQL queries and seconds of one policy pass
(every modem enrolled into the policy's rollout) and of a second pass
(nothing left to enroll). The dispatch a pass asks for is recorded, not
run. The queries must not grow with the fleet, except
the bulk INSERT's chunks (500 rows each on PostgreSQL, fewer on SQLite).
"""

import os
import sys
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
os.environ["TESTING"] = "1"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from fleet_engine import fleet, measure  # noqa: E402

from openwisp_modem_upgrader.policy import run_policies  # noqa: E402
from openwisp_modem_upgrader.swapper import load_model  # noqa: E402
from openwisp_modem_upgrader.tests import TestModemUpgraderMixin  # noqa: E402


def main(sizes):
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    factory = TestModemUpgraderMixin()
    org = factory._get_org()
    credentials = factory._create_credentials(organization=org)
    image = factory._create_image()
    Policy = load_model("ModemFirmwarePolicy")
    Operation = load_model("ModemUpgradeOperation")
    print(f"database: {connection.vendor}")
    print("devices  pass1 queries  pass1 s  enrolled  pass2 queries  pass2 s")
    for size in sizes:
        Operation.objects.all().delete()
        Policy.objects.all().delete()
        load_model("ModemBatchUpgradeOperation").objects.all().delete()
        existing = load_model("DeviceModemFirmware").objects.count()
        fleet(factory, org, credentials, size - existing)
        policy = Policy.objects.create(
            organization=org, build=image.build, name=f"policy-{size}"
        )
        # the dispatch the pass asks for on commit is the scheduler's work
        # (benchmarks/fleet_engine.py): recorded, not run
        with mock.patch("openwisp_modem_upgrader.publish.dispatch_soon"):
            first, first_queries, first_s = measure(run_policies)
            _, second_queries, second_s = measure(run_policies)
        print(
            f"{size:7d}  {first_queries:13d}  {first_s:7.2f}  "
            f"{first[str(policy.pk)]:8d}  {second_queries:13d}  {second_s:7.2f}"
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 10000])
