"""The router-pull transfer mode end to end: a dropbear/busybox router
downloads its image from the live server (curl, else BusyBox wget), resumes
a cut download, refuses a corrupt one before the modem is touched, and an
operation whose router never finishes ends at its deadline."""

import os
import signal
import time
from unittest import mock
from urllib.parse import urlsplit

from device.router import DEVICE_SCRIPTS
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.utils import timezone

from .. import engine
from .. import settings as app_settings
from ..base.models import OperationStatus
from ..upgrade import start_upgrade
from ..upgraders.wrapper import scripts_size
from . import NEW_VERSION, ModemUpgradeOperation
from .download_proxy import DownloadProxy
from .test_engine import FAST, EngineTestMixin, kill_worker_after_wrapper_start
from .test_object_storage import WebSideMixin

MIB = 1024 * 1024


class RouterPullMixin(EngineTestMixin):
    image_size = 2 * MIB
    router_options = {"script_env": {"DOWNLOAD_RETRY_PAUSE": "0.2"}}

    def setUp(self):
        super().setUp()
        self.image = self._create_firmware_image(size=self.image_size)

    def use_proxy(self, **kwargs):
        proxy = DownloadProxy(urlsplit(self.live_server_url).port, **kwargs)
        self.addCleanup(proxy.stop)
        patcher = mock.patch.object(app_settings, "DEVICE_REPORT_BASE_URL", proxy.url)
        patcher.start()
        self.addCleanup(patcher.stop)
        return proxy

    def pull(self, **options):
        return self.upgrade(transfer_mode="pull", **options)

    def uxfp_ran(self):
        events = self.router.modem_state()["events"]
        return any(event[0] == "uxfp" for event in events)

    def assert_pulled(self, operation):
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)
        self.assertIn("sha256 verified (downloaded image)", operation.log)
        # the worker sent the scripts over SSH, no byte of the image
        self.assertEqual(operation.bytes_sent, operation.attempts * scripts_size())


class TestRouterPull(RouterPullMixin, StaticLiveServerTestCase):
    def test_router_downloads_the_image_with_curl(self):
        proxy = self.use_proxy()
        operation = self.pull()
        self.assert_pulled(operation)
        self.assertIn("no bytes from this worker", operation.log)
        self.assertEqual(proxy.ranges, [None])
        self.assertEqual(proxy.body_bytes, [self.image.size])
        # the image is removed from the router afterwards, as after a push
        self.assertNotIn(f"{self.image.sha256}.bin", self.router_files())

    def test_cut_download_resumes_from_the_byte_it_reached(self):
        cut = self.image.size // 3 + 12345
        proxy = self.use_proxy(cut_at=cut, cuts=1)
        operation = self.pull()
        self.assert_pulled(operation)
        # one attempt: the router itself continued the download
        self.assertEqual(operation.attempts, 1)
        self.assertIn(f"download interrupted at {cut} of", operation.log)
        self.assertEqual(proxy.ranges, [None, f"bytes={cut}-"])
        # no byte fetched twice
        self.assertEqual(proxy.body_bytes, [cut, self.image.size - cut])

    def test_worker_killed_after_the_start_the_download_goes_on(self):
        proxy = self.use_proxy()
        # the worker dies (no clean-up) right after starting the wrapper: the
        # router downloads and flashes alone, the follow-ups finish it
        operation = kill_worker_after_wrapper_start(self, transfer_mode="pull")
        operation = self.drive_to_end(operation, later=100)
        self.assert_pulled(operation)
        self.assertEqual(proxy.body_bytes, [self.image.size])

    def test_partial_copy_on_the_router_is_continued(self):
        held = MIB
        firmware = os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", f"{self.image.sha256}.bin"
        )
        os.makedirs(os.path.dirname(firmware), exist_ok=True)
        with self.image.file.open("rb") as source, open(firmware, "wb") as target:
            target.write(source.read(held))
        proxy = self.use_proxy()
        operation = self.pull()
        self.assert_pulled(operation)
        self.assertIn(
            f"the router holds {held} of {self.image.size} bytes", operation.log
        )
        self.assertEqual(proxy.ranges, [f"bytes={held}-"])
        self.assertEqual(proxy.body_bytes, [self.image.size - held])

    def test_corrupt_download_is_refused_before_flashing(self):
        # the stored file changes after its sha256 was recorded
        with open(self.image.file.path, "r+b") as stored:
            stored.seek(1000)
            byte = stored.read(1)
            stored.seek(1000)
            stored.write(bytes([byte[0] ^ 0xFF]))
        operation = self.pull()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        # the same bytes would come again: not retried
        self.assertEqual(operation.attempts, 1)
        self.assertIn("sha256 mismatch of the downloaded image", operation.log)
        self.assertIn("modem untouched", operation.log)
        self.assertFalse(self.uxfp_ran())
        self.assertEqual(self.router.modem_state()["firmware"], "M0R.010000-B020")
        # the corrupt file is not kept for a retry to continue
        self.assertNotIn(f"{self.image.sha256}.bin", self.router_files())

    def test_download_never_finishing_ends_at_the_routers_deadline(self):
        proxy = self.use_proxy(stall=True)
        operation = self.pull(transfer_timeout=10)
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertEqual(operation.attempts, 1)
        self.assertIn("the image was not downloaded within 10s", operation.log)
        self.assertIn("modem untouched", operation.log)
        self.assertFalse(self.uxfp_ran())
        self.assertGreaterEqual(len(proxy.ranges), 1)

    def test_router_gone_during_the_download_ends_at_the_servers_deadline(self):
        self.use_proxy(stall=True)
        operation = start_upgrade(
            self.device,
            self.image,
            dict(
                FAST,
                remote_dir=self.remote_dir,
                tool_path=self.tool_path,
                transfer_mode="pull",
                transfer_timeout=600,
            ),
        )
        engine.run_operation(operation.pk)
        operation.refresh_from_db()
        self.assertTrue(operation.flash_started, operation.log)
        # the deadline leaves the router its whole download time
        window = (operation.outcome_deadline - operation.started_at).total_seconds()
        self.assertGreaterEqual(window, 600 + FAST["upgrade_timeout"])
        self.kill_wrapper(operation)
        self.router.go_offline()
        type(operation).objects.filter(pk=operation.pk).update(
            outcome_deadline=timezone.now()
        )
        operation = self.drive_to_end(operation)
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("no outcome from the router within the deadline", operation.log)
        self.assertFalse(self.uxfp_ran())

    def kill_wrapper(self, operation):
        pid_file = os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", str(operation.pk), "pid"
        )
        deadline = time.monotonic() + 60
        while not os.path.exists(pid_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        with open(pid_file) as handle:
            os.kill(int(handle.read()), signal.SIGKILL)


class TestRouterPullWithWget(RouterPullMixin, StaticLiveServerTestCase):
    router_options = dict(RouterPullMixin.router_options, curl=False)

    def test_busybox_wget_downloads_and_resumes(self):
        cut = self.image.size // 2 + 7
        proxy = self.use_proxy(cut_at=cut, cuts=1)
        operation = self.pull()
        self.assert_pulled(operation)
        self.assertEqual(proxy.ranges, [None, f"bytes={cut}-"])
        self.assertEqual(proxy.body_bytes, [cut, self.image.size - cut])


class TestRouterRefused(RouterPullMixin, StaticLiveServerTestCase):
    """The wrapper itself, on the router, against the live server."""

    def run_wrapper(self, operation, key):
        paths = os.path.join(self.remote_dir, "openwisp-modem-upgrader")
        argv = [
            os.path.join(DEVICE_SCRIPTS, "modem-upgrade.sh"),
            "--operation-id", str(operation.pk),
            "--firmware", os.path.join(paths, f"{self.image.sha256}.bin"),
            "--sha256", self.image.sha256,
            "--expected-version", NEW_VERSION,
            "--expected-model", self.image.build.modem_model,
            "--workdir", paths,
            "--tool", self.tool_path,
            "--report-url", self.live_server_url,
            "--device-key", key,
            "--final-report-timeout", "1",
            "--pull", "--image-size", str(self.image.size),
            "--download-timeout", "30",
        ]  # fmt: skip
        return self.router.run(argv, timeout=90, env={"DOWNLOAD_RETRY_PAUSE": "0.2"})

    def in_progress_pull(self, device):
        # created as the engine leaves it, without running it here
        return ModemUpgradeOperation.objects.create(
            device=device,
            image=self.image,
            upgrade_options=dict(FAST, transfer_mode="pull", tool_path=self.tool_path),
            status=OperationStatus.IN_PROGRESS,
        )

    def test_wrong_key_is_refused(self):
        operation = self.in_progress_pull(self.device)
        result = self.run_wrapper(operation, "wrongkey0123456789")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        journal = self.read_journal(operation)
        self.assertIn("the server refused the download", journal)
        self.assertIn("403", journal)
        self.assertFalse(self.uxfp_ran())

    def test_another_devices_key_is_refused(self):
        other = self._create_device(
            name="other",
            mac_address="00:11:22:33:44:99",
            organization=self.device.organization,
        )
        operation = self.in_progress_pull(self.device)
        result = self.run_wrapper(operation, other.key)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn("403", self.read_journal(operation))
        self.assertFalse(self.uxfp_ran())

    def read_journal(self, operation):
        path = os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", str(operation.pk), "journal"
        )
        with open(path) as handle:
            return handle.read()


class TestRouterPullFromObjectStorage(
    WebSideMixin, RouterPullMixin, StaticLiveServerTestCase
):
    """Images on S3 (a real moto_server): the view redirects the router to a
    presigned URL, so the web server sends no image bytes either."""

    def test_router_resumes_from_a_presigned_url(self):
        self.assertTrue(self.storage.exists(self.image.file.name))
        held = MIB
        firmware = os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", f"{self.image.sha256}.bin"
        )
        os.makedirs(os.path.dirname(firmware), exist_ok=True)
        with self.image.file.open("rb") as source, open(firmware, "wb") as target:
            target.write(source.read(held))
        proxy = self.use_proxy()
        operation = self.pull()
        self.assert_pulled(operation)
        self.assertIn(f"the router holds {held} of", operation.log)
        # one request to the server, answered by a redirect (a few bytes)
        self.assertEqual(proxy.ranges, [f"bytes={held}-"])
        self.assertLess(proxy.body_bytes[0], 1024)
        self.assertNothingLocal(self.web_root)
