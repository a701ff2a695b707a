"""Download ahead, flash in window, against a real emulated router.

The window's opening is driven by the scheduler's injected clock
(``drive(now=...)``): the engine decides staging or flashing from the
same instant (the dispatch token), so no test waits for a window.
"""

import json
import os
import time
from datetime import time as datetime_time
from datetime import timedelta
from unittest import mock

from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.exceptions import ValidationError
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from .. import settings as app_settings
from ..base.models import OperationStatus
from ..device_contract import WORK_DIR
from ..policy import run_policies
from ..scheduler import drive
from ..swapper import load_model
from ..upgrade import cancel_upgrade, start_upgrade
from ..upgraders.wrapper import scripts_size
from . import ModemBatchUpgradeOperation, ModemUpgradeOperation, TestModemUpgraderMixin
from .test_admin_batch import MassUpgradeMixin
from .test_api import api_url
from .test_api_rollout import RolloutApiMixin
from .test_engine import FAST, EngineTestMixin

ModemFirmwarePolicy = load_model("ModemFirmwarePolicy")

UNTOUCHED = "M0R.010000-B020"


def window_ahead(now, hours=2):
    """A daily window (UTC) that opens ``hours`` after ``now``: closed now."""
    start = now + timedelta(hours=hours)
    end = start + timedelta(hours=1)
    return {
        "window_start": start.time().replace(microsecond=0),
        "window_end": end.time().replace(microsecond=0),
        "window_timezone": "UTC",
    }


class StagingTestMixin(EngineTestMixin):
    def setUp(self):
        super().setUp()
        # one start time in the window, not spread, unless a test says so
        patcher = mock.patch.object(app_settings, "START_SPREAD", 0)
        patcher.start()
        self.addCleanup(patcher.stop)

    def options(self, **options):
        return dict(
            FAST,
            remote_dir=self.remote_dir,
            tool_path=self.tool_path,
            stage_ahead=True,
            **options,
        )

    def start_staged_upgrade(self, **options):
        operation = start_upgrade(
            self.device,
            self.image,
            self.options(**options),
            **window_ahead(timezone.now()),
        )
        return self.drive_until(operation, OperationStatus.STAGED)

    def drive_until(self, operation, status, timeout=120, at=None):
        """Scheduler passes (at ``at()``, default the real time) until the
        operation reaches ``status``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            operation.refresh_from_db()
            if operation.status == status:
                return operation
            drive(now=at() if at else timezone.now())
            time.sleep(0.2)
        self.fail(f"not {status} in {timeout}s: {operation.status} {operation.log}")

    def staged_image(self):
        return os.path.join(self.remote_dir, WORK_DIR, f"{self.image.sha256}.bin")

    def seconds_until(self, when):
        return (when - timezone.now()).total_seconds()


class TestStaging(StagingTestMixin, StaticLiveServerTestCase):
    def test_staged_outside_window_then_flashed_in_it_without_transfer(self):
        operation = self.start_staged_upgrade()
        opening = operation.next_window_opening(timezone.now())
        # staged before the window: the image on the router, verified there
        self.assertLess(operation.staged_at, opening)
        self.assertIsNotNone(operation.staged_until)
        self.assertFalse(operation.flash_started)
        self.assertEqual(operation.attempts, 0)
        self.assertIn("image staged: sha256 verified on the router", operation.log)
        self.assertTrue(os.path.isfile(self.staged_image()))
        self.assertEqual(self.router.modem_state()["firmware"], UNTOUCHED)
        staged_bytes = operation.bytes_sent
        self.assertGreaterEqual(staged_bytes, self.image.size)
        # the window still closed: nothing more happens
        drive(now=timezone.now())
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.STAGED)
        self.assertEqual(operation.bytes_sent, staged_bytes)
        # the window opens: flashed, and only the scripts were sent in it
        operation = self.drive_to_end(operation, later=self.seconds_until(opening) + 60)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(operation.bytes_sent - staged_bytes, scripts_size())
        self.assertIn("the router already holds this image", operation.log)
        self.assertGreater(operation.started_at, operation.staged_at)
        self.assertEqual(
            self.router.modem_state()["firmware"], self.image.build.version
        )

    def test_staged_starts_are_spread_inside_the_window(self):
        operation = self.start_staged_upgrade()
        opening = operation.next_window_opening(timezone.now())
        later = self.seconds_until(opening) + 60
        with mock.patch.object(app_settings, "START_SPREAD", 600):
            drive(now=timezone.now() + timedelta(seconds=later))
            operation.refresh_from_db()
            # waiting for its spread start, still staged
            self.assertEqual(operation.status, OperationStatus.STAGED)
            self.assertGreaterEqual(operation.not_before, opening)
            self.assertLessEqual(
                operation.not_before, opening + timedelta(seconds=60 + 600)
            )
            operation = self.drive_to_end(
                operation, later=self.seconds_until(operation.not_before) + 1
            )
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)

    def test_cancel_removes_the_staged_image(self):
        operation = self.start_staged_upgrade()
        self.assertTrue(os.path.isfile(self.staged_image()))
        cancel_upgrade(operation)
        operation = self.drive_to_end(operation)
        self.assertEqual(operation.status, OperationStatus.CANCELLED)
        self.assertFalse(os.path.exists(self.staged_image()))
        self.assertEqual(self.router.modem_state()["firmware"], UNTOUCHED)

    def test_expiry_removes_the_staged_image(self):
        with mock.patch.object(app_settings, "STAGED_IMAGE_EXPIRY", 600):
            operation = self.start_staged_upgrade()
        self.assertAlmostEqual(
            (operation.staged_until - operation.staged_at).total_seconds(), 600, 0
        )
        # past the expiry, the window (two hours ahead) still closed
        operation = self.drive_to_end(operation, later=1200)
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("the staged image expired", operation.log)
        self.assertFalse(os.path.exists(self.staged_image()))
        self.assertEqual(self.router.modem_state()["firmware"], UNTOUCHED)

    def test_deadline_removes_the_staged_image(self):
        deadline = timezone.now() + timedelta(minutes=20)
        operation = start_upgrade(
            self.device,
            self.image,
            self.options(),
            deadline=deadline,
            **window_ahead(timezone.now()),
        )
        operation = self.drive_until(operation, OperationStatus.STAGED)
        operation = self.drive_to_end(operation, later=1800)
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("not flashed before the deadline", operation.log)
        self.assertFalse(os.path.exists(self.staged_image()))

    def test_staged_image_no_longer_matching_is_sent_again(self):
        operation = self.start_staged_upgrade()
        staged_bytes = operation.bytes_sent
        # the copy on the router changes while it waits (same size)
        with open(self.staged_image(), "r+b") as staged:
            staged.seek(1000)
            byte = staged.read(1)
            staged.seek(1000)
            staged.write(bytes([byte[0] ^ 0xFF]))
        opening = operation.next_window_opening(timezone.now())
        operation = self.drive_to_end(operation, later=self.seconds_until(opening) + 60)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("does not match the image: sending all", operation.log)
        self.assertEqual(
            operation.bytes_sent - staged_bytes, scripts_size() + self.image.size
        )

    def test_new_upgrade_supersedes_the_staged_one(self):
        staged = self.start_staged_upgrade()
        # the same image, now, without a window: it finds the staged copy
        operation = start_upgrade(
            self.device, self.image, dict(self.options(), stage_ahead=False)
        )
        staged.refresh_from_db()
        self.assertEqual(staged.status, OperationStatus.CANCELLED)
        self.assertIn("Superseded by a new upgrade", staged.log)
        operation = self.drive_to_end(operation)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(operation.bytes_sent, scripts_size())


class TestPolicyStaging(StagingTestMixin, StaticLiveServerTestCase):
    def test_policy_rollout_stages_then_flashes_in_the_window(self):
        """A firmware policy's rollout (a mass upgrade): the enrolled modem
        stages outside the policy's window, then flashes at its opening."""
        policy = ModemFirmwarePolicy(
            organization=self._get_org(),
            build=self.image.build,
            name="staged fleet",
            upgrade_options=self.options(),
            **window_ahead(timezone.now()),
        )
        policy.full_clean()
        policy.save()
        self.assertEqual(run_policies(), {str(policy.pk): 1})
        policy.refresh_from_db()
        (operation,) = policy.batch.operations.all()
        operation = self.drive_until(operation, OperationStatus.STAGED)
        self.assertTrue(os.path.isfile(self.staged_image()))
        self.assertEqual(policy.batch.status_counts()[OperationStatus.STAGED], 1)
        staged_bytes = operation.bytes_sent
        opening = policy.batch.next_window_opening(timezone.now())
        self.assertLess(operation.staged_at, opening)
        operation = self.drive_to_end(operation, later=self.seconds_until(opening) + 60)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(operation.bytes_sent - staged_bytes, scripts_size())


class TestStagingOptions(TestModemUpgraderMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.device = self._create_modem_device()
        self.image = self._create_image()

    def assertRefused(self, options, message, **schedule):
        with self.assertRaises(ValidationError) as refused:
            start_upgrade(self.device, self.image, options, usb_path="", **schedule)
        self.assertIn(message, " ".join(refused.exception.messages))
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def test_stage_ahead_needs_a_window(self):
        self.assertRefused(
            {"stage_ahead": True}, "needs a maintenance window", window_start=None
        )

    def test_stage_ahead_with_pull_mode_refused(self):
        self.assertRefused(
            {"stage_ahead": True, "transfer_mode": "pull"},
            "cannot be combined with transfer_mode pull",
            **window_ahead(timezone.now()),
        )

    def test_stage_ahead_is_a_boolean(self):
        self.assertRefused(
            {"stage_ahead": "yes"},
            "stage_ahead: 'yes' is not of type 'boolean'",
            **window_ahead(timezone.now()),
        )


class TestStagingApi(RolloutApiMixin, TestCase):
    def test_single_upgrade_stage_ahead_without_window_refused(self):
        url = api_url("device_modem_firmware", self.devices[0].pk)
        response = self._json(
            "put",
            url,
            {"image": str(self.image.pk), "upgrade_options": {"stage_ahead": True}},
        )
        self.assertEqual(response.status_code, 400, response.data)
        self.assertIn("needs a maintenance window", str(response.data))
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def test_mass_upgrade_stage_ahead(self):
        response = self._post_batch({"upgrade_options": {"stage_ahead": True}})
        self.assertEqual(response.status_code, 400, response.data)
        self.assertIn("needs a maintenance window", str(response.data))
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        response = self._post_batch(
            {
                "upgrade_options": {"stage_ahead": True},
                "window_start": "01:00",
                "window_end": "04:00",
            }
        )
        self.assertEqual(response.status_code, 201, response.data)
        batch = ModemBatchUpgradeOperation.objects.get(pk=response.data["id"])
        self.assertIs(batch.upgrade_options["stage_ahead"], True)

    def test_policy_stage_ahead(self):
        data = {
            "organization": str(self.org_a.pk),
            "name": "staged fleet",
            "build": str(self.build.pk),
            "upgrade_options": {"stage_ahead": True},
        }
        url = api_url("firmware_policy_list")
        response = self._json("post", url, data)
        self.assertEqual(response.status_code, 400, response.data)
        self.assertIn(
            "needs a maintenance window", str(response.data["upgrade_options"])
        )
        self.assertFalse(ModemFirmwarePolicy.objects.exists())
        data.update(window_start="01:00", window_end="04:00")
        response = self._json("post", url, data)
        self.assertEqual(response.status_code, 201, response.data)
        policy = ModemFirmwarePolicy.objects.get()
        self.assertEqual(policy.upgrade_options, {"stage_ahead": True})

    def test_staged_status_shown(self):
        batch = self._canary_batch(
            upgrade_options={"stage_ahead": True},
            window_start="01:00",
            window_end="04:00",
        )
        operation = batch.operations.first()
        now = timezone.now()
        ModemUpgradeOperation.objects.filter(pk=operation.pk).update(
            status=OperationStatus.STAGED,
            staged_at=now,
            staged_until=now + timedelta(days=7),
        )
        detail = self.client.get(api_url("upgrade_operation_detail", operation.pk))
        self.assertEqual(detail.data["status"], "staged")
        self.assertIsNotNone(detail.data["staged_at"])
        self.assertIsNotNone(detail.data["staged_until"])
        self.assertEqual(self._detail(batch)["status_counts"]["staged"], 1)
        listed = self.client.get(
            api_url("upgrade_operation_list"), {"status": "staged"}
        )
        self.assertEqual(listed.status_code, 200)
        self.assertEqual(
            [row["id"] for row in listed.data["results"]], [str(operation.pk)]
        )


class TestStagingPolicy(TestModemUpgraderMixin, TestCase):
    def test_policy_stage_ahead_needs_a_window(self):
        image = self._create_image()
        policy = ModemFirmwarePolicy(
            organization=self._get_org(),
            build=image.build,
            name="staged fleet",
            upgrade_options={"stage_ahead": True},
        )
        with self.assertRaises(ValidationError) as refused:
            policy.full_clean()
        self.assertIn(
            "needs a maintenance window", " ".join(refused.exception.messages)
        )
        policy.window_start = datetime_time(1)
        policy.window_end = datetime_time(4)
        policy.full_clean()


@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestStagingMassUpgradeForm(MassUpgradeMixin, TestCase):
    def _confirm(self, **data):
        data = {
            "organization": self.org.pk,
            "confirm": "1",
            "upgrade_options": json.dumps({"stage_ahead": True}),
            **data,
        }
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(self.preview_url(), data)

    def test_stage_ahead_offered_and_needs_a_window(self, delay):
        self._devices(2)
        response = self.client.get(self.preview_url())
        self.assertContains(response, "Stage ahead of the window")
        response = self._confirm()
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "needs a maintenance window")
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        response = self._confirm(window_start="01:00", window_end="04:00")
        self.assertEqual(response.status_code, 302)
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertEqual(batch.upgrade_options, {"stage_ahead": True})

    def test_staged_shown_on_the_admin_pages(self, delay):
        self._devices(1)
        response = self._confirm(window_start="01:00", window_end="04:00")
        self.assertEqual(response.status_code, 302)
        batch = ModemBatchUpgradeOperation.objects.get()
        operation = batch.operations.get()
        now = timezone.now()
        ModemUpgradeOperation.objects.filter(pk=operation.pk).update(
            status=OperationStatus.STAGED,
            staged_at=now,
            staged_until=now + timedelta(days=7),
            progress=10,
        )
        opts = ModemUpgradeOperation._meta
        page = self.client.get(
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change", args=[operation.pk]
            )
        )
        self.assertContains(page, "Image staged at")
        self.assertContains(page, "Staged image expires at")
        self.assertEqual(
            [stage["state"] for stage in page.context["stages"]],
            ["done", "todo", "todo", "todo", "todo"],
        )
        listed = self.client.get(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
            {"status__exact": "staged"},
        )
        self.assertContains(listed, str(operation.device.name))
        opts = ModemBatchUpgradeOperation._meta
        page = self.client.get(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[batch.pk])
        )
        self.assertContains(page, "staged: image on the router, waiting for the window")
