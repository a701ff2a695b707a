import hashlib
import io
import os
import time

import paramiko
from device.router import EmulatedRouter
from django.test import SimpleTestCase, override_settings

from ..device_scripts import scripts_dir
from ..exceptions import IrrecoverableModemFailure, RecoverableModemFailure
from ..transfer import (
    RouterCopy,
    TransferPlan,
    TransferTimeout,
    parse_probe,
    plan_transfer,
    probe_command,
    stream_file_to_router,
)


class TestStreamingTransfer(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.router = EmulatedRouter()
        cls.router.start()

    @classmethod
    def tearDownClass(cls):
        cls.router.stop()
        super().tearDownClass()

    def setUp(self):
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.client.connect(
            self.router.host,
            port=self.router.port,
            username="root",
            key_filename=self.router.private_key_path,
            look_for_keys=False,
            allow_agent=False,
        )
        self.addCleanup(self.client.close)
        # a file of each test's own: a remote ``cat`` that an earlier test's
        # timeout or dropped link left behind may still be appending to its own
        self.remote = os.path.join(self.router.tmp_dir, f"{self._testMethodName}.bin")

    def test_streams_whole_file_with_progress(self):
        content = os.urandom(3 * 1024 * 1024 + 11)
        progress = []
        stream_file_to_router(
            self.client.get_transport(),
            io.BytesIO(content),
            len(content),
            self.remote,
            60,
            on_progress=lambda sent, total: progress.append((sent, total)),
        )
        with open(self.remote, "rb") as received:
            self.assertEqual(
                hashlib.sha256(received.read()).hexdigest(),
                hashlib.sha256(content).hexdigest(),
            )
        self.assertGreater(len(progress), 2)
        self.assertEqual(progress[-1], (len(content), len(content)))
        sent = [s for s, _ in progress]
        self.assertEqual(sent, sorted(sent))

    def test_deadline_stops_transfer(self):
        content = b"x" * (4 * 1024 * 1024)
        with self.assertRaises(TransferTimeout):
            stream_file_to_router(
                self.client.get_transport(),
                io.BytesIO(content),
                len(content),
                self.remote,
                timeout=0,
            )

    def test_dropped_link_is_recoverable(self):
        transport = self.client.get_transport()
        transport.close()
        with self.assertRaises(RecoverableModemFailure):
            stream_file_to_router(transport, io.BytesIO(b"abc"), 3, self.remote, 10)

    def test_scp_error_is_one_line(self):
        missing = os.path.join(self.router.tmp_dir, "missing", "image.bin")
        with self.assertRaises(RecoverableModemFailure) as context:
            stream_file_to_router(
                self.client.get_transport(), io.BytesIO(b"abc"), 3, missing, 10
            )
        message = str(context.exception)
        self.assertIn("nonexistent directory", message)
        self.assertNotIn("\n", message)
        self.assertEqual(message, message.strip())

    def test_no_space_left_is_irrecoverable(self):
        # /dev/full: every write fails with ENOSPC, as a full tmpfs does
        with self.assertRaises(IrrecoverableModemFailure) as context:
            stream_file_to_router(
                self.client.get_transport(),
                io.BytesIO(b"x" * 4096),
                4096,
                "/dev/full",
                10,
            )
        message = str(context.exception)
        self.assertIn("No space left on device", message)
        self.assertIn("remote_dir", message)
        self.assertNotIn("\n", message)

    def test_rate_cap_holds(self):
        size, rate = 20 * 1024 * 1024, 8 * 1024 * 1024
        content = os.urandom(size)
        started = time.monotonic()
        stream_file_to_router(
            self.client.get_transport(),
            io.BytesIO(content),
            size,
            self.remote,
            60,
            rate_limit=rate,
        )
        elapsed = time.monotonic() - started
        # never faster than the cap allows (10 % tolerance)
        self.assertLessEqual(size / elapsed, 1.1 * rate)
        with open(self.remote, "rb") as received:
            self.assertEqual(received.read(), content)

    def test_resume_appends_the_rest(self):
        content = os.urandom(3 * 1024 * 1024 + 5)
        with open(self.remote, "wb") as partial:
            partial.write(content[:1000])
        stream_file_to_router(
            self.client.get_transport(),
            io.BytesIO(content),
            len(content),
            self.remote,
            60,
            offset=1000,
        )
        with open(self.remote, "rb") as received:
            self.assertEqual(received.read(), content)

    def test_resume_refused_when_the_partial_changed(self):
        content = os.urandom(4096)
        with open(self.remote, "wb") as partial:
            partial.write(content[:999])
        with self.assertRaises(RecoverableModemFailure) as context:
            stream_file_to_router(
                self.client.get_transport(),
                io.BytesIO(content),
                len(content),
                self.remote,
                60,
                offset=1000,
            )
        self.assertIn("partial image on the router changed", str(context.exception))
        with open(self.remote, "rb") as kept:
            self.assertEqual(kept.read(), content[:999])

    def probe(self, path):
        """What the router answers to the probe; the raw text on failure."""
        _, stdout, stderr = self.client.exec_command(probe_command(path), timeout=30)
        output, errors = stdout.read().decode(), stderr.read().decode()
        stdout.channel.close()
        try:
            return parse_probe(output)
        except RecoverableModemFailure as error:
            self.fail(f"{error}; stdout {output!r}, stderr {errors!r}")

    def test_probe_reads_size_and_sha256_of_the_copy(self):
        content = os.urandom(5000)
        with open(self.remote, "wb") as copy:
            copy.write(content)
        self.assertEqual(
            self.probe(self.remote),
            RouterCopy(5000, hashlib.sha256(content).hexdigest()),
        )
        missing = os.path.join(self.router.tmp_dir, "missing.bin")
        self.assertEqual(self.probe(missing), RouterCopy(0, ""))


class TestTransferPlan(SimpleTestCase):
    content = bytes(range(256)) * 4096  # 1 MiB

    def plan(self, router_bytes):
        copy = RouterCopy(len(router_bytes), hashlib.sha256(router_bytes).hexdigest())
        if not router_bytes:
            copy = RouterCopy()
        return plan_transfer(
            copy,
            io.BytesIO(self.content),
            len(self.content),
            hashlib.sha256(self.content).hexdigest(),
        )

    def test_plans(self):
        size = len(self.content)
        self.assertEqual(self.plan(b""), TransferPlan(0, "absent"))
        self.assertEqual(self.plan(self.content), TransferPlan(size, "complete"))
        self.assertTrue(self.plan(self.content).skip)
        self.assertEqual(self.plan(self.content[:777]), TransferPlan(777, "resume"))
        corrupt = b"x" + self.content[1:777]
        self.assertEqual(self.plan(corrupt), TransferPlan(0, "mismatch"))
        self.assertEqual(self.plan(self.content + b"!"), TransferPlan(0, "mismatch"))

    def test_garbage_probe_answer(self):
        for answer in ("", "abc", "-5 deadbeef"):
            with self.subTest(answer=answer), self.assertRaises(
                RecoverableModemFailure
            ):
                parse_probe(answer)


class TestDeviceScripts(SimpleTestCase):
    def test_scripts_shipped_with_libraries(self):
        names = os.listdir(scripts_dir())
        self.assertIn("modem-upgrade.sh", names)
        self.assertIn("modem-info.sh", names)
        self.assertTrue(os.listdir(os.path.join(scripts_dir(), "lib")))

    def test_invalid_configured_directory_falls_back(self):
        with override_settings(
            OPENWISP_MODEM_UPGRADER_DEVICE_SCRIPTS_DIR="/nonexistent"
        ):
            # an invalid configured directory falls back to the shipped one
            self.assertTrue(
                os.path.isfile(os.path.join(scripts_dir(), "modem-upgrade.sh"))
            )
