from unittest import mock

from django.core.exceptions import ValidationError
from django.test import TestCase

from ..base.models import OperationStatus
from ..exceptions import UpgradeNotAllowed
from ..upgrade import (
    cancel_upgrade,
    finish_operation,
    mark_flash_started,
    mark_in_progress,
    record_journal,
    record_progress,
    start_upgrade,
)
from . import (
    NEW_VERSION,
    DeviceModemFirmware,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)

QUEUE = "openwisp_modem_upgrader.scheduler.publish_upgrade"


class TestStartAndCancel(TestModemUpgraderMixin, TestCase):
    def _start(self, **kwargs):
        image = kwargs.pop("image", None) or self._create_image()
        device = kwargs.pop("device", None) or self._create_modem_device()
        with mock.patch(QUEUE) as queue:
            with self.captureOnCommitCallbacks(execute=True):
                operation = start_upgrade(device, image, **kwargs)
        return operation, queue

    def test_start_creates_operation_and_queues_after_commit(self):
        operation, queue = self._start(upgrade_options={"upgrade_timeout": 600})
        queue.assert_called_once_with(
            str(operation.pk), time_limit=mock.ANY, dispatched_at=mock.ANY
        )
        self.assertEqual(operation.status, OperationStatus.IDLE)
        dmf = DeviceModemFirmware.objects.get(device=operation.device)
        self.assertEqual(dmf.image, operation.image)
        self.assertFalse(dmf.installed)

    def test_start_refused_changes_nothing(self):
        device = self._create_modem_device(modem_model="FN990A40")
        with mock.patch(QUEUE) as queue:
            with self.captureOnCommitCallbacks(execute=True):
                with self.assertRaises(ValidationError):
                    start_upgrade(device, self._create_image())
        queue.assert_not_called()
        self.assertEqual(ModemUpgradeOperation.objects.count(), 0)
        self.assertIsNone(DeviceModemFirmware.objects.get(device=device).image)

    def test_start_refused_while_another_runs(self):
        operation, _ = self._start()
        with self.assertRaises(ValidationError) as context:
            self._start(device=operation.device, image=operation.image)
        self.assertIn("already running", str(context.exception))
        self.assertEqual(ModemUpgradeOperation.objects.count(), 1)

    def test_start_race_lost_in_database(self):
        operation, _ = self._start()
        # a concurrent start that passed validation before the first committed
        with mock.patch.object(ModemUpgradeOperation, "validate_constraints"):
            with self.assertRaises(ValidationError) as context:
                self._start(device=operation.device, image=operation.image)
        self.assertIn("already running", str(context.exception))
        self.assertEqual(ModemUpgradeOperation.objects.count(), 1)

    def test_cancel_before_flash(self):
        operation, _ = self._start()
        mark_in_progress(operation.pk)
        cancel_upgrade(operation)
        self.assertEqual(operation.status, OperationStatus.CANCELLED)
        self.assertIsNotNone(operation.finished_at)
        self.assertIn("Cancelled by an operator", operation.log)

    def test_cancel_refused_after_point_of_no_return(self):
        operation, _ = self._start()
        mark_in_progress(operation.pk)
        self.assertTrue(mark_flash_started(operation.pk))
        with self.assertRaises(UpgradeNotAllowed) as context:
            cancel_upgrade(operation)
        self.assertIn("brick", str(context.exception))
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)

    def test_cancel_refused_when_finished(self):
        operation, _ = self._start()
        finish_operation(operation.pk, OperationStatus.FAILED, "boom")
        with self.assertRaises(UpgradeNotAllowed) as context:
            cancel_upgrade(operation)
        self.assertIn("already finished", str(context.exception))
        self.assertEqual(operation.status, OperationStatus.FAILED)

    def test_flash_cannot_start_once_cancelled(self):
        operation, _ = self._start()
        mark_in_progress(operation.pk)
        cancel_upgrade(operation)
        self.assertFalse(mark_flash_started(operation.pk))
        self.assertFalse(mark_in_progress(operation.pk))


class TestProgressAndFinish(TestModemUpgraderMixin, TestCase):
    def setUp(self):
        with mock.patch(QUEUE):
            self.operation = start_upgrade(
                self._create_modem_device(), self._create_image()
            )
        mark_in_progress(self.operation.pk)

    def _reload(self):
        self.operation.refresh_from_db()
        return self.operation

    def test_progress_never_goes_backwards(self):
        record_progress(self.operation.pk, 40, "flashing 40%")
        record_progress(self.operation.pk, 30, "late report")
        operation = self._reload()
        self.assertEqual(operation.progress, 40)
        self.assertEqual(operation.log, "flashing 40%\nlate report\n")

    def test_replayed_journal_records_ignored(self):
        self.assertTrue(record_journal(self.operation.pk, 1, ["one"], 20))
        self.assertTrue(record_journal(self.operation.pk, 2, ["two"], 30))
        self.assertFalse(record_journal(self.operation.pk, 1, ["one"], 20))
        # a replay overlapping what was applied adds only the new records
        self.assertTrue(record_journal(self.operation.pk, 4, ["two", "3", "4"], 50))
        operation = self._reload()
        self.assertEqual(operation.log, "one\ntwo\n3\n4\n")
        self.assertEqual(operation.device_seq, 4)
        self.assertEqual(operation.progress, 50)

    def test_finish_once(self):
        self.assertTrue(
            finish_operation(self.operation.pk, OperationStatus.SUCCESS, "done")
        )
        self.assertFalse(
            finish_operation(self.operation.pk, OperationStatus.FAILED, "late")
        )
        operation = self._reload()
        self.assertEqual(operation.status, OperationStatus.SUCCESS)
        self.assertEqual(operation.progress, 100)
        self.assertNotIn("late", operation.log)
        dmf = DeviceModemFirmware.objects.get(device=operation.device)
        self.assertTrue(dmf.installed)
        self.assertEqual(dmf.modem_firmware_version, NEW_VERSION)

    def test_no_progress_after_finish(self):
        finish_operation(self.operation.pk, OperationStatus.FAILED, "boom")
        self.assertFalse(record_progress(self.operation.pk, 90, "ghost"))
        self.assertEqual(self._reload().progress, 0)

    def test_failure_leaves_device_not_installed(self):
        finish_operation(self.operation.pk, OperationStatus.FAILED, "boom")
        dmf = DeviceModemFirmware.objects.get(device=self.operation.device)
        self.assertFalse(dmf.installed)
        self.assertNotEqual(dmf.modem_firmware_version, NEW_VERSION)
