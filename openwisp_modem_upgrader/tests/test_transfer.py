import hashlib
import io
import os

import paramiko
from device.router import EmulatedRouter
from django.test import SimpleTestCase, override_settings

from ..device_scripts import scripts_dir
from ..exceptions import IrrecoverableModemFailure, RecoverableModemFailure
from ..transfer import TransferTimeout, stream_file_to_router


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
        self.remote = os.path.join(self.router.tmp_dir, "image.bin")

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
        self.assertIn("No such file or directory", message)
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
