"""The modem being flashed is the router's only uplink: the router lives in a
network namespace whose link goes down while the modem is away. The SSH
session that started the wrapper cannot follow it, and the progress
reports catch up once the modem (and the link) are back."""

import subprocess
import time
import unittest

from .firmware import write_firmware_stream
from .helpers import NEW_VERSION, OPERATION_ID, ReportServer, delivered_messages
from .router import DEVICE_SCRIPTS, EmulatedRouter

KEY = "devicekey0123456789abcdef"


class TestUplinkLoss(unittest.TestCase):
    def setUp(self):
        self.router = EmulatedRouter(
            netns=True,
            uci={},
            fault="uplink-loss",
            flash_duration=0.6,
            reboot_delay=0.8,
        )
        self.router.start()
        self.addCleanup(self.router.stop)
        self.server = ReportServer(host=self.router.netns.host_address)
        self.addCleanup(self.server.stop)

    def ssh(self, command, timeout=5):
        argv = self.router.ssh_command(command)
        argv[1:1] = ["-o", "ConnectTimeout=1"]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def test_reports_catch_up_after_the_uplink_returns(self):
        router = self.router
        remote = router.tmp_dir
        sha = write_firmware_stream(f"{remote}/fw.bin", NEW_VERSION)
        subprocess.run(["cp", "-r", DEVICE_SCRIPTS, f"{remote}/scripts"], check=True)
        started = self.ssh(
            f"sh {remote}/scripts/modem-upgrade.sh --detach"
            f" --operation-id {OPERATION_ID} --firmware {remote}/fw.bin"
            f" --sha256 {sha} --expected-version {NEW_VERSION}"
            f" --expected-model FN990A28 --workdir {remote} --reboot-timeout 10"
            f" --report-url {self.server.url} --device-key {KEY}"
            " --report-interval 0.2 --final-report-timeout 20"
        )
        self.assertEqual(started.returncode, 0, started.stderr)

        # a probe fails, or stalls, while the link is down
        unreachable, done = 0, None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            began = time.monotonic()
            probe = self.ssh(f"cat {remote}/{OPERATION_ID}/exit_code", timeout=3)
            if probe is None or probe.returncode == 255:
                unreachable += 1
            elif time.monotonic() - began > 1.5:
                unreachable += 1
            if probe is not None and probe.returncode == 0:
                done = probe.stdout.strip()
                break
            time.sleep(0.1)
        self.assertEqual(done, "0")
        self.assertGreater(unreachable, 0, "the uplink never went down")

        def delivered():
            bodies = self.server.bodies
            return bodies and bodies[-1]["status"] == "success"

        deadline = time.monotonic() + 60
        while not delivered() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(delivered())
        with open(f"{remote}/{OPERATION_ID}/journal") as f:
            messages = [line.rstrip("\n").split("\t")[4] for line in f]
        self.assertEqual(delivered_messages(self.server.bodies), messages)
