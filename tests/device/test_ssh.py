"""The wrapper started the way the server starts it: files copied with the
legacy SCP protocol through dropbear, then ``--detach`` over SSH with the
router's BusyBox-only PATH, then the journal polled over SSH."""

import os
import subprocess
import time
import unittest

from .firmware import write_firmware_stream
from .helpers import NEW_VERSION, OPERATION_ID
from .router import DEVICE_SCRIPTS, EmulatedRouter


class TestOverSsh(unittest.TestCase):
    def setUp(self):
        self.router = EmulatedRouter(uci={}, flash_duration=0.2, reboot_delay=0.1)
        self.router.start()
        self.addCleanup(self.router.stop)

    def ssh(self, command):
        return subprocess.run(
            self.router.ssh_command(command), capture_output=True, text=True, timeout=20
        )

    def scp(self, source, target):
        r = self.router
        subprocess.run(
            ["scp", "-O", "-q", "-r", "-i", r.private_key_path, "-P", str(r.port),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             source, f"{r.username}@{r.host}:{target}"],
            check=True, timeout=20,
        )  # fmt: skip

    def test_detached_upgrade(self):
        probe = self.ssh("command -v sh uxfp; command -v timeout; echo $PATH")
        lines = probe.stdout.split()
        self.assertEqual(lines[-1], self.router.bin_dir)
        self.assertNotIn("timeout", probe.stdout)

        local = os.path.join(self.router.root, "upload.bin")
        sha = write_firmware_stream(local, NEW_VERSION)
        remote = self.router.tmp_dir
        self.scp(local, f"{remote}/fw.bin")
        self.scp(DEVICE_SCRIPTS, f"{remote}/scripts")
        started = self.ssh(
            f"sh {remote}/scripts/modem-upgrade.sh --detach"
            f" --operation-id {OPERATION_ID} --firmware {remote}/fw.bin"
            f" --sha256 {sha} --expected-version {NEW_VERSION}"
            f" --expected-model FN990A28 --workdir {remote} --reboot-timeout 5"
            " --final-report-timeout 0"
        )
        journal = f"{remote}/{OPERATION_ID}/journal"
        self.assertEqual(started.returncode, 0, started.stderr)
        self.assertEqual(started.stdout.strip(), journal)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = self.ssh(f"cat {remote}/{OPERATION_ID}/exit_code")
            if done.returncode == 0:
                break
            time.sleep(0.2)
        self.assertEqual(done.stdout.strip(), "0")
        records = self.ssh(f"cat {journal}").stdout.splitlines()
        self.assertEqual(records[-1].split("\t")[2:4], ["success", "100"])
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)
