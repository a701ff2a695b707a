"""Rollout controls and the scheduler, with the clock given explicitly.

The scheduler takes ``now`` as an argument everywhere, so schedules and
windows are tested at exact instants; publishing is recorded, not sent, and
workers are played by ``mark_in_progress`` / ``finish_operation``.
"""

from datetime import datetime, time, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.test import TestCase
from django.utils import timezone

from .. import settings as app_settings
from ..base.models import OperationStatus
from ..base.rollout import RolloutState
from ..batch import retry_failed, start_batch
from ..exceptions import UpgradeNotAllowed
from ..rollout import pause_batch, resume_batch, wave_numbers
from ..scheduler import dispatch, drive, in_flight
from ..signals import modem_batch_stopped
from ..upgrade import finish_operation, mark_in_progress, start_upgrade
from . import ModemBatchUpgradeOperation, ModemUpgradeOperation, TestModemUpgraderMixin

PUBLISH = "openwisp_modem_upgrader.scheduler.publish_upgrade"
ROME = ZoneInfo("Europe/Rome")


class RolloutTestMixin(TestModemUpgraderMixin):
    def setUp(self):
        super().setUp()
        patcher = mock.patch(PUBLISH)
        self.publish = patcher.start()
        self.addCleanup(patcher.stop)
        self.image = self._create_image()

    def _devices(self, count):
        return [
            self._create_modem_device(
                name=f"router-{i:04d}", mac_address=f"00:11:22:33:44:{i:02x}"
            )
            for i in range(count)
        ]

    def _batch(self, devices, **rollout):
        batch = ModemBatchUpgradeOperation(
            build=self.image.build,
            organization=self._get_org(),
            device_ids=[str(d.pk) for d in devices],
            **rollout,
        )
        batch.full_clean()
        batch.save()
        with self.captureOnCommitCallbacks(execute=False):
            start_batch(batch)
        batch.refresh_from_db()
        return batch

    def published(self):
        """Ids published since the last call, in order."""
        ids = [call.args[0] for call in self.publish.call_args_list]
        self.publish.reset_mock()
        return ids

    def run_workers(self, operation_ids):
        """Every published operation is taken by a worker."""
        for pk in operation_ids:
            self.assertTrue(mark_in_progress(pk))

    def finish(self, operation_ids, status=OperationStatus.SUCCESS):
        for pk in operation_ids:
            with self.captureOnCommitCallbacks(execute=False):
                self.assertTrue(finish_operation(pk, status, "done"))

    def assert_never_more_than(self, limit, operations):
        """The peak of overlapping [started_at, finished_at] intervals."""
        events = []
        for started, finished in operations.values_list("started_at", "finished_at"):
            if started:
                events += [(started, 1), (finished or timezone.now(), -1)]
        peak = current = 0
        for _, change in sorted(events, key=lambda e: (e[0], e[1])):
            current += change
            peak = max(peak, current)
        self.assertLessEqual(peak, limit)
        return peak


class TestConcurrency(RolloutTestMixin, TestCase):
    def test_batch_limit_never_exceeded(self):
        batch = self._batch(self._devices(12), max_concurrent=3)
        self.assertEqual(dispatch(), 3)
        # only K messages are queued at once: nothing more until one ends
        self.assertEqual(dispatch(), 0)
        started = self.published()
        self.run_workers(started)
        done = 0
        while done < 12:
            self.finish(started[:1])
            done += 1
            started = started[1:]
            dispatch()
            new = self.published()
            self.assertLessEqual(len(new), 1)
            self.run_workers(new)
            started += new
            self.assertLessEqual(in_flight(batch.operations.all()).count(), 3)
        peak = self.assert_never_more_than(3, batch.operations.all())
        self.assertEqual(peak, 3)
        self.assertEqual(
            batch.operations.filter(status=OperationStatus.SUCCESS).count(), 12
        )

    def test_installation_wide_limit(self):
        first = self._batch(self._devices(2), max_concurrent=10)
        second = self._batch(self._more_devices(3), max_concurrent=10)
        with mock.patch("openwisp_modem_upgrader.settings.MAX_CONCURRENT_UPGRADES", 3):
            self.assertEqual(dispatch(), 3)
            self.assertEqual(dispatch(), 0)
        operations = ModemUpgradeOperation.objects.filter(batch__in=[first, second])
        self.assertEqual(in_flight(operations).count(), 3)

    def _more_devices(self, count):
        return [
            self._create_modem_device(
                name=f"other-{i}", mac_address=f"00:11:22:33:55:{i:02x}"
            )
            for i in range(count)
        ]

    def test_single_upgrades_start_first_and_count(self):
        devices = self._devices(3)
        batch = self._batch(devices[:2], max_concurrent=10)
        with self.captureOnCommitCallbacks(execute=False):
            single = start_upgrade(devices[2], self.image)
        with mock.patch("openwisp_modem_upgrader.settings.MAX_CONCURRENT_UPGRADES", 2):
            self.assertEqual(dispatch(), 2)
        published = self.published()
        self.assertEqual(published[0], str(single.pk))
        self.assertEqual(in_flight(batch.operations.all()).count(), 1)


class TestWaves(RolloutTestMixin, TestCase):
    def test_wave_numbers(self):
        batch = ModemBatchUpgradeOperation(canary_size=2, wave_size=3)
        self.assertEqual(wave_numbers(batch, 10), [1, 1, 2, 2, 2, 3, 3, 3, 4, 4])
        batch = ModemBatchUpgradeOperation(canary_size=10, canary_percent=True)
        self.assertEqual(wave_numbers(batch, 25), [1] * 3 + [2] * 22)
        batch = ModemBatchUpgradeOperation(canary_size=1, canary_percent=True)
        self.assertEqual(wave_numbers(batch, 5), [1, 2, 2, 2, 2])
        self.assertEqual(wave_numbers(ModemBatchUpgradeOperation(), 3), [1, 1, 1])

    def test_canary_then_next_wave_automatically(self):
        batch = self._batch(
            self._devices(6), canary_size=2, wave_size=2, max_concurrent=10
        )
        self.assertEqual(dispatch(), 2)  # the canary only
        canary = self.published()
        self.assertEqual(
            set(canary),
            {
                str(pk)
                for pk in batch.operations.filter(wave=1).values_list("pk", flat=True)
            },
        )
        self.run_workers(canary)
        self.finish(canary[:1])
        self.assertEqual(dispatch(), 0)  # the wave is not over
        self.finish(canary[1:])
        self.assertEqual(dispatch(), 2)
        batch.refresh_from_db()
        self.assertEqual(batch.current_wave, 2)

    def test_go_ahead_between_waves(self):
        batch = self._batch(
            self._devices(4), canary_size=1, confirm_waves=True, max_concurrent=10
        )
        self.assertEqual(dispatch(), 1)
        canary = self.published()
        self.run_workers(canary)
        self.finish(canary)
        self.assertEqual(dispatch(), 0)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.AWAITING)
        self.assertIn("wave 1 finished", batch.rollout_reason)
        with self.captureOnCommitCallbacks(execute=False):
            resume_batch(batch)
        self.assertEqual(batch.current_wave, 2)
        self.assertEqual(dispatch(), 3)


class TestAutomaticStop(RolloutTestMixin, TestCase):
    def test_count_threshold_stops_at_the_right_device(self):
        received = []
        modem_batch_stopped.connect(
            lambda **kw: received.append(kw["reason"]), weak=False, dispatch_uid="t"
        )
        self.addCleanup(modem_batch_stopped.disconnect, dispatch_uid="t")
        batch = self._batch(
            self._devices(8),
            max_concurrent=1,
            failure_threshold=2,
            failure_threshold_percent=False,
        )
        outcomes = [OperationStatus.SUCCESS, OperationStatus.FAILED]
        outcomes += [OperationStatus.ABORTED]
        order = []
        dispatch()
        for status in outcomes:
            # the first by the dispatch above, then each by the end of the
            # previous one (its commit asks for a dispatch)
            (pk,) = self.published()
            order.append(pk)
            self.run_workers([pk])
            with self.captureOnCommitCallbacks(execute=True):
                finish_operation(pk, status, "done")
        batch.refresh_from_db()
        # stopped by the second failure (the third device): nothing more starts
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertIn("2 of 3 finished devices failed", batch.rollout_reason)
        self.assertEqual(len(received), 1)
        self.assertEqual(self.published(), [])
        self.assertEqual(dispatch(), 0)
        self.assertEqual(batch.status, OperationStatus.IN_PROGRESS)
        self.assertEqual(
            batch.operations.filter(
                status=OperationStatus.IDLE, dispatched_at__isnull=True
            ).count(),
            5,
        )
        # the operator resumes: the failures so far are acknowledged
        with self.captureOnCommitCallbacks(execute=False):
            resume_batch(batch)
        self.assertEqual(batch.failures_acknowledged, 2)
        self.assertEqual(dispatch(), 1)

    def test_percent_threshold_waits_for_the_minimum(self):
        batch = self._batch(
            self._devices(6),
            max_concurrent=6,
            failure_threshold=50,
            failure_threshold_minimum=4,
        )
        self.assertEqual(dispatch(), 6)
        ids = self.published()
        self.run_workers(ids)
        self.finish(ids[:2], OperationStatus.FAILED)
        batch.refresh_from_db()
        # 100 % failed but only 2 finished: not yet
        self.assertEqual(batch.rollout_state, RolloutState.RUNNING)
        self.finish(ids[2:4])
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)

    def test_default_threshold_is_on(self):
        batch = self._batch(self._devices(1))
        self.assertEqual(batch.failure_threshold, 20)
        self.assertTrue(batch.failure_threshold_percent)


class TestPauseResume(RolloutTestMixin, TestCase):
    def test_pause_stops_starts_not_running_ones(self):
        batch = self._batch(self._devices(4), max_concurrent=2)
        self.assertEqual(dispatch(), 2)
        running = self.published()
        self.run_workers(running)
        pause_batch(batch)
        self.assertEqual(batch.rollout_state, RolloutState.PAUSED)
        self.finish(running)
        self.assertEqual(dispatch(), 0)
        with self.assertRaises(UpgradeNotAllowed):
            pause_batch(batch)
        with self.captureOnCommitCallbacks(execute=False):
            resume_batch(batch)
        self.assertEqual(dispatch(), 2)
        with self.assertRaises(UpgradeNotAllowed):
            resume_batch(batch)

    def test_retry_failed_devices_as_a_new_batch(self):
        devices = self._devices(3)
        batch = self._batch(devices, max_concurrent=3, canary_size=0)
        dispatch()
        ids = self.published()
        self.run_workers(ids)
        self.finish(ids[:1], OperationStatus.FAILED)
        self.finish(ids[1:])
        failed_device = ModemUpgradeOperation.objects.get(pk=ids[0]).device_id
        with self.captureOnCommitCallbacks(execute=False):
            retry = retry_failed(batch)
        self.assertEqual(retry.device_ids, [str(failed_device)])
        self.assertEqual(retry.max_concurrent, 3)
        # nothing failed in the retry yet: refused with the reason
        with self.assertRaises(UpgradeNotAllowed):
            retry_failed(retry)


class TestSchedule(RolloutTestMixin, TestCase):
    def test_start_time(self):
        start = timezone.now() + timedelta(hours=2)
        self._batch(self._devices(2), scheduled_at=start)
        self.assertEqual(dispatch(now=start - timedelta(seconds=1)), 0)
        self.assertEqual(dispatch(now=start), 2)

    def test_single_upgrade_start_time(self):
        (device,) = self._devices(1)
        start = timezone.now() + timedelta(hours=1)
        with self.captureOnCommitCallbacks(execute=False):
            start_upgrade(device, self.image, scheduled_at=start)
        self.assertEqual(dispatch(now=start - timedelta(minutes=1)), 0)
        self.assertEqual(dispatch(now=start), 1)

    # start times not spread here: test_start_spread
    @mock.patch.object(app_settings, "START_SPREAD", 0)
    def test_window_across_midnight_in_a_time_zone(self):
        batch = self._batch(
            self._devices(3),
            max_concurrent=1,
            window_start=time(22, 0),
            window_end=time(4, 0),
            window_timezone="Europe/Rome",
        )
        day = datetime(2026, 12, 1, tzinfo=ROME)
        self.assertEqual(dispatch(now=day.replace(hour=21, minute=59)), 0)
        self.assertEqual(dispatch(now=day.replace(hour=22)), 1)
        (first,) = self.published()
        self.run_workers([first])
        self.finish([first])
        self.assertEqual(dispatch(now=day.replace(hour=23, minute=30)), 1)
        second = self.published()
        self.run_workers(second)
        self.finish(second)
        # the window closed at 04:00 Rome time: the last device waits
        next_day = day + timedelta(days=1)
        self.assertEqual(dispatch(now=next_day.replace(hour=4)), 0)
        self.assertEqual(dispatch(now=next_day.replace(hour=3, minute=59)), 1)
        # what the batch page says while it waits (admin.batch.start_hint)
        self.assertEqual(
            batch.next_window_opening(next_day.replace(hour=12)),
            next_day.replace(hour=22),
        )

    def test_deadline_expires_waiting_devices(self):
        deadline = timezone.now() + timedelta(minutes=5)
        batch = self._batch(self._devices(3), max_concurrent=1, deadline=deadline)
        dispatch()
        running = self.published()
        self.run_workers(running)
        # one waiting device waits for a retry's backoff: it expires too
        backing_off = batch.operations.filter(status=OperationStatus.IDLE).first()
        ModemUpgradeOperation.objects.filter(pk=backing_off.pk).update(
            not_before=deadline + timedelta(hours=1)
        )
        with mock.patch("openwisp_modem_upgrader.scheduler.follow_due", return_value=0):
            result = drive(now=deadline + timedelta(seconds=1))
        self.assertEqual(result["expired"], 2)
        expired = batch.operations.filter(status=OperationStatus.FAILED)
        self.assertEqual(expired.count(), 2)
        self.assertIn("not started before the deadline", expired.first().log)
        # the one running is not touched by the deadline
        self.assertEqual(
            ModemUpgradeOperation.objects.get(pk=running[0]).status,
            OperationStatus.IN_PROGRESS,
        )

    def test_schedule_validation(self):
        for fields, field in (
            ({"window_start": time(1)}, "window_end"),
            ({"window_start": time(1), "window_end": time(1)}, "window_end"),
            ({"window_timezone": "Mars/Olympus"}, "window_timezone"),
            ({"canary_size": 101, "canary_percent": True}, "canary_size"),
            ({"failure_threshold": 150}, "failure_threshold"),
            (
                {
                    "scheduled_at": timezone.now(),
                    "deadline": timezone.now() - timedelta(hours=1),
                },
                "deadline",
            ),
        ):
            batch = ModemBatchUpgradeOperation(
                build=self.image.build, organization=self._get_org(), **fields
            )
            with self.subTest(fields=fields), self.assertRaises(ValidationError) as ctx:
                batch.full_clean()
            self.assertIn(field, ctx.exception.message_dict)


class TestDispatchLock(RolloutTestMixin, TestCase):
    def test_one_dispatcher_at_a_time_and_a_dead_ones_lock_expires(self):
        from django.core.cache import cache

        from ..scheduler import LOCK_KEY, LOCK_TIMEOUT

        self._batch(self._devices(2), max_concurrent=5)
        # a dispatcher holds the lock (or died holding it): no second one
        cache.add(LOCK_KEY, "someone", timeout=LOCK_TIMEOUT)
        self.assertEqual(dispatch(), 0)
        self.assertEqual(self.published(), [])
        self.assertLessEqual(LOCK_TIMEOUT, 30)
        # its lock expires (as a killed worker's does): dispatching resumes,
        # and a dispatcher only ever releases its own lock
        cache.delete(LOCK_KEY)
        self.assertEqual(dispatch(), 2)
        self.assertIsNone(cache.get(LOCK_KEY))
