"""The upgrader contract as a vendor meets it: upgraders for a pretend
vendor written from docs/user/upgraders.rst alone (only its documented
names), flashing the emulated modem of a real router (dropbear + busybox)
through the engine.

The pretend vendor's tool on the router, ``pretend-flash IMAGE``, drives the
emulated modem (through the emulator's uxfp) and waits for it to come back,
as a vendor's tool would; ``pretend-noop`` only says "success".
"""

import os
from unittest import mock

from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from .. import settings as app_settings
from ..base.models import OperationStatus
from ..exceptions import IrrecoverableModemFailure
from ..upgrade import start_upgrade
from ..upgraders.base import FLASHING, BaseModemUpgrader
from . import NEW_VERSION, DeviceModemFirmware, ModemUpgradeOperation
from .test_engine import EngineTestMixin

PRETEND_FLASH = """#!/bin/sh
uxfp --file "$1" --port "$(uxfp --show-diag-ports)" || exit 1
# the modem reboots into the new firmware: back within 60 s
i=0
while [ $i -lt 300 ]; do
    mmcli -L | grep -q Modem && { echo success; exit 0; }
    sleep 0.2
    i=$((i + 1))
done
echo "the modem did not come back"
exit 1
"""
PRETEND_NOOP = """#!/bin/sh
echo success
"""


class WorkerKilled(BaseException):
    """Stands for a worker killed by the OS: nothing of the worker's code
    runs after it (not even the engine's exception handling)."""


class PretendUpgrader(BaseModemUpgrader):
    """A simple upgrader: flashes while the worker waits."""

    label = "Pretend vendor"
    supported_models = r"FN990A[0-9A-Z]*"
    # the outcome is due upgrade_timeout + reboot_timeout + this after the
    # point of no return
    outcome_margin = 2
    SCHEMA = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "tool": {
                "type": "string",
                "pattern": "[a-z-]+",
                "default": "pretend-flash",
            },
            "remote_dir": {"type": "string", "pattern": "/[A-Za-z0-9._/-]+"},
            "upgrade_timeout": {"type": "integer", "default": 4},
            "reboot_timeout": {"type": "integer", "default": 4},
            "die_after_point_of_no_return": {"type": "boolean", "default": False},
        },
    }

    def upgrade(self, image):
        path = os.path.join(self.options["remote_dir"], "pretend.bin")
        self.send_image(image, path)
        self.log("image sent", 10)
        self.state["image_path"] = path
        self.point_of_no_return()
        if self.options["die_after_point_of_no_return"]:
            raise WorkerKilled()
        output, code = self.run(
            [self.options["tool"], path], timeout=120, exit_codes=(0, 1)
        )
        if code != 0:
            raise IrrecoverableModemFailure(f"the pretend tool failed: {output}")
        self.log(f"the pretend tool says: {output.strip()}", 90)


class DetachedPretendUpgrader(PretendUpgrader):
    """A detached upgrader: the tool runs on the router in the background,
    and ``poll()`` follows it from the state saved at the point of no
    return."""

    detached = True

    def start(self, image):
        path = os.path.join(self.options["remote_dir"], "pretend.bin")
        self.send_image(image, path)
        self.state["log"] = os.path.join(self.options["remote_dir"], "pretend.log")
        self.point_of_no_return()
        if self.options["die_after_point_of_no_return"]:
            raise WorkerKilled()
        log = self.state["log"]
        # in the background, detached from the SSH session
        script = (
            f'({self.options["tool"]} {path} > {log}.part 2>&1; mv {log}.part {log})'
            " </dev/null >/dev/null 2>&1 &"
        )
        self.run(["sh", "-c", script], timeout=10)
        return FLASHING

    def poll(self, image):
        output, code = self.run(
            ["cat", self.state["log"]], timeout=10, exit_codes=(0, 1)
        )
        if code != 0:
            return None  # still flashing
        if "success" not in output:
            raise IrrecoverableModemFailure(f"the pretend tool failed: {output}")
        return "the pretend tool reports success"


PRETEND_MAP = {
    "pretend": "openwisp_modem_upgrader.tests.test_vendor_contract.PretendUpgrader",
    "pretend-detached": (
        "openwisp_modem_upgrader.tests.test_vendor_contract.DetachedPretendUpgrader"
    ),
}


class TestPretendVendor(EngineTestMixin, StaticLiveServerTestCase):
    router_options = {"flash_duration": 0.2, "reboot_delay": 0.2}

    def setUp(self):
        patcher = mock.patch.dict(app_settings.UPGRADERS_MAP, PRETEND_MAP)
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()
        for name, text in (
            ("pretend-flash", PRETEND_FLASH),
            ("pretend-noop", PRETEND_NOOP),
        ):
            path = os.path.join(self.router.bin_dir, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)

    def pretend_upgrade(self, upgrader_type, later=0, **options):
        self.image = self._create_firmware_image_of_type(upgrader_type)
        options = dict(remote_dir=self.remote_dir, **options)
        operation = start_upgrade(self.device, self.image, options)
        return self.drive_to_end(operation, later=later)

    def assert_modem_row(self, version, installed):
        row = DeviceModemFirmware.objects.get(device=self.device)
        self.assertEqual(row.modem_firmware_version, version)
        self.assertEqual(row.installed, installed)

    def test_simple_upgrader_succeeds_on_the_servers_reading(self):
        operation = self.pretend_upgrade("pretend")
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)
        self.assert_modem_row(NEW_VERSION, installed=True)
        self.assertGreater(operation.bytes_sent, 0)

    def test_no_op_tool_ends_failed_version_unverified(self):
        operation = self.pretend_upgrade("pretend", tool="pretend-noop")
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("the pretend tool says: success", operation.log)
        self.assertIn("version unverified", operation.log)
        self.assertNotEqual(self.router.modem_state()["firmware"], NEW_VERSION)
        # the modem row tells what the server read, not what was hoped
        self.assert_modem_row("M0R.010000-B020", installed=False)

    def test_detached_upgrader_succeeds_on_the_servers_reading(self):
        operation = self.pretend_upgrade("pretend-detached")
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assert_modem_row(NEW_VERSION, installed=True)

    def test_detached_no_op_tool_ends_failed_version_unverified(self):
        operation = self.pretend_upgrade("pretend-detached", tool="pretend-noop")
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("version unverified", operation.log)

    def killed_upgrade(self, upgrader_type):
        """The worker dies right after the point of no return; then the
        driver runs (as beat would, far ahead) until the operation ends."""
        self.image = self._create_firmware_image_of_type(upgrader_type)
        options = dict(remote_dir=self.remote_dir, die_after_point_of_no_return=True)
        try:
            start_upgrade(self.device, self.image, options)
        except WorkerKilled:
            pass  # eager Celery may let it through
        operation = ModemUpgradeOperation.objects.get(device=self.device)
        self.assertTrue(operation.flash_started)
        return self.drive_to_end(operation, later=3600)

    def test_worker_killed_after_the_point_of_no_return_ends_truthfully(self):
        # the flash never ran: past the outcome deadline the engine reads
        # the modem, which still runs the old firmware
        operation = self.killed_upgrade("pretend")
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("the worker stopped during the flash", operation.log)
        self.assertIn("version unverified", operation.log)
        # saved with the point of no return, not after upgrade() returned
        self.assertEqual(
            operation.follow_state["image_path"],
            os.path.join(self.remote_dir, "pretend.bin"),
        )

    def test_detached_state_saved_at_the_point_of_no_return(self):
        # poll() finds the state start() saved with the point of no return
        # (no KeyError); the tool never ran: no outcome by the deadline
        operation = self.killed_upgrade("pretend-detached")
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("log", operation.follow_state)
        self.assertNotIn("KeyError", operation.log)
        self.assertIn("no outcome from the router within the deadline", operation.log)
