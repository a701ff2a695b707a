"""Containment is a rule of dispatch (issue 18): every path that starts a
device of a batch (the dispatcher, a resume, a go-ahead, a retry batch, a
worker taking a queued device) decides under the batch's lock, after
counting its failures; a failure and the stop it causes are committed
together, before any dispatch is asked for. The canary must succeed as a
whole."""

import threading
import unittest
from contextlib import contextmanager
from unittest import mock

from django.db import connection, connections, transaction
from django.test import TestCase, TransactionTestCase

from ..base.models import OperationStatus
from ..base.rollout import RolloutState
from ..batch import retry_failed
from ..rollout import pause_batch, resume_batch
from ..scheduler import dispatch, in_flight
from ..upgrade import finish_operation, mark_in_progress
from . import ModemBatchUpgradeOperation, ModemUpgradeOperation
from .test_rollout import RolloutTestMixin

# a router's journal as the log holds it when uxfp refused the image
BAD_IMAGE_LOG = [
    "attempt 1 of 3",
    "transferring 65792 bytes to the router",
    "firmware transferred",
    "starting the flashing wrapper on the router (no cancel from now)",
    "operation 1 started (pid 7) on device ? for FN990A28 M0R.010300-B031",
    "sha256 verified",
    "running uxfp --file /tmp/x.bin --port /dev/ttyUSB0",
    "[-] stream software version 44.00.010-B031-P0R.001600 is not for this chipset",
    "[+] could not complete firmware upload",
    "uxfp failed with exit status 1; waiting up to 10s to see the modem's state",
    "uxfp failed with exit status 1; modem is back in normal mode",
]
CHIPSET = "stream software version 44.00.010-B031-P0R.001600 is not for this chipset"


class ContainmentMixin(RolloutTestMixin):
    def fail_with_bad_image(self, pk, execute=True):
        """The router's failure: its journal, then the finish (whose commit
        asks for a dispatch when ``execute``)."""
        from ..upgrade import record_progress

        record_progress(pk, message="\n".join(BAD_IMAGE_LOG))
        with self.captureOnCommitCallbacks(execute=execute):
            self.assertTrue(
                finish_operation(
                    pk, OperationStatus.FAILED, "failure reported by the router"
                )
            )

    def started(self, batch):
        """Devices of the batch a worker started (past ``mark_in_progress``)."""
        return batch.operations.filter(started_at__isnull=False).count()

    def wave_started(self, batch, wave):
        return batch.operations.filter(wave=wave, started_at__isnull=False).count()

    def _canary_running(self):
        batch = self._batch(
            self._devices(8),
            canary_size=2,
            max_concurrent=5,
            failure_threshold=20,
            failure_threshold_minimum=2,
        )
        dispatch()
        canary = self.published()
        self.run_workers(canary)
        return batch, canary


class TestCanary(ContainmentMixin, TestCase):
    def test_a_canary_failure_stops_before_wave_2(self):
        # the set-up: a minimum the canary can never reach
        batch = self._batch(
            self._devices(8), canary_size=2, max_concurrent=5, failure_threshold=20
        )
        self.assertEqual(batch.failure_threshold_minimum, 10)
        self.assertEqual(dispatch(), 2)
        canary = self.published()
        self.run_workers(canary)
        self.fail_with_bad_image(canary[0])
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertIn(
            "the canary wave failed (1 failed, 0 tolerated)", batch.rollout_reason
        )
        # the other canary device goes on (it was flashing), then nothing
        self.finish(canary[1:])
        self.assertEqual(dispatch(), 0)
        self.assertEqual(self.published(), [])
        self.assertEqual(self.wave_started(batch, 2), 0)

    def test_the_canary_tolerance(self):
        batch = self._batch(
            self._devices(8),
            canary_size=3,
            canary_failure_tolerance=1,
            max_concurrent=5,
            failure_threshold=0,
        )
        dispatch()
        canary = self.published()
        self.run_workers(canary)
        self.fail_with_bad_image(canary[0])
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.RUNNING)
        self.fail_with_bad_image(canary[1])
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertIn("(2 failed, 1 tolerated)", batch.rollout_reason)

    def test_a_tolerated_canary_failure_opens_wave_2(self):
        batch = self._batch(
            self._devices(6),
            canary_size=2,
            canary_failure_tolerance=1,
            max_concurrent=5,
            failure_threshold=0,
        )
        dispatch()
        canary = self.published()
        self.run_workers(canary)
        self.fail_with_bad_image(canary[0], execute=False)
        self.finish(canary[1:])
        self.assertEqual(dispatch(), 4)
        batch.refresh_from_db()
        self.assertEqual(
            (batch.current_wave, batch.rollout_state), (2, RolloutState.RUNNING)
        )


class TestEveryPathThatStartsADevice(ContainmentMixin, TestCase):
    def _uncounted_failures(self, operation_ids):
        """Failures written behind the engine's back (as a concurrent finish
        not committed yet when a stop check ran would leave them): the
        paths that start devices must count them themselves."""
        ModemUpgradeOperation.objects.filter(pk__in=operation_ids).update(
            status=OperationStatus.FAILED, log="\n".join(BAD_IMAGE_LOG) + "\n"
        )

    def test_dispatcher_counts_failures_before_starting(self):
        batch = self._batch(
            self._devices(6),
            max_concurrent=2,
            failure_threshold=1,
            failure_threshold_percent=False,
        )
        dispatch()
        first = self.published()
        self.run_workers(first)
        self._uncounted_failures(first[:1])
        ModemUpgradeOperation.objects.filter(pk=first[1]).update(
            status=OperationStatus.SUCCESS
        )
        self.assertEqual(dispatch(), 0)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        # the stop names the failure that reached it, with the tool's reason
        failed = ModemUpgradeOperation.objects.get(pk=first[0]).device.name
        self.assertIn(f"last failure: {failed}, ", batch.rollout_reason)
        self.assertIn(f"flash (uxfp): {CHIPSET}"[:60], batch.rollout_reason)
        self.assertEqual(self.started(batch), 2)

    def test_resume_after_a_pause_counts_failures_first(self):
        batch = self._batch(
            self._devices(6),
            max_concurrent=2,
            failure_threshold=50,
            failure_threshold_minimum=2,
        )
        dispatch()
        running = self.published()
        self.run_workers(running)
        pause_batch(batch)
        # both fail while paused: a paused batch is not stopped
        for pk in running:
            self.fail_with_bad_image(pk, execute=False)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.PAUSED)
        with self.captureOnCommitCallbacks(execute=True):
            resume_batch(batch)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertIn("2 of 2 finished devices failed", batch.rollout_reason)
        self.assertEqual(self.published(), [])
        self.assertEqual(self.started(batch), 2)

    def test_resume_after_a_stop_starts_again_and_stops_again(self):
        batch = self._batch(
            self._devices(8),
            canary_size=1,
            max_concurrent=2,
            failure_threshold=1,
            failure_threshold_percent=False,
        )
        dispatch()
        canary = self.published()
        self.run_workers(canary)
        self.fail_with_bad_image(canary[0])
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        # the operator goes on: wave 2 starts within the limit
        with self.captureOnCommitCallbacks(execute=True):
            resume_batch(batch)
        wave_2 = self.published()
        self.assertEqual(len(wave_2), 2)
        self.run_workers(wave_2)
        self.fail_with_bad_image(wave_2[0])
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.finish(wave_2[1:])
        self.assertEqual(dispatch(), 0)
        self.assertEqual(self.started(batch), 3)

    def test_go_ahead_counts_failures_first(self):
        batch = self._batch(
            self._devices(6),
            wave_size=2,
            confirm_waves=True,
            max_concurrent=2,
            failure_threshold=2,
            failure_threshold_percent=False,
        )
        dispatch()
        wave_1 = self.published()
        self.run_workers(wave_1)
        self.finish(wave_1)
        dispatch()
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.AWAITING)
        # a race the lock prevents, played by hand: wave 1 counted as failed
        # after the wave was closed
        self._uncounted_failures(wave_1)
        with self.captureOnCommitCallbacks(execute=True):
            resume_batch(batch)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertEqual(self.published(), [])
        self.assertEqual(self.wave_started(batch, 2), 0)

    def test_retry_batch_stops_at_its_canary(self):
        batch = self._batch(
            self._devices(6), canary_size=2, max_concurrent=5, failure_threshold=0
        )
        dispatch()
        canary = self.published()
        self.run_workers(canary)
        for pk in canary:
            self.fail_with_bad_image(pk, execute=False)
        with self.captureOnCommitCallbacks(execute=False):
            retry = retry_failed(batch)
        from ..batch import start_batch

        with self.captureOnCommitCallbacks(execute=False):
            start_batch(retry)
        retry.refresh_from_db()
        self.assertEqual(retry.canary_size, 2)
        self.assertEqual(dispatch(), 2)
        again = self.published()
        self.assertTrue(
            set(again) <= set(map(str, retry.operations.values_list("pk", flat=True)))
        )
        self.run_workers(again)
        self.fail_with_bad_image(again[0])
        retry.refresh_from_db()
        self.assertEqual(retry.rollout_state, RolloutState.STOPPED)

    def test_a_queued_device_of_a_stopped_batch_does_not_start(self):
        batch = self._batch(
            self._devices(6),
            max_concurrent=3,
            failure_threshold=1,
            failure_threshold_percent=False,
        )
        dispatch()
        queued = self.published()
        self.assertTrue(mark_in_progress(queued[0]))
        # the first fails before the workers took the other two messages
        self.fail_with_bad_image(queued[0], execute=False)
        for pk in queued[1:]:
            operation = ModemUpgradeOperation.objects.get(pk=pk)
            self.assertFalse(mark_in_progress(pk, operation.dispatched_at))
            operation.refresh_from_db()
            # back to waiting, not counted in flight
            self.assertEqual(operation.status, OperationStatus.IDLE)
            self.assertIsNone(operation.dispatched_at)
        self.assertEqual(in_flight(batch.operations.all()).count(), 0)
        self.assertEqual(self.started(batch), 1)
        # resumed: they start again
        with self.captureOnCommitCallbacks(execute=True):
            resume_batch(batch)
        self.assertEqual(len(self.published()), 3)


class CommittingMixin(ContainmentMixin):
    """For ``TransactionTestCase`` (real commits): callbacks registered
    while setting up are held, as ``TestCase.captureOnCommitCallbacks``
    holds them."""

    @contextmanager
    def captureOnCommitCallbacks(self, execute=False, using="default"):
        callbacks = []

        def hold(func, using=None, robust=False):
            callbacks.append(func)

        with mock.patch.object(transaction, "on_commit", hold):
            yield callbacks
        if execute:
            for callback in callbacks:
                callback()


class TestRaceOrder(CommittingMixin, TransactionTestCase):
    """The issue's database log: second canary failure committed, another
    worker opens wave 2 and dispatches it, then the batch is stopped. Here
    with real commits: the dispatch a failure asks for runs once it is
    committed, and must find the batch stopped."""

    def test_the_dispatch_asked_by_a_failure_sees_the_stop(self):
        batch, canary = self._canary_running()
        seen = []

        def dispatch_soon():
            # what the worker that takes this dispatch reads
            seen.append(
                ModemBatchUpgradeOperation.objects.get(pk=batch.pk).rollout_state
            )
            seen.append(dispatch())

        with mock.patch("openwisp_modem_upgrader.publish.dispatch_soon"):
            finish_operation(canary[0], OperationStatus.SUCCESS, "done")
        with mock.patch("openwisp_modem_upgrader.publish.dispatch_soon", dispatch_soon):
            finish_operation(canary[1], OperationStatus.FAILED, "bad image")
        self.assertEqual(seen, [RolloutState.STOPPED, 0])
        self.assertEqual(self.published(), [])
        self.assertEqual(self.wave_started(batch, 2), 0)


class TestRaceBetweenListAndClaim(ContainmentMixin, TestCase):
    def test_a_dispatch_between_the_batch_list_and_the_claim(self):
        batch, canary = self._canary_running()
        self.finish(canary[:1])
        from .. import scheduler

        claim = scheduler._claim_batch

        def failure_meanwhile(batch_id, now, free):
            # another worker records the deciding failure after this
            # dispatcher listed the running batches
            if not getattr(failure_meanwhile, "done", False):
                failure_meanwhile.done = True
                self.fail_with_bad_image(canary[1], execute=False)
            return claim(batch_id, now, free)

        with mock.patch.object(scheduler, "_claim_batch", failure_meanwhile):
            self.assertEqual(dispatch(), 0)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertEqual(batch.current_wave, 1)
        self.assertEqual(
            batch.operations.filter(wave=2, dispatched_at__isnull=False).count(), 0
        )


@unittest.skipUnless(connection.vendor == "postgresql", "row locks: PostgreSQL")
class TestRaceOnPostgres(CommittingMixin, TransactionTestCase):
    """Two database sessions for real: the deciding canary failure is
    written (not committed yet) when another worker dispatches. The
    dispatcher waits for the batch's lock and then sees the stop."""

    def test_a_concurrent_dispatch_waits_for_the_failure_and_its_stop(self):
        batch = self._batch(
            self._devices(8),
            canary_size=2,
            max_concurrent=5,
            failure_threshold=20,
            failure_threshold_minimum=2,
        )
        dispatch()
        canary = self.published()
        self.run_workers(canary)
        with self.captureOnCommitCallbacks(execute=False):
            finish_operation(canary[0], OperationStatus.SUCCESS, "done")
        written, go = threading.Event(), threading.Event()
        results = {}
        from .. import rollout

        stop_on_failures = rollout.stop_on_failures

        def slow_stop(*args, **kwargs):
            # the failure is written, its stop not evaluated yet
            if threading.current_thread().name == "finisher":
                written.set()
                go.wait(60)
            return stop_on_failures(*args, **kwargs)

        def finisher():
            try:
                with mock.patch("openwisp_modem_upgrader.publish.dispatch_soon"):
                    finish_operation(canary[1], OperationStatus.FAILED, "bad image")
            finally:
                connections.close_all()

        def dispatcher():
            try:
                results["dispatched"] = dispatch()
            finally:
                connections.close_all()

        with mock.patch.object(rollout, "stop_on_failures", slow_stop):
            threads = [
                threading.Thread(target=finisher, name="finisher"),
                threading.Thread(target=dispatcher, name="dispatcher"),
            ]
            threads[0].start()
            self.assertTrue(written.wait(60))
            threads[1].start()
            # the dispatcher waits on the batch's row lock
            self._wait_for_a_lock_wait()
            self.assertTrue(threads[1].is_alive())
            go.set()
            for thread in threads:
                thread.join(60)
        self.assertEqual(results["dispatched"], 0)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertEqual(self.wave_started(batch, 2), 0)
        self.assertEqual(
            batch.operations.filter(wave=2, dispatched_at__isnull=False).count(), 0
        )

    def _wait_for_a_lock_wait(self):
        import time

        deadline = time.monotonic() + 60
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                with transaction.atomic():
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE "
                        "wait_event_type = 'Lock' AND datname = current_database()"
                    )
                    if cursor.fetchone()[0]:
                        return
                time.sleep(0.05)
        self.fail("the dispatcher never waited on the batch's lock")
