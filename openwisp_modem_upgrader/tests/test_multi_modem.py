"""Mass upgrades of a router with two modems, against a real emulated router
(dropbear + busybox + fake uxfp): which modem the preview names, and every
matching modem flashed one after the other."""

import os
import time
import uuid

from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from ..base.models import TERMINAL_STATUSES, OperationStatus
from ..batch import create_batch, modems_to_flash, preview_batch
from ..detection import detect_device
from ..scheduler import drive
from . import (
    NEW_VERSION,
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
)
from .test_engine import FAST, EngineTestMixin

# the emulator's modems before the upgrade
EMULATED_VERSION = "M0R.010000-B020"


class TwoModemRouterMixin(EngineTestMixin):
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
