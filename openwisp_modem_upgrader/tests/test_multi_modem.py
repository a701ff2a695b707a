"""Mass upgrades of a router with two modems, against a real emulated router
(dropbear + busybox + fake uxfp): which modem the preview names, and every
matching modem flashed one after the other."""

import os
import re
import time
import uuid
from unittest import mock

from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import TestCase
from django.urls import reverse

from ..base.models import TERMINAL_STATUSES, OperationStatus
from ..batch import create_batch, modems_to_flash, preview_batch
from ..detection import detect_device
from ..scheduler import drive
from . import (
    FN990A28,
    NEW_VERSION,
    OLD_VERSION,
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
    ModemUpgradeOperation,
)
from .test_admin_batch import MassUpgradeMixin
from .test_api import ApiTestMixin, api_url
from .test_engine import FAST, LONG_ROUTER_TAGS, EngineTestMixin

# the emulator's modems before the upgrade
EMULATED_VERSION = "M0R.010000-B020"


class TwoModemRouterMixin(EngineTestMixin):
    tags = LONG_ROUTER_TAGS

    def setUp(self):
        super().setUp()
        # a second FN990A28 at 1-1.2: it sorts first, so it is "the first
        # matching modem"
        self.router.set_modem(extra_modems=[{"usb_path": "1-1.2"}])
        DeviceModemFirmware.objects.filter(device=self.device).delete()
        detect_device(self.device)
        self.assertEqual(
            sorted(
                DeviceModemFirmware.objects.filter(device=self.device).values_list(
                    "usb_path", flat=True
                )
            ),
            ["1-1.2", "2-1"],
        )

    def run_batch(self, timeout=180, **fields):
        """Creates a mass upgrade of the router and drives it to its end as
        beat would; Celery is eager, so the fan-out and the first start
        happen at the creation."""
        options = dict(FAST, remote_dir=self.remote_dir, tool_path=self.tool_path)
        batch = create_batch(
            self.image.build, self.device.organization, options, **fields
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch.refresh_from_db()
            operations = batch.operations.all()
            if (
                batch.status in TERMINAL_STATUSES
                and not operations.filter(next_check_at__isnull=False).exists()
            ):
                return batch
            drive()
            time.sleep(0.2)
        self.fail(f"not finished in {timeout}s: {list(operations.values())}")

    def flashes(self):
        """``{usb path: [(start, end)]}`` from the emulator's own records."""
        started, found = {}, {}
        for event in self.router.modem_state()["events"]:
            if event[0] == "flash-start":
                started[event[1]] = event[2]
            elif event[0] == "flash-end":
                found.setdefault(event[1], []).append((started.pop(event[1]), event[2]))
        return found

    def modem_versions(self):
        state = self.router.modem_state()
        return {
            "2-1": state["firmware"],
            "1-1.2": state["extra_modems"][0]["firmware"],
        }


class TestTwoModemRouterBatch(TwoModemRouterMixin, StaticLiveServerTestCase):
    def test_every_matching_modem_flashed_one_after_the_other(self):
        batch = self.run_batch(modems="every")
        self.assertEqual(batch.status, OperationStatus.SUCCESS)
        first, second = batch.operations.order_by("started_at")
        for operation in (first, second):
            self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
            # each verified by the server's own reading of that modem
            self.assertIn("modem verified by the server", operation.log)
        self.assertEqual((first.usb_path, second.usb_path), ("1-1.2", "2-1"))
        self.assertEqual(
            self.modem_versions(), {"2-1": NEW_VERSION, "1-1.2": NEW_VERSION}
        )
        for row in DeviceModemFirmware.objects.filter(device=self.device):
            self.assertEqual(row.modem_firmware_version, NEW_VERSION, row.usb_path)
            self.assertTrue(row.installed)
            self.assertFalse(row.unexplained_change)
        # the router's own record: one flash per modem, never overlapping
        flashes = self.flashes()
        (first_flash,) = flashes["1-1.2"]
        (second_flash,) = flashes["2-1"]
        self.assertLessEqual(first_flash[1], second_flash[0])
        # and the server started the second after the first had finished
        self.assertLessEqual(first.finished_at, second.started_at)
        self.assertEqual(str(batch.progress_report), "2 out of 2 modems completed")

    def test_first_matching_modem_only_and_the_preview_said_which(self):
        batch = ModemBatchUpgradeOperation(
            build=self.image.build, organization=self.device.organization
        )
        (row,) = preview_batch(batch)["devices"]
        self.assertEqual(row.target_usb_path, "1-1.2")
        self.assertEqual(row.matching_modems, 2)
        flashed, left = modems_to_flash(batch, [row.pk])[row.pk]
        self.assertEqual([m["usb_path"] for m in flashed], ["1-1.2"])
        self.assertEqual([m["usb_path"] for m in left], ["2-1"])
        batch = self.run_batch()
        self.assertEqual(batch.status, OperationStatus.SUCCESS)
        (operation,) = batch.operations.all()
        self.assertEqual(operation.usb_path, "1-1.2")
        self.assertEqual(
            self.modem_versions(), {"2-1": EMULATED_VERSION, "1-1.2": NEW_VERSION}
        )
        self.assertEqual(list(self.flashes()), ["1-1.2"])

    def test_second_modem_left_alone_after_the_first_fails(self):
        self.router.set_modem(
            extra_modems=[{"usb_path": "1-1.2", "fault": "tool-error"}]
        )
        batch = self.run_batch(modems="every", failure_threshold=0)
        self.assertEqual(batch.status, OperationStatus.FAILED)
        first = batch.operations.get(usb_path="1-1.2")
        second = batch.operations.get(usb_path="2-1")
        self.assertEqual(first.status, OperationStatus.FAILED, first.log)
        self.assertEqual(second.status, OperationStatus.CANCELLED, second.log)
        self.assertIn("ended failed", second.log)
        self.assertEqual(list(self.flashes()), ["1-1.2"])
        self.assertEqual(self.modem_versions()["2-1"], EMULATED_VERSION)


class TestReportsUnreachable(TwoModemRouterMixin, StaticLiveServerTestCase):
    """The router cannot reach the server: the first modem's wrapper keeps
    trying to send its final report (holding its lock) after the server
    has read its outcome. The second modem must not wait for it."""

    def report_base_url(self):
        return "http://127.0.0.1:9"

    def test_second_modem_not_refused_as_busy(self):
        batch = self.run_batch(modems="every")
        second = batch.operations.get(usb_path="2-1")
        self.assertEqual(batch.status, OperationStatus.SUCCESS, second.log)
        self.assertNotIn("another flash is running", second.log)
        self.assertEqual(
            self.modem_versions(), {"2-1": NEW_VERSION, "1-1.2": NEW_VERSION}
        )


class TestRouterBusy(EngineTestMixin, StaticLiveServerTestCase):
    """Another operation's wrapper on the router: running, it keeps the
    router busy; once it recorded its outcome, it does not."""

    tags = LONG_ROUTER_TAGS

    def other_wrapper(self, finished):
        opdir = os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", str(uuid.uuid4())
        )
        os.makedirs(os.path.join(opdir, "lock"))
        # a live process: this test's own
        with open(os.path.join(opdir, "lock", "pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
        if finished:
            with open(os.path.join(opdir, "exit_code"), "w") as f:
                f.write("0\n")

    def test_running_wrapper_keeps_the_router_busy(self):
        self.other_wrapper(finished=False)
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("another flash is running", operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], EMULATED_VERSION)

    def test_finished_wrapper_does_not(self):
        self.other_wrapper(finished=True)
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)


class TestMultiModemApi(ApiTestMixin, TestCase):
    """The REST dry run names the modem flashed on each router and the
    matching ones left out; ``modems`` chooses first or every."""

    def setUp(self):
        super().setUp()
        self.build = self._create_build(
            category=self._create_category(organization=self.org_a)
        )
        self.image = self._create_image(build=self.build)
        self.router = self._create_modem_device(
            name="two-modems", mac_address="00:11:22:33:44:01"
        )
        DeviceModemFirmware.objects.filter(device=self.router).update(
            usb_path="2-1", modem_imei="351234567890123"
        )
        DeviceModemFirmware.objects.create(
            device=self.router,
            usb_path="1-1.2",
            modem_model=FN990A28,
            modem_firmware_version=OLD_VERSION,
            modem_imei="351234567890999",
        )
        self._create_modem_device(name="one-modem", mac_address="00:11:22:33:44:02")
        self._login(self._manager())
        self.url = api_url("build_upgrade", self.build.pk)

    def test_dry_run_first_matching_modem(self):
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 200, response.data)
        data = response.data
        self.assertEqual(data["modems"], "first")
        self.assertEqual(
            (data["devices_count"], data["multi_modem_count"], data["modems_count"]),
            (2, 1, 2),
        )
        router = next(d for d in data["devices"] if d["name"] == "two-modems")
        self.assertEqual(router["usb_path"], "1-1.2")
        self.assertEqual(router["imei"], "351234567890999")
        self.assertEqual(router["modem_firmware_version"], OLD_VERSION)
        self.assertEqual(router["matching_modems"], 2)
        self.assertEqual(
            router["modems_flashed"],
            [
                {
                    "usb_path": "1-1.2",
                    "imei": "351234567890999",
                    "firmware_version": OLD_VERSION,
                }
            ],
        )
        self.assertEqual([m["usb_path"] for m in router["modems_left_out"]], ["2-1"])
        single = next(d for d in data["devices"] if d["name"] == "one-modem")
        self.assertEqual(
            (single["matching_modems"], single["modems_left_out"]), (1, [])
        )

    def test_dry_run_every_matching_modem(self):
        response = self.client.get(self.url, {"modems": "every"})
        self.assertEqual(response.status_code, 200, response.data)
        data = response.data
        self.assertEqual(data["modems"], "every")
        self.assertEqual((data["multi_modem_count"], data["modems_count"]), (1, 3))
        router = next(d for d in data["devices"] if d["name"] == "two-modems")
        self.assertEqual(
            [m["usb_path"] for m in router["modems_flashed"]], ["1-1.2", "2-1"]
        )
        self.assertEqual(router["modems_left_out"], [])
        # the waves count routers
        self.assertEqual(data["waves"], [2])

    def test_mass_upgrade_of_every_matching_modem(self):
        with self.captureOnCommitCallbacks(execute=True):
            response = self._json("post", self.url, {"modems": "every"})
        self.assertEqual(response.status_code, 201, response.data)
        self.assertEqual(response.data["modems"], "every")
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertEqual(batch.modems, "every")
        self.assertEqual(
            sorted(
                batch.operations.filter(device=self.router).values_list(
                    "usb_path", flat=True
                )
            ),
            ["1-1.2", "2-1"],
        )
        detail = self.client.get(api_url("batch_upgrade_operation_detail", batch.pk))
        self.assertEqual(detail.data["modems"], "every")
        # progress counts modems (one operation each)
        self.assertEqual(detail.data["progress_report"], "0 out of 3 modems completed")

    def test_bad_choice_is_a_clear_error_and_changes_nothing(self):
        for value in ("all", "", "every;reboot", 1, None, ["every"]):
            with self.subTest(value=value):
                # in a URL, empty is the default and a list its last value
                if value not in ("", None, ["every"]):
                    response = self.client.get(self.url, {"modems": value})
                    self.assertEqual(response.status_code, 400)
                    self.assertIn("modems", response.data)
                response = self._json("post", self.url, {"modems": value})
                self.assertEqual(response.status_code, 400)
                self.assertIn("modems", response.data)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        self.assertFalse(ModemUpgradeOperation.objects.exists())


@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestMultiModemAdmin(MassUpgradeMixin, TestCase):
    """The admin's mass-upgrade page: which modem of each router is flashed,
    which are left, and the choice of every matching modem."""

    def setUp(self):
        super().setUp()
        self.router = self._create_modem_device(
            name="two-modems", mac_address="00:11:22:33:44:01"
        )
        DeviceModemFirmware.objects.filter(device=self.router).update(
            usb_path="2-1", modem_imei="351234567890123"
        )
        DeviceModemFirmware.objects.create(
            device=self.router,
            usb_path="1-1.2",
            modem_model=FN990A28,
            modem_firmware_version=OLD_VERSION,
            modem_imei="351234567890999",
        )
        self._create_modem_device(name="one-modem", mac_address="00:11:22:33:44:02")

    def preview(self, **data):
        response = self.client.get(
            self.preview_url(), dict(organization=self.org.pk, **data)
        )
        self.assertEqual(response.status_code, 200)
        return response

    def cells(self, response, device_name, css_class):
        """The USB paths listed in a cell of the device's row."""
        html = response.content.decode()
        row = re.search(
            rf'<tr class="modem-eligible"[^>]*><td>{device_name}</td>(.*?)</tr>',
            html,
            re.S,
        ).group(1)
        cell = re.search(rf'<td class="{css_class}">(.*?)</td>', row, re.S).group(1)
        return re.findall(r'data-usb-path="([^"]*)"', cell)

    def test_preview_first_matching_modem(self, delay):
        response = self.preview()
        self.assertContains(response, "2 devices will be upgraded")
        self.assertContains(response, 'class="warning modem-multi-modem-note"')
        self.assertContains(
            response,
            "1 router has more than one modem matching this build: only its "
            "first one is flashed",
        )
        self.assertEqual(self.cells(response, "two-modems", "modem-flashed"), ["1-1.2"])
        self.assertEqual(self.cells(response, "two-modems", "modem-left-out"), ["2-1"])
        self.assertContains(response, "1-1.2 (351234567890999)")
        self.assertContains(response, "2-1 (351234567890123)")
        self.assertEqual(self.cells(response, "one-modem", "modem-left-out"), [])

    def test_preview_every_matching_modem(self, delay):
        response = self.preview(modems="every")
        self.assertContains(response, "each of them is flashed, one after the other")
        self.assertContains(response, "(3 modems in all)")
        self.assertEqual(
            self.cells(response, "two-modems", "modem-flashed"), ["1-1.2", "2-1"]
        )
        self.assertEqual(self.cells(response, "two-modems", "modem-left-out"), [])

    def test_no_note_without_several_matching_modems(self, delay):
        DeviceModemFirmware.objects.filter(device=self.router, usb_path="2-1").update(
            modem_firmware_version=NEW_VERSION
        )
        response = self.preview()
        self.assertNotContains(response, "modem-multi-modem-note")
        self.assertEqual(self.cells(response, "two-modems", "modem-left-out"), [])

    def test_confirm_every_matching_modem(self, delay):
        data = {"organization": self.org.pk, "confirm": "1", "modems": "every"}
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(self.preview_url(), data)
        self.assertEqual(response.status_code, 302)
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertEqual(batch.modems, "every")
        self.assertEqual(
            sorted(
                batch.operations.filter(device=self.router).values_list(
                    "usb_path", flat=True
                )
            ),
            ["1-1.2", "2-1"],
        )
        # only the router's first modem starts now
        self.assertEqual(delay.call_count, 2)
        page = self.client.get(
            reverse(
                f"admin:{batch._meta.app_label}_{batch._meta.model_name}_change",
                args=[batch.pk],
            )
        )
        self.assertContains(page, '<span class="modem-batch-total">3</span> modems')
        self.assertContains(page, "every matching modem, one after the other")

    def test_preview_queries_constant(self, delay):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        self.preview(modems="every")  # caches warmed (session, permissions)
        counts = []
        for start in (10, 20):
            # five more two-modem routers each round
            for number in range(start, start + 5):
                device = self._create_modem_device(
                    name=f"router-{number}", mac_address=f"00:11:22:33:45:{number:02x}"
                )
                DeviceModemFirmware.objects.filter(device=device).update(usb_path="2-1")
                DeviceModemFirmware.objects.create(
                    device=device, usb_path="1-1.2", modem_model=FN990A28
                )
            with CaptureQueriesContext(connection) as queries:
                response = self.preview(modems="every")
            counts.append(len(queries))
        self.assertContains(response, 'data-count="11"')
        self.assertEqual(counts[0], counts[1])

    def test_bad_choice_refused(self, delay):
        data = {"organization": self.org.pk, "confirm": "1", "modems": "all"}
        response = self.client.post(self.preview_url(), data)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Select a valid choice")
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())


def _demo_two_modem_router():
    from openwisp2.demo_router import ROUTERS

    options = dict(ROUTERS)["demo-router-two-modems"]
    # the tests' own loopback address; the demo's modems
    return {key: value for key, value in options.items() if key != "host"}


class TestDemoTwoModemRouter(TwoModemRouterMixin, StaticLiveServerTestCase):
    """The demo's two-modem router (scripts/demo.sh): its first matching
    modem is the second one, at 1-1.2, which the emulator now flashes."""

    router_options = _demo_two_modem_router()

    def setUp(self):
        EngineTestMixin.setUp(self)
        DeviceModemFirmware.objects.filter(device=self.device).delete()
        detect_device(self.device)

    def test_mass_upgrade_succeeds(self):
        batch = self.run_batch()
        (operation,) = batch.operations.all()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(operation.usb_path, "1-1.2")
        self.assertEqual(self.modem_versions()["1-1.2"], NEW_VERSION)
