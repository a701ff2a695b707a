"""The core path against a real emulated router: dropbear + busybox + fake uxfp.

Celery runs eagerly; the Django live server receives the router's own
progress reports, so both channels (journal over SSH, HTTP reports) are real.
"""

import os
import subprocess
import tempfile
import time
from datetime import timedelta
from unittest import mock

from celery.exceptions import SoftTimeLimitExceeded
from device.firmware import write_firmware_stream
from device.router import EmulatedRouter
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db.utils import DatabaseError, IntegrityError, OperationalError
from django.test import TestCase
from django.utils import timezone

from .. import engine
from .. import settings as app_settings
from ..base.models import TERMINAL_STATUSES, OperationStatus
from ..engine import follow_operation, recover_lost_workers, run_operation
from ..exceptions import IrrecoverableModemFailure, UpgradeNotAllowed
from ..scheduler import drive
from ..upgrade import (
    cancel_upgrade,
    mark_flash_started,
    mark_in_progress,
    record_progress,
    start_upgrade,
)
from ..upgraders.base import BaseModemUpgrader
from ..upgraders.wrapper import WrapperUpgrader
from . import (
    FN990A28,
    NEW_VERSION,
    DeviceModemFirmware,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)
from .faults import cut_transfers

FAST = {"upgrade_timeout": 60, "reboot_timeout": 20, "progress_interval": 1}


class EngineTestMixin(TestModemUpgraderMixin):
    # emulated routers behind a live server: slow, run once (test.sh)
    tags = {"router"}
    router_options = {}
    # seconds ``upgrade()`` drives an operation before failing the test
    drive_timeout = 120

    def setUp(self):
        super().setUp()
        self.router = EmulatedRouter(**self.router_options)
        self.router.start()
        self.addCleanup(self.router.stop)
        patcher = mock.patch.object(
            app_settings, "DEVICE_REPORT_BASE_URL", self.report_base_url()
        )
        patcher.start()
        self.addCleanup(patcher.stop)
        # follow-ups and retries at the test's time scale
        for name, value in (
            ("FOLLOW_INTERVAL", 0),
            ("RETRY_OPTIONS", dict(retry_backoff=0, retry_jitter=False)),
            ("PREFLIGHT_RETRY_INTERVAL", 0),
        ):
            patcher = mock.patch.object(app_settings, name, value)
            patcher.start()
            self.addCleanup(patcher.stop)
        self.remote_dir = self.router.tmp_dir
        self.tool_path = os.path.join(self.router.bin_dir, "uxfp")
        self.device = self._create_router_device()
        self.image = self._create_firmware_image()

    def report_base_url(self):
        return self.live_server_url

    def _create_router_device(self):
        org = self._get_org()
        device = self._create_device(
            organization=org,
            management_ip=self.router.host,
            last_ip=self.router.host,
        )
        self._create_config(device=device)
        credentials = self._create_credentials(
            organization=org,
            params={
                "username": "root",
                "key": self.router.private_key,
                "port": self.router.port,
            },
        )
        self._create_device_connection(device=device, credentials=credentials)
        DeviceModemFirmware.objects.create(
            device=device,
            modem_model=FN990A28,
            modem_firmware_version="M0R.010000-B020",
        )
        return device

    def _create_firmware_image(self, upgrader_type="telit-fn990a", size=65536):
        handle, path = tempfile.mkstemp(suffix=".bin")
        os.close(handle)
        self.addCleanup(os.unlink, path)
        write_firmware_stream(path, NEW_VERSION, model=FN990A28, size=size)
        build = self._create_build(
            version=NEW_VERSION,
            modem_model=FN990A28,
            category=self._create_category(name=f"category {upgrader_type} {size}"),
        )
        with open(path, "rb") as stream:
            return self._create_image(
                build=build, type=upgrader_type, file=File(stream, name="fn990a.bin")
            )

    def _create_firmware_image_of_type(self, upgrader_type):
        return self._create_firmware_image(upgrader_type=upgrader_type)

    def router_files(self):
        """What the router itself lists in ``remote_dir`` (over SSH)."""
        listing = subprocess.run(
            self.router.ssh_command(f"cd {self.remote_dir} && find . -mindepth 1"),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return sorted(line[2:] for line in listing.stdout.splitlines())

    def upgrade(self, schedule=None, **options):
        upgrade_options = dict(
            FAST, remote_dir=self.remote_dir, tool_path=self.tool_path, **options
        )
        operation = start_upgrade(
            self.device, self.image, upgrade_options, **(schedule or {})
        )
        return self.drive_to_end(operation, timeout=self.drive_timeout)

    def drive_to_end(self, operation, timeout=120, later=0):
        """Runs the scheduler's periodic pass (as beat would, ``later``
        seconds ahead) until the operation is over and tidied up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            operation.refresh_from_db()
            if operation.status in TERMINAL_STATUSES and not operation.next_check_at:
                return operation
            drive(now=timezone.now() + timedelta(seconds=later))
            time.sleep(0.2)
        self.fail(f"not finished in {timeout}s: {operation.status} {operation.log}")


# the router tests that mostly wait (timeouts, flashes, link outages): a
# process of their own runs them beside the other router tests (test.sh)
LONG_ROUTER_TAGS = EngineTestMixin.tags | {"long-router"}


class TestEngine(EngineTestMixin, StaticLiveServerTestCase):
    def test_successful_upgrade(self):
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(operation.progress, 100)
        self.assertTrue(operation.flash_started)
        self.assertIn("firmware transferred", operation.log)
        self.assertIn("flashing", operation.log)
        self.assertIn("modem verified by the server", operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)
        dmf = DeviceModemFirmware.objects.get(device=self.device)
        self.assertTrue(dmf.installed)
        self.assertEqual(dmf.modem_firmware_version, NEW_VERSION)
        self.assertIsNotNone(dmf.modem_detected_at)
        self.assertEqual(dmf.modem_imei, "351234567890123")
        # the image is removed from the router's storage afterwards
        leftovers = os.listdir(
            os.path.join(self.router.tmp_dir, "openwisp-modem-upgrader")
        )
        self.assertNotIn(f"{operation.pk}.bin", leftovers)
        self.assertFalse(self.router.modem_state()["inhibited_by"])

    def test_a_live_but_slow_worker_is_not_taken_for_a_lost_one(self):
        """Silent longer than the stuck-operation timeout before any progress
        (its SSH connection slow), a live worker keeps its attempt: its
        heartbeat touches it. Before, the stuck rule dispatched the attempt
        again beside it, and the retry's preparation removed the first
        attempt's scripts from the router (a fault run's failure)."""
        real_connection = engine._get_connection
        recovered = []

        def slow_connection(device):
            # the driver's stuck rule runs meanwhile, well past the timeout
            deadline = time.monotonic() + 2.5 * STUCK
            while time.monotonic() < deadline:
                try:
                    recovered.append(recover_lost_workers(timezone.now()))
                except OperationalError:
                    pass  # SQLite's shared cache: the heartbeat was writing
                time.sleep(0.2)
            return real_connection(device)

        STUCK = 4
        with mock.patch.object(
            app_settings, "STUCK_OPERATION_TIMEOUT", STUCK
        ), mock.patch.object(engine, "_get_connection", slow_connection):
            operation = self.upgrade()
        self.assertGreater(len(recovered), 10)
        self.assertEqual(sum(recovered), 0)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(operation.attempts, 1)
        self.assertNotIn("worker stopped", operation.log)

    def test_two_modem_router_flashes_the_chosen_modem(self):
        from ..base.models import ModemChangeSource
        from ..detection import detect_device
        from ..swapper import load_model

        ModemHistory = load_model("ModemHistory")
        # a second FN990A28 that sorts first in sysfs: without --usb-path the
        # wrapper would pick it
        self.router.set_modem(extra_modems=[{"usb_path": "1-1.2"}])
        DeviceModemFirmware.objects.filter(device=self.device).delete()
        detect_device(self.device)
        self.assertEqual(
            DeviceModemFirmware.objects.filter(device=self.device).count(), 2
        )
        with self.assertRaises(ValidationError):
            start_upgrade(self.device, self.image, dict(FAST))
        operation = start_upgrade(
            self.device,
            self.image,
            dict(FAST, remote_dir=self.remote_dir, tool_path=self.tool_path),
            usb_path="2-1",
        )
        operation = self.drive_to_end(operation)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        (flash,) = [e for e in self.router.modem_state()["events"] if e[0] == "uxfp"]
        # the DIAG port of the modem at 2-1 (1-1.2's is ttyUSB4)
        self.assertEqual(flash[flash.index("--port") + 1], "/dev/ttyUSB0")
        target = DeviceModemFirmware.objects.get(device=self.device, usb_path="2-1")
        other = DeviceModemFirmware.objects.get(device=self.device, usb_path="1-1.2")
        self.assertEqual(target.modem_firmware_version, NEW_VERSION)
        self.assertTrue(target.installed)
        self.assertFalse(target.unexplained_change)
        self.assertEqual(other.modem_firmware_version, "M0R.010000-B020")
        change = ModemHistory.objects.filter(source=ModemChangeSource.UPGRADE).get()
        self.assertEqual((change.operation, change.usb_path), (operation, "2-1"))
        self.assertEqual(change.firmware_version, NEW_VERSION)
        # the next detection sees nothing new
        detect_device(self.device)
        self.assertEqual(ModemHistory.objects.count(), 3)

    def test_irrecoverable_failures_fail_without_retry(self):
        cases = {
            "tool-error": "could not complete firmware upload",
            "stale-version": "after the flash, expected",
        }
        for fault, expected in cases.items():
            with self.subTest(fault=fault):
                ModemUpgradeOperation.objects.all().delete()
                self.router.set_modem(
                    firmware="M0R.010000-B020", mode="normal", fault=fault
                )
                operation = self.upgrade()
                self.assertNotIn("retrying", operation.log)
                self.assertEqual(
                    operation.status, OperationStatus.FAILED, operation.log
                )
                self.assertIn(expected, operation.log)
                self.assertEqual(operation.attempts, 1)

    def test_checksum_mismatch_fails_without_flashing(self):
        type(self.image).objects.filter(pk=self.image.pk).update(sha256="0" * 64)
        self.image.refresh_from_db()
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("sha256", operation.log)
        self.assertNotIn("retrying", operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], "M0R.010000-B020")

    def test_cancel_refused_once_flashing(self):
        real_poll = WrapperUpgrader.poll
        refused = []

        def cancel_then_poll(upgrader, image):
            if not refused:
                try:
                    cancel_upgrade(upgrader.operation)
                except UpgradeNotAllowed as error:
                    refused.append(str(error))
            return real_poll(upgrader, image)

        with mock.patch.object(WrapperUpgrader, "poll", cancel_then_poll):
            operation = self.upgrade()
        self.assertEqual(len(refused), 1)
        self.assertIn("brick", refused[0])
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)

    def test_wrong_variant_refused_on_router(self):
        # the server did not know the modem's variant: the router refuses
        DeviceModemFirmware.objects.filter(device=self.device).update(modem_model="")
        self.router.set_modem(model="FN990A40")
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("FN990A40", operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], "M0R.010000-B020")

    def test_interrupted_flash_is_aborted(self):
        self.router.set_fault("interrupt")
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.ABORTED, operation.log)
        self.assertIn("flashing mode", operation.log)
        self.assertEqual(self.router.modem_state()["mode"], "flashing")

    def test_offline_router_waited_for_then_upgraded(self):
        real_connect = type(self.device.deviceconnection_set.first().connector_instance)
        calls = {"count": 0}
        original = real_connect.connect

        def flaky_connect(connector):
            calls["count"] += 1
            if calls["count"] == 1:
                raise ConnectionRefusedError("connection refused")
            return original(connector)

        with mock.patch.object(real_connect, "connect", flaky_connect):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        # an offline router is waited for: it does not use up an attempt
        self.assertEqual(operation.attempts, 1)
        self.assertIn("router offline, trying again", operation.log)

    def test_offline_router_fails_at_the_deadline(self):
        self.router.stop()  # nothing listens any more: connection refused
        # retries after 1s, 2s, 4s: "trying again" even when the first
        # attempt comes late on a busy machine
        deadline = timezone.now() + timedelta(seconds=6)
        with mock.patch.object(
            app_settings, "RETRY_OPTIONS", dict(retry_backoff=1, retry_jitter=False)
        ), mock.patch(
            "openwisp_modem_upgrader.engine.requeue_operation",
            wraps=engine.requeue_operation,
        ) as requeue:
            operation = self.upgrade(schedule={"deadline": deadline})
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("router offline, trying again", operation.log)
        self.assertIn("stayed offline until the deadline", operation.log)
        self.assertFalse(operation.flash_started)
        # never planned again past the deadline (what the machine's speed
        # does not change; when the last attempt ran, before it, does)
        retries = [call.kwargs["not_before"] for call in requeue.call_args_list]
        self.assertTrue(retries)
        self.assertLess(max(retries), deadline)

    def test_recoverable_failure_gives_up_after_three_attempts(self):
        self.image = self._create_firmware_image(size=3 * 1024 * 1024)
        with cut_transfers(at_fraction=0.5, times=3):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertEqual(operation.attempts, 3)
        self.assertIn("giving up after 3 attempts", operation.log)
        self.assertFalse(operation.flash_started)

    def test_transfer_interrupted_is_retried(self):
        self.image = self._create_firmware_image(size=3 * 1024 * 1024)
        with cut_transfers(at_fraction=0.5, times=1):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("transfer interrupted", operation.log)
        self.assertIn("resuming the transfer", operation.log)

    def test_not_enough_space_fails_clearly(self):
        with mock.patch.object(WrapperUpgrader, "_parse_df", return_value=10):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("not enough space", operation.log)
        self.assertFalse(operation.flash_started)

    def test_cancel_before_flash_prevents_flash(self):
        def cancel_during_transfer(upgrader):
            cancel_upgrade(upgrader.operation)

        with mock.patch.object(
            WrapperUpgrader, "transfer_firmware", cancel_during_transfer
        ):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.CANCELLED)
        self.assertFalse(operation.flash_started)
        self.assertEqual(self.router.modem_state()["firmware"], "M0R.010000-B020")

    def test_worker_killed_after_wrapper_start_followed_to_the_end(self):
        # the worker dies right after starting the wrapper on the router
        operation = kill_worker_after_wrapper_start(self)
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        # the wrapper goes on alone on the router; its success report is only
        # recorded: the server has not verified the version
        exit_file = os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", str(operation.pk), "exit_code"
        )
        wait_for_file(exit_file)
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        # the follow-ups need no worker of the upgrade: the database says
        # when the router is read next
        self.assertIsNotNone(operation.next_check_at)
        operation = self.drive_to_end(operation, later=100)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("the router reports success", operation.log)
        # the server's own reading of the modem decided, as everywhere
        self.assertIn("modem verified by the server", operation.log)
        dmf = DeviceModemFirmware.objects.get(device=self.device)
        self.assertTrue(dmf.installed)
        self.assertIsNotNone(dmf.modem_detected_at)
        self.assertNotIn(
            f"openwisp-modem-upgrader/{operation.pk}.bin", self.router_files()
        )

    def test_router_gone_until_the_outcome_deadline(self):
        operation = kill_worker_after_wrapper_start(self)
        self.router.stop()
        ModemUpgradeOperation.objects.update(status=OperationStatus.IN_PROGRESS)
        drive(now=timezone.now() + timedelta(seconds=100))
        operation.refresh_from_db()
        # unreachable during a flash is normal: still followed
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        self.assertIn("router unreachable", operation.log)
        ModemUpgradeOperation.objects.update(outcome_deadline=timezone.now())
        operation = self.drive_to_end(operation)
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("no outcome from the router within the deadline", operation.log)
        self.assertIn("modem state is unknown", operation.log)

    def test_concurrent_start_refused(self):
        from django.core.exceptions import ValidationError

        operation = ModemUpgradeOperation.objects.create(
            device=self.device, image=self.image
        )
        mark_in_progress(operation.pk)
        with self.assertRaises(ValidationError):
            self.upgrade()
        self.assertEqual(ModemUpgradeOperation.objects.count(), 1)


class TestRouterLeftAsFound(EngineTestMixin, StaticLiveServerTestCase):
    """Every path that ends before the flash leaves no image and no lock."""

    def replace_router_command(self, name, script):
        path = os.path.join(self.router.bin_dir, name)
        os.unlink(path)
        with open(path, "w") as command:
            command.write(f"#!{self.router.bin_dir}/sh\n{script}\n")
        os.chmod(path, 0o755)

    def assertModemUntouched(self):
        self.assertEqual(self.router.modem_state()["firmware"], "M0R.010000-B020")

    def test_wrapper_refuses_arguments(self):
        # a report URL the router's argument check refuses: exit 64
        with mock.patch.object(
            app_settings, "DEVICE_REPORT_BASE_URL", "http://127.0.0.1:1/?x=1"
        ):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("exit 64", operation.log)
        self.assertEqual(self.router_files(), [])
        self.assertModemUntouched()

    def test_wrapper_cannot_detach(self):
        self.replace_router_command("start-stop-daemon", "exit 1")
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("refused to start the flash (exit 1)", operation.log)
        self.assertIn("nothing was written to the modem", operation.log)
        self.assertEqual(self.router_files(), [])
        self.assertModemUntouched()

    def test_checksum_mismatch(self):
        type(self.image).objects.filter(pk=self.image.pk).update(sha256="0" * 64)
        self.image.refresh_from_db()
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("sha256", operation.log)
        files = self.router_files()
        # the wrapper ran: its journal stays as the record, nothing else
        self.assertNotIn(f"openwisp-modem-upgrader/{operation.pk}.bin", files)
        self.assertNotIn(f"openwisp-modem-upgrader/{operation.pk}/lock", files)
        self.assertIn(f"openwisp-modem-upgrader/{operation.pk}/exit_code", files)
        self.assertModemUntouched()

    def test_transfer_failure(self):
        # every attempt loses the link: the last one leaves nothing behind
        self.image = self._create_firmware_image(size=3 * 1024 * 1024)
        with cut_transfers(at_fraction=0.3, times=3):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("giving up after 3 attempts", operation.log)
        self.assertEqual(self.router_files(), [])

    def test_no_space_left_during_transfer(self):
        # a real full filesystem, and a df that claims there is room
        small = os.path.join(self.router.tmp_dir, "small")
        self.router.mount_tmpfs(small, 512)
        self.remote_dir = small
        self.image = self._create_firmware_image(size=2 * 1024 * 1024)
        with mock.patch.object(WrapperUpgrader, "_parse_df", return_value=10**9):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("No space left on device", operation.log)
        self.assertIn("remote_dir", operation.log)
        self.assertNotIn("retrying", operation.log)
        self.assertEqual(operation.attempts, 1)
        self.assertEqual(self.router_files(), [])

    def test_unparsable_df_fails_clearly(self):
        self.replace_router_command("df", "echo 'df: unrecognized output'")
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("cannot read the free space", operation.log)
        self.assertEqual(operation.attempts, 1)
        self.assertEqual(self.router_files(), [])

    def test_stored_hostile_options_never_reach_router(self):
        # stored before a validation rule existed (no full_clean here)
        operation = ModemUpgradeOperation.objects.create(
            device=self.device,
            image=self.image,
            upgrade_options=dict(
                FAST, remote_dir=f"{self.remote_dir}\n", tool_path=self.tool_path
            ),
        )
        run_operation(operation.pk)
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("invalid upgrade options", operation.log)
        self.assertFalse(operation.flash_started)
        self.assertEqual(self.router_files(), [])

    def test_cancel_before_flash(self):
        def cancel_after_transfer(upgrader):
            real_transfer(upgrader)
            cancel_upgrade(upgrader.operation)

        real_transfer = WrapperUpgrader.transfer_firmware
        with mock.patch.object(
            WrapperUpgrader, "transfer_firmware", cancel_after_transfer
        ):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.CANCELLED)
        self.assertEqual(self.router_files(), [])
        self.assertModemUntouched()


def kill_worker_after_wrapper_start(test, **options):
    """The worker dies (SIGKILL: no clean-up) right after starting the
    wrapper; returns the operation once the router finished flashing."""
    real_start = WrapperUpgrader.start

    def start_then_die(upgrader, image):
        real_start(upgrader, image)
        raise SystemExit()

    with mock.patch.object(WrapperUpgrader, "start", start_then_die):
        with test.assertRaises(SystemExit):
            test.upgrade(**options)
    operation = ModemUpgradeOperation.objects.get(device=test.device)
    exit_file = os.path.join(
        test.remote_dir, "openwisp-modem-upgrader", str(operation.pk), "exit_code"
    )
    wait_for_file(exit_file)
    return operation


def wait_for_file(path, timeout=120):
    """Until ``path`` exists (the router finished): a generous deadline, as
    a busy machine is slow, and a clear failure past it."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} not written within {timeout}s")
        time.sleep(0.05)


class TestServerReadingDecides(EngineTestMixin, StaticLiveServerTestCase):
    """Success only once the server itself read the new version."""

    def test_follow_up_cannot_read_modem(self):
        operation = kill_worker_after_wrapper_start(self, reboot_timeout=10)
        self.router.set_modem(mode="absent")  # the modem does not answer
        operation = self.drive_to_end(operation, later=100)
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("the router reports success", operation.log)
        self.assertIn("version unverified", operation.log)
        self.assertFalse(DeviceModemFirmware.objects.get(device=self.device).installed)

    def test_worker_cannot_read_modem_after_flash(self):
        real_raise = WrapperUpgrader.raise_for_exit_code

        def modem_gone_after_flash(code, output=""):
            self.router.set_modem(mode="absent")
            return real_raise(code, output)

        with mock.patch.object(
            WrapperUpgrader, "raise_for_exit_code", staticmethod(modem_gone_after_flash)
        ):
            operation = self.upgrade(reboot_timeout=10)
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("version unverified", operation.log)
        self.assertNotIn("verified the version itself", operation.log)
        self.assertFalse(DeviceModemFirmware.objects.get(device=self.device).installed)

    def test_worker_killed_before_wrapper_start(self):
        # SIGKILL right after the point of no return: no clean-up runs
        with mock.patch.object(
            WrapperUpgrader, "start_wrapper", side_effect=SystemExit
        ), mock.patch.object(WrapperUpgrader, "leave_router_as_found"):
            with self.assertRaises(SystemExit):
                self.upgrade()
        operation = ModemUpgradeOperation.objects.get(device=self.device)
        self.assertTrue(operation.flash_started)
        self.assertIn(
            f"openwisp-modem-upgrader/{self.image.sha256}.bin", self.router_files()
        )
        # the follow-up finds no journal: the modem is untouched, so the
        # upgrade is retried (and the image already there is reused)
        operation = self.drive_to_end(operation, later=100)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("nothing was written to the modem", operation.log)
        self.assertIn("already holds this image", operation.log)
        self.assertEqual(operation.attempts, 2)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)


class TestUplinkLoss(EngineTestMixin, StaticLiveServerTestCase):
    """The modem being flashed is the router's only uplink.

    The router lives in a network namespace of its own; the fake uxfp takes
    the namespace's link down while the modem is away, so the SSH session and
    the router's reports both go dark for the whole flash.
    """

    # the router reaches the server through the veth's host end
    host = "0.0.0.0"
    router_options = {
        "netns": True,
        "fault": "uplink-loss",
        "flash_duration": 6,
        "reboot_delay": 1.5,
    }

    def setUp(self):
        super().setUp()
        # notice the dead link within the test's time scale
        patcher = mock.patch.object(WrapperUpgrader, "journal_read_timeout", 1)
        patcher.start()
        self.addCleanup(patcher.stop)

    def report_base_url(self):
        return f"http://{self.router.netns.host_address}:{self.server_thread.port}"

    def test_upgrade_survives_uplink_loss(self):
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("router unreachable", operation.log)
        self.assertIn("router reachable again", operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)
        # every journal record reached the server exactly once
        lines = operation.log.splitlines()
        flashing = [line for line in lines if line.startswith("[+] flashing")]
        self.assertEqual(len(flashing), len(set(flashing)))


class AcmeUpgrader(BaseModemUpgrader):
    """A vendor plugged in through settings only (no change to the core)."""

    SCHEMA = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"speed": {"type": "integer", "minimum": 1}},
    }

    def upgrade(self, image):
        record_progress(self.operation.pk, 50, f"acme flashing at {self.options}")
        raise IrrecoverableModemFailure("acme tool refused the image")


ACME_MAP = {"acme": "openwisp_modem_upgrader.tests.test_engine.AcmeUpgrader"}


class TestPluggableUpgraders(EngineTestMixin, StaticLiveServerTestCase):
    def test_generic_command_upgrader(self):
        # any tool speaking the device contract works through the generic type
        self.image = self._create_firmware_image_of_type("generic")
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)

    def test_generic_upgrader_requires_tool_path(self):
        from django.core.exceptions import ValidationError

        self.image = self._create_firmware_image_of_type("generic")
        with self.assertRaises(ValidationError) as context:
            start_upgrade(self.device, self.image, {"remote_dir": "/tmp"})
        self.assertIn("tool_path", str(context.exception))

    def test_vendor_added_by_settings(self):
        from django.core.exceptions import ValidationError

        with mock.patch.dict(app_settings.UPGRADERS_MAP, ACME_MAP):
            self.image = self._create_firmware_image_of_type("acme")
            with self.assertRaises(ValidationError):
                start_upgrade(self.device, self.image, {"speed": 0})
            operation = start_upgrade(self.device, self.image, {"speed": 9})
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("acme flashing at {'speed': 9}", operation.log)
        self.assertIn("acme tool refused the image", operation.log)
        self.assertEqual(operation.progress, 50)


class TestEngineOutcomes(TestModemUpgraderMixin, TestCase):
    """Paths that end before any SSH session: still a terminal record."""

    def setUp(self):
        self.device = self._create_modem_device()
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            self.operation = start_upgrade(self.device, self._create_image())

    def _run(self):
        run_operation(self.operation.pk)
        self.operation.refresh_from_db()
        return self.operation

    def test_unknown_upgrader_type(self):
        type(self.operation.image).objects.filter(pk=self.operation.image_id).update(
            type="removed-vendor"
        )
        operation = self._run()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn(
            'No modem upgrader registered for type "removed-vendor"', operation.log
        )

    def test_time_limit(self):
        with mock.patch.object(
            WrapperUpgrader, "start", side_effect=SoftTimeLimitExceeded()
        ), mock.patch("openwisp_modem_upgrader.engine._get_connection"):
            operation = self._run()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("time limit", operation.log)

    def test_unexpected_error(self):
        with mock.patch.object(
            WrapperUpgrader, "start", side_effect=KeyError("bug")
        ), mock.patch("openwisp_modem_upgrader.engine._get_connection"):
            operation = self._run()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("unexpected error", operation.log)

    def test_database_outage_leaves_operation_to_the_driver(self):
        outage = OperationalError("server closed the connection unexpectedly")
        # the worker's part: nothing flashed, the lost-worker retry follows
        with mock.patch.object(
            WrapperUpgrader, "start", side_effect=outage
        ), mock.patch("openwisp_modem_upgrader.engine._get_connection"):
            operation = self._run()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        self.assertNotIn("unexpected error", operation.log)
        with mock.patch.object(app_settings, "STUCK_OPERATION_TIMEOUT", 0):
            self.assertEqual(recover_lost_workers(timezone.now()), 1)
        # a follow-up during the flash: the next one reads the router again
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.IDLE)
        mark_in_progress(operation.pk)
        mark_flash_started(operation.pk)
        with mock.patch.object(WrapperUpgrader, "poll", side_effect=outage), mock.patch(
            "openwisp_modem_upgrader.engine._get_connection"
        ):
            follow_operation(operation.pk)
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        self.assertTrue(operation.flash_started)
        self.assertNotIn("unexpected error", operation.log)
        # a concurrent write's "forced update did not affect any rows" (seen
        # from openwisp-controller's connection save under SQLite): the next
        # read is scheduled at once, not after the follow-up's lease
        ModemUpgradeOperation.objects.filter(pk=operation.pk).update(
            next_check_at=timezone.now() + timedelta(hours=1)
        )
        forced = DatabaseError("Forced update did not affect any rows.")
        with mock.patch.object(WrapperUpgrader, "poll", side_effect=forced), mock.patch(
            "openwisp_modem_upgrader.engine._get_connection"
        ):
            follow_operation(operation.pk)
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        self.assertLess(operation.next_check_at, timezone.now() + timedelta(minutes=5))
        # an integrity error is a bug: a terminal record
        with mock.patch.object(
            WrapperUpgrader, "poll", side_effect=IntegrityError("bug")
        ), mock.patch("openwisp_modem_upgrader.engine._get_connection"):
            follow_operation(operation.pk)
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("unexpected error", operation.log)

    def test_image_deleted_before_start(self):
        self.operation.image.delete()
        operation = self._run()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("image was deleted", operation.log)

    def test_duplicate_delivery_does_not_run_twice(self):
        with mock.patch.object(WrapperUpgrader, "start") as upgrade, mock.patch(
            "openwisp_modem_upgrader.engine._get_connection"
        ):
            mark_in_progress(self.operation.pk)
            run_operation(self.operation.pk)
        upgrade.assert_not_called()

    def test_lost_message_published_again_and_stale_one_refused(self):
        long_ago = timezone.now() - timedelta(days=1)
        ModemUpgradeOperation.objects.filter(pk=self.operation.pk).update(
            dispatched_at=long_ago
        )
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade") as pub:
            self.assertEqual(drive()["republished"], 1)
        self.operation.refresh_from_db()
        self.assertEqual(self.operation.status, OperationStatus.IDLE)
        self.assertGreater(self.operation.dispatched_at, long_ago)
        pub.assert_called_once_with(
            str(self.operation.pk),
            time_limit=mock.ANY,
            dispatched_at=self.operation.dispatched_at,
        )
        # the first message, delivered late, starts nothing
        self.assertFalse(mark_in_progress(self.operation.pk, long_ago))
        self.assertTrue(
            mark_in_progress(self.operation.pk, self.operation.dispatched_at)
        )

    def test_worker_lost_before_flash_is_retried_truthfully(self):
        mark_in_progress(self.operation.pk)
        with mock.patch.object(app_settings, "STUCK_OPERATION_TIMEOUT", 0):
            self.assertEqual(recover_lost_workers(timezone.now()), 1)
        self.operation.refresh_from_db()
        self.assertEqual(self.operation.status, OperationStatus.IDLE)
        self.assertIsNone(self.operation.dispatched_at)
        self.assertIsNotNone(self.operation.not_before)
        self.assertIn("nothing was written to the modem", self.operation.log)
        self.assertIn("retrying in", self.operation.log)

    def test_worker_lost_on_last_attempt_fails_truthfully(self):
        mark_in_progress(self.operation.pk)
        ModemUpgradeOperation.objects.update(attempts=3)
        with mock.patch.object(app_settings, "STUCK_OPERATION_TIMEOUT", 0):
            recover_lost_workers(timezone.now())
        self.operation.refresh_from_db()
        self.assertEqual(self.operation.status, OperationStatus.FAILED)
        self.assertIn("nothing was written to the modem", self.operation.log)
        self.assertIn("giving up after 3 attempts", self.operation.log)
