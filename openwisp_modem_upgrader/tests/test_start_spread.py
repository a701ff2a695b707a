"""Start times spread inside a maintenance window (``start_spread.py``):
each device a random start, bounded by the window, the deadline and
``START_SPREAD``; nothing spread without a window."""

from datetime import datetime, time, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

from django.test import TestCase

from .. import settings as app_settings
from ..scheduler import dispatch
from ..upgrade import start_upgrade
from . import ModemUpgradeOperation
from .test_rollout import RolloutTestMixin

ROME = ZoneInfo("Europe/Rome")
UTC = ZoneInfo("UTC")


class TestStartSpread(RolloutTestMixin, TestCase):
    def starts(self, batch):
        starts = ModemUpgradeOperation.objects.filter(batch=batch).values_list(
            "not_before", flat=True
        )
        return sorted(starts, key=lambda start: (start is not None, start))

    @mock.patch.object(app_settings, "START_SPREAD", 7200)
    def test_offsets_within_the_window(self):
        batch = self._batch(
            self._devices(20),
            max_concurrent=50,
            window_start=time(1, 0),
            window_end=time(2, 0),
        )
        opening = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
        dispatch(now=opening)
        starts = self.starts(batch)
        self.assertEqual(len(starts), 20)
        self.assertTrue(
            all(opening <= s < opening + timedelta(hours=1) for s in starts)
        )
        # spread, not one instant: 20 draws over an hour
        self.assertGreater(starts[-1] - starts[0], timedelta(minutes=10))
        self.assertEqual(len(set(starts)), 20)
        # each device starts once its own time has come, not before
        middle = starts[9]
        self.assertEqual(dispatch(now=middle), 10)
        self.assertEqual(dispatch(now=opening + timedelta(minutes=59, seconds=59)), 10)
        # the times were given once: the same at later passes
        self.assertEqual(self.starts(batch), starts)

    @mock.patch.object(app_settings, "START_SPREAD", 600)
    def test_offsets_bounded_by_the_setting(self):
        batch = self._batch(
            self._devices(10), window_start=time(1, 0), window_end=time(5, 0)
        )
        opening = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
        dispatch(now=opening)
        starts = self.starts(batch)
        self.assertTrue(
            all(opening <= s <= opening + timedelta(minutes=10) for s in starts)
        )

    @mock.patch.object(app_settings, "START_SPREAD", 7200)
    def test_window_across_midnight(self):
        batch = self._batch(
            self._devices(10),
            window_start=time(23, 30),
            window_end=time(0, 30),
            window_timezone="Europe/Rome",
        )
        # ten minutes after midnight, Rome time: twenty minutes are left
        now = datetime(2026, 12, 2, 0, 10, tzinfo=ROME)
        dispatch(now=now)
        closes = datetime(2026, 12, 2, 0, 30, tzinfo=ROME)
        starts = self.starts(batch)
        self.assertEqual(len(starts), 10)
        self.assertTrue(all(now <= s < closes for s in starts), starts)
        self.assertTrue(all(batch.window_is_open(s) for s in starts))

    @mock.patch.object(app_settings, "START_SPREAD", 7200)
    def test_window_across_midnight_before_midnight(self):
        batch = self._batch(
            self._devices(10),
            window_start=time(23, 30),
            window_end=time(0, 30),
            window_timezone="Europe/Rome",
        )
        now = datetime(2026, 12, 1, 23, 45, tzinfo=ROME)
        dispatch(now=now)
        closes = datetime(2026, 12, 2, 0, 30, tzinfo=ROME)
        starts = self.starts(batch)
        self.assertTrue(all(now <= s < closes for s in starts), starts)
        # across midnight: some after it, with 45 minutes to draw from
        self.assertGreater(starts[-1] - starts[0], timedelta(minutes=5))

    @mock.patch.object(app_settings, "START_SPREAD", 7200)
    def test_offsets_bounded_by_the_deadline(self):
        opening = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
        deadline = opening + timedelta(minutes=5)
        batch = self._batch(
            self._devices(10),
            window_start=time(1, 0),
            window_end=time(2, 0),
            deadline=deadline,
        )
        dispatch(now=opening)
        self.assertTrue(all(opening <= s <= deadline for s in self.starts(batch)))

    @mock.patch.object(app_settings, "START_SPREAD", 7200)
    def test_nothing_spread_without_a_window(self):
        batch = self._batch(self._devices(5), max_concurrent=50)
        self.assertEqual(dispatch(), 5)
        self.assertEqual(self.starts(batch), [None] * 5)

    @mock.patch.object(app_settings, "START_SPREAD", 7200)
    def test_devices_left_waiting_spread_again_at_the_next_opening(self):
        batch = self._batch(
            self._devices(5),
            max_concurrent=50,
            window_start=time(1, 0),
            window_end=time(2, 0),
        )
        opening = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
        dispatch(now=opening)
        # nothing started that night (e.g. paused, then resumed next day)
        next_opening = opening + timedelta(days=1)
        dispatch(now=next_opening)
        starts = self.starts(batch)
        self.assertTrue(
            all(next_opening <= s < next_opening + timedelta(hours=1) for s in starts),
            starts,
        )

    @mock.patch.object(app_settings, "START_SPREAD", 7200)
    def test_single_upgrade_in_a_window(self):
        (device,) = self._devices(1)
        with self.captureOnCommitCallbacks(execute=False):
            operation = start_upgrade(
                device, self.image, window_start=time(1, 0), window_end=time(2, 0)
            )
        opening = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
        self.assertEqual(dispatch(now=opening), 0)
        operation.refresh_from_db()
        self.assertTrue(opening < operation.not_before < opening + timedelta(hours=1))
        self.assertEqual(dispatch(now=operation.not_before), 1)

    @mock.patch.object(app_settings, "START_SPREAD", 0)
    def test_spread_off(self):
        batch = self._batch(
            self._devices(3),
            max_concurrent=50,
            window_start=time(1, 0),
            window_end=time(2, 0),
        )
        self.assertEqual(dispatch(now=datetime(2026, 12, 1, 1, 0, tzinfo=UTC)), 3)
        self.assertEqual(self.starts(batch), [None] * 3)
