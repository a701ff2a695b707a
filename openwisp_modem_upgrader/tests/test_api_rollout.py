"""Rollout controls through the operator API: options of a mass upgrade and
of a single upgrade, the rollout's state, pause, resume and retry."""

from datetime import timedelta
from unittest import mock

from django.test import TestCase
from django.utils import timezone

from ..base.models import OperationStatus
from ..base.rollout import RolloutState
from ..scheduler import dispatch
from ..upgrade import finish_operation
from . import ModemBatchUpgradeOperation, ModemUpgradeOperation
from .test_api import ApiTestMixin, api_url


class RolloutApiMixin(ApiTestMixin):
    def setUp(self):
        super().setUp()
        self.category = self._create_category(organization=self.org_a)
        self.build = self._create_build(category=self.category)
        self.image = self._create_image(build=self.build)
        self.devices = [
            self._create_modem_device(name=f"r{i}", mac_address=f"00:11:22:33:66:0{i}")
            for i in range(5)
        ]
        self.manager = self._login(self._manager())

    def _post_batch(self, data):
        with self.captureOnCommitCallbacks(execute=True):
            return self._json("post", api_url("build_upgrade", self.build.pk), data)

    def _detail(self, batch):
        response = self.client.get(api_url("batch_upgrade_operation_detail", batch.pk))
        self.assertEqual(response.status_code, 200, response.data)
        return response.data

    def _canary_batch(self, **options):
        response = self._post_batch(
            {"canary_size": 1, "wave_size": 2, "max_concurrent": 1, **options}
        )
        self.assertEqual(response.status_code, 201, response.data)
        return ModemBatchUpgradeOperation.objects.get(pk=response.data["id"])

    def _action(self, name, batch):
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(
                api_url(f"batch_upgrade_operation_{name}", batch.pk)
            )


class TestRolloutOptions(RolloutApiMixin, TestCase):
    def test_batch_created_with_rollout_options(self):
        start = timezone.now() + timedelta(hours=2)
        data = {
            "max_concurrent": 3,
            "canary_size": 20,
            "canary_percent": True,
            "wave_size": 2,
            "confirm_waves": True,
            "failure_threshold": 2,
            "failure_threshold_percent": False,
            "failure_threshold_minimum": 4,
            "scheduled_at": start.isoformat(),
            "deadline": (start + timedelta(days=1)).isoformat(),
            "window_start": "22:00",
            "window_end": "05:30",
            "window_timezone": "Europe/Rome",
        }
        response = self._post_batch(data)
        self.assertEqual(response.status_code, 201, response.data)
        batch = ModemBatchUpgradeOperation.objects.get()
        for field in ("max_concurrent", "canary_size", "wave_size"):
            self.assertEqual(getattr(batch, field), data[field])
        self.assertTrue(batch.canary_percent)
        self.assertTrue(batch.confirm_waves)
        self.assertFalse(batch.failure_threshold_percent)
        self.assertEqual(batch.failure_threshold, 2)
        self.assertEqual(batch.failure_threshold_minimum, 4)
        self.assertEqual(batch.scheduled_at, start)
        self.assertEqual(str(batch.window_start), "22:00:00")
        self.assertEqual(str(batch.window_end), "05:30:00")
        self.assertEqual(batch.window_timezone, "Europe/Rome")
        self.assertEqual(response.data["window_timezone"], "Europe/Rome")
        self.assertEqual(response.data["display_state"], "scheduled")
        # 20% of 5 devices: a canary of 1, then waves of 2
        self.assertEqual(
            list(
                batch.operations.order_by("wave")
                .values_list("wave", flat=True)
                .distinct()
            ),
            [1, 2, 3],
        )
        # scheduled later: nothing was queued
        self.queued.assert_not_called()

    def test_defaults_from_the_model(self):
        response = self._post_batch({})
        self.assertEqual(response.status_code, 201, response.data)
        batch = ModemBatchUpgradeOperation.objects.get()
        default = ModemBatchUpgradeOperation()
        for field in ("max_concurrent", "failure_threshold", "canary_size"):
            self.assertEqual(getattr(batch, field), getattr(default, field))
        self.assertEqual(response.data["display_state"], "running")
        # answered before the fan-out
        self.assertEqual(response.data["waves"], 0)
        self.assertEqual(self._detail(batch)["waves"], 1)

    def test_canary_tolerance_option(self):
        response = self._post_batch({"canary_size": 3, "canary_failure_tolerance": 2})
        self.assertEqual(response.status_code, 201, response.data)
        self.assertEqual(response.data["canary_failure_tolerance"], 2)
        batch = ModemBatchUpgradeOperation.objects.get(pk=response.data["id"])
        self.assertEqual(batch.canary_failure_tolerance, 2)
        # the case: a minimum of 10 behind a canary of 2 is fine,
        # the canary's own rule stops the batch before wave 2
        ModemBatchUpgradeOperation(
            build=self.build,
            organization=self.org_a,
            canary_size=2,
            failure_threshold_minimum=10,
        ).full_clean()

    def test_a_threshold_that_cannot_fire_before_wave_2_is_explained(self):
        response = self._post_batch({"wave_size": 2, "failure_threshold_minimum": 5})
        self.assertEqual(response.status_code, 400, response.data)
        message = str(response.data["failure_threshold_minimum"][0])
        self.assertIn("only 2 devices (wave 1) finish before wave 2", message)
        self.assertIn("at most 2", message)
        response = self._post_batch({"canary_size": 2, "canary_failure_tolerance": 3})
        self.assertIn(
            "could never stop the batch before wave 2",
            str(response.data["canary_failure_tolerance"][0]),
        )
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_dry_run_shows_the_waves(self):
        url = api_url("build_upgrade", self.build.pk)
        response = self.client.get(url, {"canary_size": 1, "wave_size": 3})
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.data["waves"], [1, 3, 1])
        response = self.client.get(url, {"canary_size": 150, "canary_percent": True})
        self.assertEqual(response.status_code, 400)
        self.assertIn("canary_size", response.data)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_invalid_rollout_options_change_nothing(self):
        now = timezone.now()
        for data, field in (
            ({"window_start": "22:00"}, "window_end"),
            ({"window_end": "05:00"}, "window_end"),
            ({"window_start": "05:00", "window_end": "05:00"}, "window_end"),
            ({"window_start": "25:00", "window_end": "05:00"}, "window_start"),
            ({"window_timezone": "Mars/Olympus"}, "window_timezone"),
            ({"window_timezone": " UTC"}, "window_timezone"),
            ({"canary_size": 101, "canary_percent": True}, "canary_size"),
            ({"failure_threshold": 101}, "failure_threshold"),
            ({"max_concurrent": 0}, "max_concurrent"),
            ({"canary_size": -1}, "canary_size"),
            ({"wave_size": "many"}, "wave_size"),
            (
                {
                    "scheduled_at": (now + timedelta(days=2)).isoformat(),
                    "deadline": (now + timedelta(days=1)).isoformat(),
                },
                "deadline",
            ),
            ({"deadline": (now - timedelta(minutes=1)).isoformat()}, "deadline"),
            ({"scheduled_at": "tomorrow"}, "scheduled_at"),
            # containment that could never fire before wave 2
            ({"canary_failure_tolerance": 1}, "canary_failure_tolerance"),
            (
                {"canary_size": 2, "canary_failure_tolerance": 2},
                "canary_failure_tolerance",
            ),
            (
                {"wave_size": 2, "failure_threshold_minimum": 10},
                "failure_threshold_minimum",
            ),
            (
                {
                    "wave_size": 2,
                    "failure_threshold": 3,
                    "failure_threshold_percent": False,
                },
                "failure_threshold",
            ),
        ):
            with self.subTest(data=data):
                response = self._post_batch(data)
                self.assertEqual(response.status_code, 400, response.data)
                self.assertIn(field, response.data)
                self.assertTrue(str(response.data[field][0]))
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def test_every_rollout_mistake_reported_at_once(self):
        now = timezone.now()
        response = self._post_batch(
            {
                "canary_size": 101,
                "canary_percent": True,
                "failure_threshold": 150,
                "window_start": "22:00",
                "deadline": (now - timedelta(minutes=1)).isoformat(),
                "device_ids": ["00000000-0000-0000-0000-000000000000"],
            }
        )
        self.assertEqual(response.status_code, 400, response.data)
        self.assertEqual(
            set(response.data),
            {
                "canary_size",
                "failure_threshold",
                "window_end",
                "deadline",
                "device_ids",
            },
        )
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_single_upgrade_scheduled(self):
        device = self.devices[0]
        url = api_url("device_modem_firmware", device.pk)
        start = timezone.now() + timedelta(hours=1)
        with self.captureOnCommitCallbacks(execute=True):
            response = self._json(
                "put",
                url,
                {
                    "image": str(self.image.pk),
                    "scheduled_at": start.isoformat(),
                    "window_start": "01:00",
                    "window_end": "04:00",
                    "window_timezone": "America/New_York",
                },
            )
        self.assertEqual(response.status_code, 200, response.data)
        operation = ModemUpgradeOperation.objects.get(
            pk=response.data["upgrade_operation"]
        )
        self.assertEqual(operation.scheduled_at, start)
        self.assertEqual(operation.window_timezone, "America/New_York")
        self.assertNotIn("scheduled_at", response.data)
        self.queued.assert_not_called()
        detail = self.client.get(api_url("upgrade_operation_detail", operation.pk))
        self.assertEqual(detail.data["window_timezone"], "America/New_York")
        self.assertEqual(detail.data["window_start"], "01:00:00")

    def test_single_upgrade_bad_schedule_changes_nothing(self):
        url = api_url("device_modem_firmware", self.devices[0].pk)
        now = timezone.now()
        for extra, field in (
            ({"window_start": "01:00"}, "window_end"),
            ({"window_timezone": "Nowhere"}, "window_timezone"),
            (
                {
                    "scheduled_at": (now + timedelta(hours=2)).isoformat(),
                    "deadline": (now + timedelta(hours=1)).isoformat(),
                },
                "deadline",
            ),
        ):
            with self.subTest(extra=extra):
                response = self._json(
                    "put", url, {"image": str(self.image.pk), **extra}
                )
                self.assertEqual(response.status_code, 400, response.data)
                self.assertIn(field, response.data)
        self.assertFalse(ModemUpgradeOperation.objects.exists())


class TestRolloutState(RolloutApiMixin, TestCase):
    def test_counts_waves_and_state(self):
        batch = self._canary_batch()
        data = self._detail(batch)
        # the canary alone is queued; the four others wait for their wave
        self.assertEqual(self.queued.call_count, 1)
        self.assertEqual(data["waves"], 3)
        self.assertEqual(data["current_wave"], 1)
        self.assertEqual(data["in_flight"], 1)
        self.assertEqual(data["waiting"], 4)
        self.assertEqual(data["rollout_state"], "running")
        self.assertEqual(data["display_state"], "running")
        self.assertEqual(data["status_counts"]["idle"], 5)
        listed = self.client.get(api_url("batch_upgrade_operation_list"))
        row = listed.data["results"][0]
        self.assertEqual((row["waves"], row["in_flight"], row["waiting"]), (3, 1, 4))

    def test_display_states(self):
        batch = self._canary_batch()
        now = timezone.now()
        Batch = ModemBatchUpgradeOperation.objects.filter(pk=batch.pk)
        Batch.update(scheduled_at=now + timedelta(hours=1))
        self.assertEqual(self._detail(batch)["display_state"], "scheduled")
        # a window that opens in an hour and closes in two
        local = now.astimezone(timezone.get_fixed_timezone(0))
        Batch.update(
            scheduled_at=None,
            window_start=(local + timedelta(hours=1)).time(),
            window_end=(local + timedelta(hours=2)).time(),
        )
        data = self._detail(batch)
        self.assertEqual(data["display_state"], "outside-window")
        self.assertEqual(data["display_state_label"], "outside its maintenance window")
        # a stop needs an operator: shown before the closed window
        Batch.update(rollout_state=RolloutState.STOPPED, rollout_reason="3 of 4 failed")
        data = self._detail(batch)
        self.assertEqual(data["display_state"], "stopped")
        self.assertEqual(data["rollout_reason"], "3 of 4 failed")
        Batch.update(status=OperationStatus.SUCCESS)
        self.assertEqual(self._detail(batch)["display_state"], "finished")
        filtered = self.client.get(
            api_url("batch_upgrade_operation_list"), {"rollout_state": "stopped"}
        )
        self.assertEqual(filtered.data["count"], 1)
        filtered = self.client.get(
            api_url("batch_upgrade_operation_list"), {"rollout_state": "paused"}
        )
        self.assertEqual(filtered.data["count"], 0)


class TestRolloutActions(RolloutApiMixin, TestCase):
    def test_pause_and_resume(self):
        batch = self._canary_batch(max_concurrent=2, canary_size=0, wave_size=0)
        self.assertEqual(self.queued.call_count, 2)
        for operation in batch.operations.filter(dispatched_at__isnull=False):
            finish_operation(operation.pk, OperationStatus.SUCCESS, "ok")
        response = self._action("pause", batch)
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.data["rollout_state"], "paused")
        self.assertEqual(response.data["display_state_label"], "paused by an operator")
        self.assertEqual(response.data["waiting"], 3)
        self.queued.reset_mock()
        self.assertEqual(dispatch(), 0)
        self.queued.assert_not_called()
        again = self._action("pause", batch)
        self.assertEqual(again.status_code, 409)
        self.assertIn("already paused", again.data["detail"])
        with mock.patch("openwisp_modem_upgrader.publish.dispatch_soon") as soon:
            response = self._action("resume", batch)
        self.assertEqual(response.status_code, 200, response.data)
        soon.assert_called_once_with()
        self.assertEqual(response.data["rollout_state"], "running")
        self.assertEqual(dispatch(), 2)
        again = self._action("resume", batch)
        self.assertEqual(again.status_code, 409)
        self.assertIn("already running", again.data["detail"])

    def test_resume_is_the_go_ahead_after_a_wave(self):
        batch = self._canary_batch(confirm_waves=True)
        canary = batch.operations.get(wave=1)
        finish_operation(canary.pk, OperationStatus.SUCCESS, "ok")
        dispatch()
        data = self._detail(batch)
        self.assertEqual(data["rollout_state"], "awaiting-go-ahead")
        self.assertIn("wave 1 finished", data["rollout_reason"])
        self.queued.reset_mock()
        response = self._action("resume", batch)
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.data["current_wave"], 2)
        self.assertEqual(response.data["rollout_state"], "running")
        # the second wave (2 devices) within the concurrency limit of 1
        self.assertEqual(self.queued.call_count, 1)

    def test_resume_after_an_automatic_stop(self):
        batch = self._canary_batch(failure_threshold=1, failure_threshold_percent=False)
        canary = batch.operations.get(wave=1)
        finish_operation(canary.pk, OperationStatus.FAILED, "bad image")
        data = self._detail(batch)
        self.assertEqual(data["rollout_state"], "stopped")
        self.assertIn("the canary wave failed", data["rollout_reason"])
        self.assertIn(f"{canary.device.name}, ", data["rollout_reason"])
        self.assertIn("bad image", data["rollout_reason"])
        response = self._action("resume", batch)
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.data["rollout_state"], "running")
        self.assertEqual(response.data["rollout_reason"], "")
        batch.refresh_from_db()
        self.assertEqual(batch.failures_acknowledged, 1)

    def test_actions_on_a_finished_batch(self):
        batch = self._canary_batch()
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(
            status=OperationStatus.CANCELLED
        )
        for name in ("pause", "resume"):
            with self.subTest(name=name):
                response = self._action(name, batch)
                self.assertEqual(response.status_code, 409)
                self.assertIn("finished", response.data["detail"])

    def test_retry_failed(self):
        batch = self._canary_batch(window_start="02:00", window_end="04:00")
        response = self._action("retry_failed", batch)
        self.assertEqual(response.status_code, 409)
        self.assertEqual(
            response.data["detail"], "No device of this mass upgrade failed."
        )
        self.assertEqual(ModemBatchUpgradeOperation.objects.count(), 1)
        canary = batch.operations.get(wave=1)
        finish_operation(canary.pk, OperationStatus.FAILED, "bad image")
        response = self._action("retry_failed", batch)
        self.assertEqual(response.status_code, 201, response.data)
        retry = ModemBatchUpgradeOperation.objects.get(pk=response.data["id"])
        self.assertNotEqual(retry.pk, batch.pk)
        self.assertEqual(retry.device_ids, [str(canary.device_id)])
        self.assertEqual(response.data["device_ids"], [str(canary.device_id)])
        # the retry names the mass upgrade it retries (read-only); the
        # original is no retry
        self.assertEqual(response.data["retry_of"], str(batch.pk))
        detail = self.client.get(
            api_url("batch_upgrade_operation_detail", retry.pk)
        ).data
        self.assertEqual(detail["retry_of"], str(batch.pk))
        original = self.client.get(api_url("batch_upgrade_operation_detail", batch.pk))
        self.assertIsNone(original.data["retry_of"])
        self.assertEqual((retry.canary_size, retry.max_concurrent), (1, 1))
        self.assertEqual(str(retry.window_start), "02:00:00")
        self.assertEqual(retry.operations.get().device_id, canary.device_id)
        # the failed device is being retried: nothing more to start
        response = self._action("retry_failed", batch)
        self.assertEqual(response.status_code, 409)
        self.assertIn("No device can be upgraded", response.data["detail"])
        self.assertEqual(ModemBatchUpgradeOperation.objects.count(), 2)

    def test_permissions(self):
        batch = self._canary_batch()
        other = self._manager(self.org_b, username="manager_b")
        operator = self._create_operator(organizations=[self.org_a])
        for user, expected in ((other, 404), (operator, 403)):
            self._login(user)
            for name in ("pause", "resume", "retry_failed"):
                with self.subTest(user=user.username, name=name):
                    response = self._action(name, batch)
                    self.assertEqual(response.status_code, expected)
        self.client.logout()
        self.assertEqual(self._action("pause", batch).status_code, 401)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.RUNNING)
        self.assertEqual(ModemBatchUpgradeOperation.objects.count(), 1)
