"""The emulator itself: start time, the firmware stream, cleanup on stop."""

import hashlib
import os
import subprocess
import time
import unittest
from unittest import mock

from .firmware import HEADER_SIZE, read_header, write_firmware_stream
from .helpers import NEW_VERSION, OPERATION_ID, UPGRADE
from .router import EmulatedRouter, _pids_mentioning


class TestFirmwareStream(unittest.TestCase):
    def test_header_and_checksum(self):
        router = EmulatedRouter(ssh=False)
        router.start()
        self.addCleanup(router.stop)
        path = os.path.join(router.tmp_dir, "fw.bin")
        sha = write_firmware_stream(path, NEW_VERSION, size=3 * 1024 * 1024 + 5)
        with open(path, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), sha)
        self.assertEqual(os.path.getsize(path), HEADER_SIZE + 3 * 1024 * 1024 + 5)
        header = read_header(path)
        self.assertEqual(header["firmware"], NEW_VERSION)
        self.assertEqual(header["revision"], "45.00.010-B022-P0R.001600")
        self.assertEqual(header["model"], "FN990A28")

    def test_corrupt_keeps_the_intended_checksum(self):
        router = EmulatedRouter(ssh=False)
        router.start()
        self.addCleanup(router.stop)
        path = os.path.join(router.tmp_dir, "fw.bin")
        sha = write_firmware_stream(path, NEW_VERSION, corrupt=True)
        with open(path, "rb") as f:
            self.assertNotEqual(hashlib.sha256(f.read()).hexdigest(), sha)


class TestRouterLifecycle(unittest.TestCase):
    def test_starts_fast_and_stop_kills_detached_wrappers(self):
        EmulatedRouter(ssh=True).start().stop()  # keys are generated once
        # fast: no key generated per router (RSA keygen is slow), whatever
        # the machine's speed; and a generous bound on a busy machine
        began = time.monotonic()
        with mock.patch.object(subprocess, "run", wraps=subprocess.run) as run:
            router = EmulatedRouter(uci={}, fault="hang")
            router.start()
        self.addCleanup(router.stop)
        self.assertLess(time.monotonic() - began, 10)
        keygens = [
            call
            for call in run.call_args_list
            if "dropbearkey" in str(call) or "ssh-keygen" in str(call)
        ]
        self.assertEqual(keygens, [])

        path = os.path.join(router.tmp_dir, "fw.bin")
        sha = write_firmware_stream(path, NEW_VERSION)
        started = router.run(
            [UPGRADE, "--detach", "--operation-id", OPERATION_ID, "--firmware", path,
             "--sha256", sha, "--expected-version", NEW_VERSION,
             "--expected-model", "FN990A28", "--workdir", router.tmp_dir],
        )  # fmt: skip
        self.assertEqual(started.returncode, 0, started.stderr)
        journal = os.path.join(router.tmp_dir, OPERATION_ID, "journal")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.exists(journal):
                with open(journal) as f:
                    if "uploading firmware" in f.read():
                        break
            time.sleep(0.05)
        ssh = subprocess.Popen(
            router.ssh_command("sleep 30"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(ssh.wait)
        root = router.root
        self.assertTrue(_pids_mentioning(root))
        router.stop()
        self.assertEqual(_pids_mentioning(root), [])
        self.assertFalse(os.path.exists(root))


class TestFakeSysfs(unittest.TestCase):
    """A change to one modem re-enumerates that modem alone: the other's
    sysfs entries stay in place (a script reading them meanwhile must never
    find them missing, as on a real bus)."""

    def setUp(self):
        import shutil
        import tempfile

        from .modem import ModemState, update_modem

        self.update_modem = update_modem
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        self.state = ModemState(self.root)
        self.state.create(extra_modems=[{}])
        self.devices = os.path.join(self.root, "sys", "bus", "usb", "devices")

    def inode(self, name):
        return os.stat(os.path.join(self.devices, name)).st_ino

    def test_a_change_to_one_modem_leaves_the_other_in_place(self):
        first, extra = self.inode("2-1:1.0"), self.inode("1-1.2:1.0")
        with self.state.update() as state:
            self.update_modem(state, 1, {"cfun": 4, "inhibited_by": "uxfp"})
        # nothing of the bus changed: neither modem re-enumerated
        self.assertEqual(self.inode("2-1:1.0"), first)
        self.assertEqual(self.inode("1-1.2:1.0"), extra)
        with self.state.update() as state:
            self.update_modem(state, 1, {"mode": "flashing"})
        # the extra modem re-enumerated in flashing mode: DIAG only
        self.assertEqual(self.inode("2-1:1.0"), first)
        with open(os.path.join(self.devices, "1-1.2", "idProduct")) as f:
            self.assertEqual(f.read().strip(), "9010")
        self.assertTrue(os.path.isdir(os.path.join(self.devices, "1-1.2:1.0")))
        self.assertFalse(os.path.exists(os.path.join(self.devices, "1-1.2:1.2")))
        with self.state.update() as state:
            state["mode"] = "absent"
        # the first modem left the bus, the extra one stayed
        self.assertFalse(os.path.exists(os.path.join(self.devices, "2-1")))
        self.assertFalse(os.path.exists(os.path.join(self.devices, "2-1:1.0")))
        self.assertTrue(os.path.isdir(os.path.join(self.devices, "1-1.2:1.0")))
        with self.state.update() as state:
            state["mode"] = "normal"
            self.update_modem(state, 1, {"mode": "normal"})
        with open(os.path.join(self.devices, "1-1.2", "idProduct")) as f:
            self.assertEqual(f.read().strip(), "1071")
        self.assertTrue(
            os.path.isdir(os.path.join(self.devices, "1-1.2:1.2", "ttyUSB6"))
        )
        self.assertTrue(os.path.isdir(os.path.join(self.devices, "2-1:1.2", "ttyUSB2")))
