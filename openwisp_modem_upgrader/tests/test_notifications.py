"""One test per notification type: sent to the organization's managers,
linking to the object, silenced by the user's notification settings."""

from unittest import mock

from django.test import TestCase
from django.utils import timezone
from openwisp_notifications.swapper import load_model as load_notification_model

from ..base.models import ModemChangeSource, OperationStatus
from ..batch import create_batch
from ..detection import record_modems
from ..signals import modem_upgrade_finished
from ..upgrade import finish_operation, mark_in_progress, start_upgrade
from . import FN990A28, OLD_VERSION, DeviceModemFirmware, TestModemUpgraderMixin

Notification = load_notification_model("Notification")
NotificationSetting = load_notification_model("NotificationSetting")
QUEUE = "openwisp_modem_upgrader.scheduler.publish_upgrade"


class TestNotifications(TestModemUpgraderMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.org = self._get_org()
        self.other_org = self._create_org(name="other", slug="other")
        # openwisp-notifications creates the users' settings on commit
        with self.captureOnCommitCallbacks(execute=True):
            self.manager = self._create_administrator(organizations=[self.org])
            self.outsider = self._create_administrator(
                organizations=[self.other_org],
                username="outsider",
                email="outsider@test.com",
            )
        self.device = self._create_modem_device()
        self.image = self._create_image()

    def _notifications(self, notification_type):
        return Notification.objects.filter(type=notification_type)

    def _recipients(self, notification_type):
        return set(
            self._notifications(notification_type).values_list(
                "recipient__username", flat=True
            )
        )

    def _failed_operation(self, status):
        with mock.patch(QUEUE):
            operation = start_upgrade(self.device, self.image)
        mark_in_progress(operation.pk)
        with self.captureOnCommitCallbacks(execute=True):
            finish_operation(operation.pk, status, "uxfp exited with 3")
        return operation

    def test_upgrade_failed(self):
        operation = self._failed_operation(OperationStatus.FAILED)
        self.assertEqual(
            self._recipients("modem_upgrade_failed"), {self.manager.username}
        )
        notification = self._notifications("modem_upgrade_failed").get()
        self.assertEqual(notification.target, self.device)
        self.assertEqual(notification.action_object, operation)
        self.assertIn(str(operation.pk), notification.target_url)
        self.assertIn("uxfp exited with 3", notification.message)
        self.assertEqual(notification.level, "error")

    def test_upgrade_failed_says_the_tools_reason_and_stage(self):
        from ..upgrade import record_progress
        from .test_containment import BAD_IMAGE_LOG, CHIPSET

        with mock.patch(QUEUE):
            operation = start_upgrade(self.device, self.image)
        mark_in_progress(operation.pk)
        record_progress(operation.pk, message="\n".join(BAD_IMAGE_LOG))
        with self.captureOnCommitCallbacks(execute=True):
            finish_operation(
                operation.pk, OperationStatus.FAILED, "failure reported by the router"
            )
        message = self._notifications("modem_upgrade_failed").get().message
        self.assertIn(f"ended as failed: flash (uxfp): {CHIPSET}", message)
        self.assertNotIn("reported by the router", message)

    def test_mass_upgrade_stopped_says_the_tools_reason(self):
        from ..rollout import describe_failure
        from ..upgrade import record_progress
        from .test_containment import BAD_IMAGE_LOG, CHIPSET

        devices = [self.device] + [
            self._create_modem_device(name=f"r{i}", mac_address=f"00:11:22:33:77:0{i}")
            for i in range(3)
        ]
        with mock.patch(QUEUE), self.captureOnCommitCallbacks(execute=True):
            batch = create_batch(
                self.image.build,
                self.org,
                device_ids=[str(d.pk) for d in devices],
                canary_size=1,
            )
        canary = batch.operations.get(wave=1)
        mark_in_progress(canary.pk)
        record_progress(canary.pk, message="\n".join(BAD_IMAGE_LOG))
        with self.captureOnCommitCallbacks(execute=True):
            finish_operation(
                canary.pk, OperationStatus.FAILED, "failure reported by the router"
            )
        notification = self._notifications("modem_mass_upgrade_stopped").get()
        self.assertIn("the canary wave failed", notification.message)
        self.assertIn(
            f"{canary.device.name}, flash (uxfp): {CHIPSET}", notification.message
        )
        self.assertIn(describe_failure(canary.pk), notification.message)

    def test_upgrade_aborted_and_success(self):
        self._failed_operation(OperationStatus.ABORTED)
        self.assertIn(
            "aborted", self._notifications("modem_upgrade_failed").get().message
        )
        Notification.objects.all().delete()
        self._failed_operation(OperationStatus.SUCCESS)
        self.assertFalse(self._notifications("modem_upgrade_failed").exists())

    def test_silenced_by_user_setting(self):
        NotificationSetting.objects.filter(
            user=self.manager, type="modem_upgrade_failed"
        ).update(web=False, email=False)
        self._failed_operation(OperationStatus.FAILED)
        self.assertNotIn(
            self.manager.username, self._recipients("modem_upgrade_failed")
        )

    def test_mass_upgrade_finished(self):
        second = self._create_modem_device(
            name="second", mac_address="00:11:22:33:44:99"
        )
        with mock.patch(QUEUE):
            with self.captureOnCommitCallbacks(execute=True) as callbacks:
                batch = create_batch(self.image.build, self.org)
            while callbacks:
                with self.captureOnCommitCallbacks(execute=True) as callbacks:
                    pass
        first_op, second_op = batch.operations.order_by("device__name")
        for operation, status in (
            (first_op, OperationStatus.SUCCESS),
            (second_op, OperationStatus.FAILED),
        ):
            mark_in_progress(operation.pk)
            with self.captureOnCommitCallbacks(execute=True):
                finish_operation(operation.pk, status, "done")
            if status == OperationStatus.SUCCESS:
                # not finished yet: one operation still running
                self.assertFalse(
                    self._notifications("modem_mass_upgrade_finished").exists()
                )
        self.assertTrue(second.pk)
        notification = self._notifications("modem_mass_upgrade_finished").get(
            recipient=self.manager
        )
        self.assertEqual(notification.target, batch)
        self.assertIn("1 succeeded, 1 failed", notification.message)
        self.assertIn("out of 2 devices", notification.message)
        self.assertNotIn("outsider", self._recipients("modem_mass_upgrade_finished"))

    def test_unexplained_change(self):
        modem = {
            "usb_path": "1-1",
            "manufacturer": "Telit",
            "model": FN990A28,
            "revision": "45.00.010",
            "firmware": OLD_VERSION,
            "imei": "350000000000001",
            "ports": {"at": "", "diag": ""},
            "mode": "normal",
            "source": "at",
            "usb_id": "1bc7:1071",
        }
        DeviceModemFirmware.objects.filter(device=self.device).delete()
        with self.captureOnCommitCallbacks(execute=True):
            record_modems(self.device, [modem], ModemChangeSource.DETECTION)
        # the first reading explains nothing but flags nothing either
        self.assertFalse(self._notifications("modem_unexplained_change").exists())
        DeviceModemFirmware.objects.filter(device=self.device).update(
            modem_detected_at=timezone.now()
        )
        with self.captureOnCommitCallbacks(execute=True):
            record_modems(
                self.device,
                [dict(modem, imei="350000000000002")],
                ModemChangeSource.DETECTION,
            )
        notification = self._notifications("modem_unexplained_change").get(
            recipient=self.manager
        )
        self.assertEqual(notification.target, self.device)
        self.assertIn("350000000000002", notification.message)
        self.assertNotIn("outsider", self._recipients("modem_unexplained_change"))

    def test_failing_receiver_does_not_interrupt_the_upgrade(self):
        def broken(**kwargs):
            raise RuntimeError("mail server down")

        modem_upgrade_finished.connect(broken, dispatch_uid="test-broken")
        self.addCleanup(modem_upgrade_finished.disconnect, dispatch_uid="test-broken")
        with self.assertLogs("openwisp_modem_upgrader.signals", "ERROR") as logs:
            operation = self._failed_operation(OperationStatus.FAILED)
        self.assertIn("mail server down", logs.output[0])
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        # the other receivers still ran
        self.assertTrue(self._notifications("modem_upgrade_failed").exists())


class TestDemoStartUp(TestModemUpgraderMixin, TestCase):
    """The demo creates openwisp-notifications' settings rows before its
    workers start: the settings tasks the workers run together at start-up
    then have no row left to insert, hence nothing to race on (they raised
    IntegrityError inserting the same rows)."""

    def _queued_tasks_inserted(self):
        from openwisp_notifications.tasks import (
            create_superuser_notification_settings,
            ns_register_unregister_notification_type,
        )

        settings = load_notification_model("NotificationSetting").objects
        before = settings.count()
        # what the workers find queued on a fresh demo start
        create_superuser_notification_settings(self.admin.pk)
        ns_register_unregister_notification_type()
        return settings.count() - before

    def setUp(self):
        self.admin = self._get_admin()
        self._get_org()
        # a fresh start: the tasks are queued, not run yet
        load_notification_model("NotificationSetting").objects.all().delete()

    def test_control_without_the_demo_the_tasks_insert_rows(self):
        self.assertGreater(self._queued_tasks_inserted(), 0)

    def test_after_the_demo_the_tasks_insert_nothing(self):
        from openwisp2.demo import prepare_notification_settings

        prepare_notification_settings()
        self.assertGreater(
            load_notification_model("NotificationSetting").objects.count(), 0
        )
        self.assertEqual(self._queued_tasks_inserted(), 0)
