"""The follow-up lease: one follow-up reads a flashing router at a time,
whatever the router reports meanwhile (issue 18: a success report used to
reset the lease, and two follow-ups read the same operation at once)."""

import threading
from datetime import timedelta
from unittest import mock

from django.db import connection
from django.test import TestCase, TransactionTestCase, skipUnlessDBFeature
from django.utils import timezone

from .. import settings as app_settings
from ..base.models import OperationStatus
from ..engine import follow_operation
from ..scheduler import follow_due
from ..upgrade import finish_operation, follow_now, mark_flash_started, mark_in_progress
from ..upgraders.wrapper import WrapperUpgrader
from . import TestModemUpgraderMixin

PUBLISH_FOLLOW = "openwisp_modem_upgrader.scheduler.publish_follow"


class FlashingOperationMixin(TestModemUpgraderMixin):
    def setUp(self):
        super().setUp()
        from ..upgrade import start_upgrade

        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            self.operation = start_upgrade(
                self._create_modem_device(), self._create_image()
            )
        mark_in_progress(self.operation.pk)
        mark_flash_started(self.operation.pk, outcome_timeout=3600)
        patcher = mock.patch(PUBLISH_FOLLOW)
        self.publish_follow = patcher.start()
        self.addCleanup(patcher.stop)
        patcher = mock.patch("openwisp_modem_upgrader.engine._get_connection")
        patcher.start()
        self.addCleanup(patcher.stop)

    def due(self):
        """A moment past the grace after the point of no return."""
        return timezone.now() + timedelta(seconds=app_settings.FOLLOW_START_GRACE + 1)

    def leases(self):
        return [call.args[1] for call in self.publish_follow.call_args_list]

    def follow(self, lease, poll=None):
        with mock.patch.object(
            WrapperUpgrader, "poll", side_effect=poll or (lambda image: None)
        ) as polled:
            follow_operation(self.operation.pk, lease=lease.isoformat())
        return polled.call_count

    def reload(self):
        self.operation.refresh_from_db()
        return self.operation


class TestFollowLease(FlashingOperationMixin, TestCase):
    def test_report_during_a_held_lease_starts_no_second_follow_up(self):
        now = self.due()
        self.assertEqual(follow_due(now), 1)
        (lease,) = self.leases()
        # the router reports success while that follow-up holds the lease
        follow_now(self.operation.pk)
        for seconds in (0, 1, 60):
            self.assertEqual(follow_due(now + timedelta(seconds=seconds)), 0)
        self.assertEqual(len(self.leases()), 1)
        self.assertEqual(self.reload().follow_lease_until, lease)

    def test_failure_report_during_a_held_lease_waits_for_it(self):
        now = self.due()
        follow_due(now)
        (lease,) = self.leases()
        # a failure report finishes the operation and asks for a clean-up
        finish_operation(
            self.operation.pk, OperationStatus.FAILED, "router says no", clean_up=True
        )
        self.assertEqual(follow_due(timezone.now() + timedelta(seconds=1)), 0)
        # the held follow-up finds it finished and tidies the router, once
        with mock.patch.object(WrapperUpgrader, "clean_up") as clean_up:
            self.assertEqual(self.follow(lease), 0)  # nothing polled
        self.assertEqual(clean_up.call_count, 1)
        operation = self.reload()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIsNone(operation.follow_lease_until)
        self.assertIsNone(operation.next_check_at)
        self.assertEqual(follow_due(timezone.now() + timedelta(seconds=1)), 0)

    def test_early_read_asked_during_the_lease_is_kept(self):
        now = self.due()
        follow_due(now)
        (lease,) = self.leases()

        def report_while_reading(image):
            # the router's success report arrives during this read; a driver
            # pass meanwhile starts nothing
            follow_now(self.operation.pk)
            self.assertEqual(follow_due(timezone.now() + timedelta(seconds=1)), 0)
            return None  # this read still saw the flash running

        self.assertEqual(self.follow(lease, report_while_reading), 1)
        operation = self.reload()
        self.assertIsNone(operation.follow_lease_until)
        # read again at the next pass, not FOLLOW_INTERVAL later
        self.assertLessEqual(operation.next_check_at, timezone.now())
        self.assertEqual(follow_due(timezone.now()), 1)

    def test_without_report_next_read_after_the_interval(self):
        now = self.due()
        follow_due(now)
        (lease,) = self.leases()
        with mock.patch.object(app_settings, "FOLLOW_INTERVAL", 30):
            self.follow(lease)
        operation = self.reload()
        self.assertIsNone(operation.follow_lease_until)
        self.assertGreater(operation.next_check_at, timezone.now())
        self.assertEqual(follow_due(timezone.now()), 0)
        self.assertEqual(follow_due(timezone.now() + timedelta(seconds=31)), 1)

    def test_follow_up_past_its_lease_reads_nothing(self):
        now = self.due()
        follow_due(now)
        (stale,) = self.leases()
        # its message waited past the lease: the driver leased it again
        later = stale + timedelta(seconds=1)
        self.assertEqual(follow_due(later), 1)
        current = self.leases()[1]
        self.assertEqual(self.follow(stale), 0)
        self.assertEqual(self.reload().follow_lease_until, current)
        self.assertEqual(self.follow(current), 1)

    def test_dead_follow_up_is_retried_when_its_lease_ends(self):
        now = self.due()
        follow_due(now)
        (lease,) = self.leases()
        self.assertEqual(follow_due(lease - timedelta(seconds=1)), 0)
        self.assertEqual(follow_due(lease), 1)


@skipUnlessDBFeature("has_select_for_update")
class TestFollowUpsRacing(FlashingOperationMixin, TransactionTestCase):
    """Two drivers and two follow-ups at once, on a database with real
    concurrent transactions (PostgreSQL in CI)."""

    def test_two_drivers_lease_once(self):
        now = self.due()
        barrier = threading.Barrier(2)
        results = []

        def driver(offset):
            try:
                barrier.wait(timeout=30)
                results.append(follow_due(now + timedelta(microseconds=offset)))
            finally:
                connection.close()

        threads = [threading.Thread(target=driver, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        self.assertEqual(sorted(results), [0, 1])
        self.assertEqual(self.publish_follow.call_count, 1)

    def test_two_follow_ups_never_read_at_once(self):
        now = self.due()
        follow_due(now)
        (stale,) = self.leases()
        follow_due(stale + timedelta(seconds=1))
        current = self.leases()[1]
        reading = threading.Semaphore(1)
        overlaps = []
        polls = []

        def poll(image):
            if not reading.acquire(blocking=False):
                overlaps.append(1)
            polls.append(1)
            try:
                # a report arrives meanwhile: no further follow-up starts
                follow_now(self.operation.pk)
                follow_due(timezone.now() + timedelta(seconds=1))
            finally:
                reading.release()

        def run(lease):
            try:
                follow_operation(self.operation.pk, lease=lease.isoformat())
            finally:
                connection.close()

        with mock.patch.object(WrapperUpgrader, "poll", side_effect=poll):
            threads = [
                threading.Thread(target=run, args=(lease,))
                for lease in (stale, current)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        self.assertEqual((len(polls), len(overlaps)), (1, 0))
        self.assertEqual(self.publish_follow.call_count, 2)
