from datetime import timedelta
from unittest import mock

from django.core.exceptions import ValidationError
from django.test import TestCase
from django.utils import timezone

from openwisp_controller.config.tests.utils import CreateDeviceGroupMixin

from ..base.models import DetectionStatus, OperationStatus
from ..batch import (
    ExclusionReason,
    create_batch,
    not_detected_devices,
    preview_batch,
    start_batch,
)
from ..swapper import load_model
from ..upgrade import (
    cancel_batch,
    finish_operation,
    mark_flash_started,
    mark_in_progress,
    start_upgrade,
)
from . import (
    FN990A28,
    NEW_VERSION,
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)

QUEUE = "openwisp_modem_upgrader.scheduler.publish_upgrade"
DeviceModemDetection = load_model("DeviceModemDetection")


class BatchTestMixin(TestModemUpgraderMixin):
    def _devices(self, count, start=0, **kwargs):
        return [
            self._create_modem_device(
                name=f"router-{i:05d}",
                mac_address=f"00:11:22:33:{i // 256:02x}:{i % 256:02x}",
                **kwargs,
            )
            for i in range(start, start + count)
        ]

    def _batch(self, build, **kwargs):
        kwargs.setdefault("organization", self._get_org())
        return ModemBatchUpgradeOperation(build=build, **kwargs)

    def _run(self, build, **kwargs):
        with mock.patch(QUEUE) as queue:
            with self.captureOnCommitCallbacks(execute=True) as callbacks:
                batch = create_batch(build, self._get_org(), **kwargs)
            # the fan-out task queues the operations on its own commit
            while callbacks:
                with self.captureOnCommitCallbacks(execute=True) as callbacks:
                    pass
        batch.refresh_from_db()
        return batch, queue


class TestBatch(CreateDeviceGroupMixin, BatchTestMixin, TestCase):
    def test_preview_reasons(self):
        image = self._create_image(boards=["Router A"])
        build = image.build
        ok, deactivated, running, other, current, board, offline = self._devices(
            7, model="Router A"
        )
        deactivated.deactivate()
        ModemUpgradeOperation.objects.create(device=running, image=image)
        DeviceModemFirmware.objects.filter(device=other).update(modem_model="FN990A40")
        DeviceModemFirmware.objects.filter(device=current).update(
            modem_firmware_version=NEW_VERSION
        )
        board.model = "Router B"
        board.save()
        offline.deviceconnection_set.update(enabled=False)
        # never detected: excluded with its own reason (the preview offers
        # to detect it); detected without a modem: excluded as such
        never = self._create_device(name="never", mac_address="00:00:00:00:00:09")
        empty = self._create_device(name="empty", mac_address="00:00:00:00:00:0a")
        DeviceModemDetection.objects.create(
            device=empty,
            attempted_at=timezone.now(),
            succeeded_at=timezone.now(),
            status=DetectionStatus.NO_MODEM,
        )
        batch = self._batch(build)
        # images of the build, then one query per list, whatever the fleet size
        with self.assertNumQueries(3):
            preview = preview_batch(batch)
            devices = list(preview["devices"])
            excluded = {d.name: d.exclusion_reason for d in preview["excluded"]}
        self.assertEqual([d.pk for d in devices], [ok.pk])
        self.assertEqual(devices[0].target_image_id, image.pk)
        self.assertEqual(
            excluded,
            {
                deactivated.name: ExclusionReason.DEACTIVATED,
                running.name: ExclusionReason.RUNNING,
                other.name: ExclusionReason.OTHER_MODEL,
                current.name: ExclusionReason.UP_TO_DATE,
                board.name: ExclusionReason.BOARD,
                offline.name: ExclusionReason.NO_CONNECTION,
                never.name: ExclusionReason.NOT_DETECTED,
                empty.name: ExclusionReason.NO_MODEM,
            },
        )
        self.assertEqual(
            list(not_detected_devices(batch).values_list("pk", flat=True)),
            [never.pk],
        )
        for reason in excluded.values():
            self.assertIn(reason, ExclusionReason.labels)

    def test_preview_device_ids(self):
        image = self._create_image()
        chosen, other, outside = self._devices(3)
        batch = self._batch(image.build, device_ids=[str(chosen.pk), str(other.pk)])
        batch.full_clean()
        preview = preview_batch(batch)
        self.assertEqual(
            set(preview["devices"].values_list("pk", flat=True)), {chosen.pk, other.pk}
        )
        self.assertFalse(preview["excluded"].exists())
        batch, _queue = self._run(image.build, device_ids=[str(chosen.pk)])
        self.assertEqual(batch.device_ids, [str(chosen.pk)])
        self.assertEqual(
            list(batch.operations.values_list("device_id", flat=True)), [chosen.pk]
        )

    def test_device_ids_validation(self):
        image = self._create_image()
        foreign_org = self._create_org(name="foreign", slug="foreign")
        foreign = self._create_device(
            organization=foreign_org, mac_address="00:00:00:00:01:01"
        )
        for device_ids in (["not-a-uuid"], [str(foreign.pk)], "text", [None]):
            with self.subTest(device_ids=device_ids):
                with self.assertRaises(ValidationError) as context:
                    self._batch(image.build, device_ids=device_ids).full_clean()
                self.assertIn("device_ids", context.exception.message_dict)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_preview_filters(self):
        image = self._create_image()
        group = self._create_device_group(organization=self._get_org())
        in_group, other_version, outside = self._devices(3)
        for device in (in_group, other_version):
            device.group = group
            device.save()
        DeviceModemFirmware.objects.filter(device=other_version).update(
            modem_firmware_version="M0R.000001-B001"
        )
        batch = self._batch(image.build, group=group, from_version="M0R.010000-B022")
        names = [d.name for d in preview_batch(batch)["devices"]]
        self.assertEqual(names, [in_group.name])

    def test_preview_ignores_other_organizations(self):
        image = self._create_image()
        self._devices(1, organization=self._create_org(name="other", slug="other"))
        self.assertFalse(preview_batch(self._batch(image.build))["devices"].exists())

    def test_upgrade_fans_out_in_constant_queries(self):
        image = self._create_image()
        self._devices(2)
        counts = []
        for extra in (0, 8):
            self._devices(extra, start=100)
            ModemUpgradeOperation.objects.all().delete()
            batch = self._batch(image.build)
            batch.full_clean()
            batch.save()
            with mock.patch(QUEUE):
                with self._count() as queries:
                    start_batch(batch)
            counts.append(len(queries))
            self.assertEqual(
                batch.operations.count(), 2 + extra, "one operation per device"
            )
        self.assertEqual(counts[0], counts[1])

    def _count(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        return CaptureQueriesContext(connection)

    def test_create_batch_runs_every_eligible_device(self):
        image = self._create_image()
        devices = self._devices(3)
        batch, queue = self._run(image.build, upgrade_options={"upgrade_timeout": 900})
        self.assertEqual(batch.status, OperationStatus.IN_PROGRESS)
        operations = ModemUpgradeOperation.objects.filter(batch=batch)
        self.assertEqual({o.device_id for o in operations}, {d.pk for d in devices})
        self.assertEqual(queue.call_count, 3)
        for operation in operations:
            self.assertEqual(operation.upgrade_options, {"upgrade_timeout": 900})
            self.assertEqual(operation.image, image)
        self.assertEqual(
            DeviceModemFirmware.objects.filter(image=image, installed=False).count(), 3
        )

    def test_two_modem_router_gets_one_operation_on_the_right_modem(self):
        image = self._create_image()
        (device,) = self._devices(1)
        # the row of _create_modem_device is the modem at 2-1, already upgraded
        DeviceModemFirmware.objects.filter(device=device).update(
            usb_path="2-1", modem_firmware_version=NEW_VERSION
        )
        DeviceModemFirmware.objects.create(
            device=device,
            usb_path="1-1.2",
            modem_model=FN990A28,
            modem_firmware_version="M0R.010000-B020",
        )
        preview = preview_batch(self._batch(image.build))
        (eligible,) = preview["devices"]
        self.assertEqual(eligible.target_usb_path, "1-1.2")
        self.assertEqual(eligible.modem_firmware_version, "M0R.010000-B020")
        batch, queue = self._run(image.build)
        operation = ModemUpgradeOperation.objects.get(batch=batch)
        self.assertEqual(operation.usb_path, "1-1.2")
        targeted = DeviceModemFirmware.objects.get(device=device, usb_path="1-1.2")
        other = DeviceModemFirmware.objects.get(device=device, usb_path="2-1")
        self.assertEqual((targeted.image, targeted.installed), (image, False))
        self.assertIsNone(other.image)

    def test_several_modems_need_a_choice(self):
        image = self._create_image()
        (device,) = self._devices(1)
        DeviceModemFirmware.objects.filter(device=device).update(usb_path="2-1")
        DeviceModemFirmware.objects.create(
            device=device, usb_path="1-1.2", modem_model=FN990A28
        )
        with mock.patch(QUEUE):
            with self.assertRaises(ValidationError) as context:
                start_upgrade(device, image)
            self.assertIn("usb_path", context.exception.message_dict)
            operation = start_upgrade(device, image, usb_path="1-1.2")
        self.assertEqual(operation.usb_path, "1-1.2")
        with self.assertRaises(ValidationError):
            ModemUpgradeOperation(
                device=device, image=image, usb_path="1-1.2;reboot"
            ).full_clean()

    def test_device_started_meanwhile_is_skipped_not_fatal(self):
        image = self._create_image()
        busy, free = self._devices(2)
        batch = self._batch(image.build)
        batch.full_clean()
        batch.save()
        # ``busy`` starts an upgrade between the preview and the insert
        real_preview = preview_batch

        def preview_then_race(b):
            result = real_preview(b)
            result["devices"] = result["devices"].all()
            list(result["devices"])
            ModemUpgradeOperation.objects.create(device=busy, image=image)
            return result

        with mock.patch(QUEUE) as queue, mock.patch(
            "openwisp_modem_upgrader.batch.preview_batch", preview_then_race
        ):
            with self.captureOnCommitCallbacks(execute=True):
                start_batch(batch)
        self.assertEqual(
            list(batch.operations.values_list("device_id", flat=True)), [free.pk]
        )
        # the batch's one operation, and the racing single upgrade (the
        # scheduler starts every waiting operation)
        published = {call.args[0] for call in queue.call_args_list}
        racing = ModemUpgradeOperation.objects.get(device=busy)
        self.assertEqual(published, {str(batch.operations.get().pk), str(racing.pk)})

    def test_no_eligible_device_is_a_clear_error(self):
        image = self._create_image()
        with self.assertRaises(ValidationError) as context:
            self._run(image.build)
        self.assertIn("No device can be upgraded", str(context.exception))
        self.assertEqual(ModemBatchUpgradeOperation.objects.count(), 0)

    def test_invalid_options_rejected(self):
        image = self._create_image()
        self._devices(1)
        with self.assertRaises(ValidationError) as context:
            self._run(image.build, upgrade_options={"tool_path": "uxfp && reboot"})
        self.assertIn("upgrade_options", context.exception.message_dict)
        self.assertEqual(ModemBatchUpgradeOperation.objects.count(), 0)

    def test_build_of_other_organization_rejected(self):
        other = self._create_org(name="other", slug="other")
        image = self._create_image(
            build=self._create_build(category=self._create_category(organization=other))
        )
        self._devices(1)
        batch = self._batch(image.build)
        with self.assertRaises(ValidationError) as context:
            batch.full_clean()
        self.assertIn("build", context.exception.message_dict)

    def test_upgrade_twice_fans_out_once(self):
        image = self._create_image()
        self._devices(2)
        batch = self._batch(image.build)
        batch.save()
        with mock.patch(QUEUE):
            first = start_batch(batch)
            second = start_batch(batch)
        self.assertEqual(len(first), 2)
        self.assertEqual(second, [])

    def test_lost_fan_out_published_again(self):
        from ..scheduler import drive

        image = self._create_image()
        self._devices(2)
        batch = self._batch(image.build)
        batch.save()  # its fan-out message was lost with the broker
        long_ago = timezone.now() - timedelta(days=1)
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(modified=long_ago)
        fan_out = "openwisp_modem_upgrader.tasks.fan_out_batch.delay"
        with mock.patch(fan_out) as publish:
            self.assertEqual(drive()["fanned_out_again"], 1)
            # once per REPUBLISH_AFTER, not at every pass of the driver
            self.assertEqual(drive()["fanned_out_again"], 0)
        publish.assert_called_once_with(str(batch.pk))
        with mock.patch(QUEUE):
            self.assertEqual(len(start_batch(batch)), 2)
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(modified=long_ago)
        with mock.patch(fan_out) as publish:
            self.assertEqual(drive()["fanned_out_again"], 0)
        publish.assert_not_called()

    def test_progress_report_and_rates_in_one_query(self):
        image = self._create_image()
        self._devices(4)
        batch, _ = self._run(image.build)
        ops = list(batch.operations.order_by("device__name"))
        for operation in ops:
            mark_in_progress(operation.pk)
        finish_operation(ops[0].pk, OperationStatus.SUCCESS)
        finish_operation(ops[1].pk, OperationStatus.SUCCESS)
        finish_operation(ops[2].pk, OperationStatus.FAILED)
        with self.assertNumQueries(1):
            rates = batch.rates()
        self.assertEqual(rates[OperationStatus.SUCCESS], 50)
        self.assertEqual(rates[OperationStatus.FAILED], 25)
        self.assertEqual(rates[OperationStatus.ABORTED], 0)
        self.assertEqual(str(batch.progress_report), "3 out of 4 devices completed")
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.IN_PROGRESS)
        finish_operation(ops[3].pk, OperationStatus.ABORTED)
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.FAILED)
        self.assertEqual(batch.rates()[OperationStatus.ABORTED], 25)
        self.assertIsNotNone(batch.finished_at)

    def test_batch_succeeds_when_all_succeed(self):
        image = self._create_image()
        self._devices(2)
        batch, _ = self._run(image.build)
        for operation in batch.operations.all():
            mark_in_progress(operation.pk)
            finish_operation(operation.pk, OperationStatus.SUCCESS)
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.SUCCESS)
        self.assertEqual(batch.rates()[OperationStatus.SUCCESS], 100)


class TestCancelBatch(TestBatch):
    def test_cancel_running_batch(self):
        image = self._create_image()
        self._devices(3)
        batch, _ = self._run(image.build)
        flashing, idle, started = batch.operations.order_by("device__name")
        for operation in (flashing, started):
            mark_in_progress(operation.pk)
        mark_flash_started(flashing.pk)
        # constant: whatever the number of operations (the batch's closing
        # under its lock: a savepoint of its own)
        with self.assertNumQueries(10):
            cancelled, refused = cancel_batch(batch)
        self.assertEqual(set(cancelled), {idle.pk, started.pk})
        self.assertEqual(refused, [flashing.pk])
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.IN_PROGRESS)
        finish_operation(flashing.pk, OperationStatus.SUCCESS)
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.FAILED)

    def test_cancel_before_fan_out(self):
        image = self._create_image()
        self._devices(2)
        batch = self._batch(image.build)
        batch.save()
        self.assertEqual(cancel_batch(batch), ([], []))
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.CANCELLED)
        with mock.patch(QUEUE) as queue:
            self.assertEqual(start_batch(batch), [])
        queue.assert_not_called()
        self.assertFalse(batch.operations.exists())


class TestMultiModemBatch(BatchTestMixin, TestCase):
    """Routers with several modems matching the build."""

    def _two_modem_router(self, name="two-modems", start=0):
        (device,) = self._devices(1, start=start)
        DeviceModemFirmware.objects.filter(device=device).update(
            usb_path="2-1", modem_imei="351234567890123"
        )
        DeviceModemFirmware.objects.create(
            device=device,
            usb_path="1-1.2",
            modem_model=FN990A28,
            modem_firmware_version="M0R.010000-B020",
            modem_imei="351234567890999",
        )
        return device

    def test_preview_says_which_modem_and_which_are_left(self):
        from ..batch import modem_counts, modems_to_flash

        image = self._create_image()
        router = self._two_modem_router()
        (single,) = self._devices(1, start=10)
        for modems, flashed, left, total in (
            ("first", ["1-1.2"], ["2-1"], 2),
            ("every", ["1-1.2", "2-1"], [], 3),
        ):
            with self.subTest(modems=modems):
                batch = self._batch(image.build, modems=modems)
                devices = preview_batch(batch)["devices"]
                rows = {d.pk: d for d in devices}
                self.assertEqual(rows[router.pk].target_usb_path, "1-1.2")
                self.assertEqual(rows[router.pk].target_imei, "351234567890999")
                self.assertEqual(rows[router.pk].matching_modems, 2)
                self.assertEqual(rows[single.pk].matching_modems, 1)
                with self.assertNumQueries(1):
                    chosen = modems_to_flash(batch, rows)
                self.assertEqual([m["usb_path"] for m in chosen[router.pk][0]], flashed)
                self.assertEqual([m["usb_path"] for m in chosen[router.pk][1]], left)
                self.assertEqual(
                    chosen[router.pk][0][0],
                    {
                        "usb_path": "1-1.2",
                        "modem_imei": "351234567890999",
                        "modem_firmware_version": "M0R.010000-B020",
                    },
                )
                self.assertEqual(len(chosen[single.pk][0]), 1)
                with self.assertNumQueries(1):
                    counts = modem_counts(batch, devices)
                self.assertEqual(
                    counts, {"multi_modem_count": 1, "modems_count": total}
                )

    def test_a_modem_on_the_version_is_not_counted(self):
        from ..batch import modem_counts

        image = self._create_image()
        router = self._two_modem_router()
        DeviceModemFirmware.objects.filter(device=router, usb_path="1-1.2").update(
            modem_firmware_version=NEW_VERSION
        )
        batch = self._batch(image.build, modems="every")
        (row,) = preview_batch(batch)["devices"]
        self.assertEqual((row.target_usb_path, row.matching_modems), ("2-1", 1))
        counts = modem_counts(batch, preview_batch(batch)["devices"])
        self.assertEqual(counts, {"multi_modem_count": 0, "modems_count": 1})

    def test_first_matching_modem_is_the_default(self):
        image = self._create_image()
        router = self._two_modem_router()
        batch, _queue = self._run(image.build)
        self.assertEqual(batch.modems, "first")
        (operation,) = batch.operations.all()
        self.assertEqual(
            (operation.device_id, operation.usb_path), (router.pk, "1-1.2")
        )

    def test_every_modem_queued_one_after_the_other(self):
        image = self._create_image()
        router = self._two_modem_router()
        (single,) = self._devices(1, start=10)
        batch, queue = self._run(image.build, modems="every", canary_size=1)
        operations = {
            (o.device_id, o.usb_path): o for o in batch.operations.order_by("created")
        }
        self.assertEqual(
            set(operations),
            {(router.pk, "1-1.2"), (router.pk, "2-1"), (single.pk, "")},
        )
        first, second = operations[router.pk, "1-1.2"], operations[router.pk, "2-1"]
        self.assertEqual(second.runs_after_id, first.pk)
        self.assertIsNone(first.runs_after_id)
        # a router is one wave: the canary of 1 is the two-modem router
        self.assertEqual((first.wave, second.wave), (1, 1))
        self.assertEqual(operations[single.pk, ""].wave, 2)
        # both modems are marked for the image
        self.assertEqual(
            DeviceModemFirmware.objects.filter(
                device=router, image=image, installed=False
            ).count(),
            2,
        )
        # only the first modem of the router started
        self.assertEqual(
            [call.args[0] for call in queue.call_args_list], [str(first.pk)]
        )
        self.assertEqual(str(batch.progress_report), "0 out of 3 modems completed")

    def test_every_modem_fans_out_in_constant_queries(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        image = self._create_image()
        counts = []
        for start, extra in ((0, 2), (100, 8)):
            for number in range(start, start + extra):
                self._two_modem_router(start=number)
            ModemUpgradeOperation.objects.all().delete()
            batch = self._batch(image.build, modems="every")
            batch.full_clean()
            batch.save()
            with mock.patch(QUEUE):
                with CaptureQueriesContext(connection) as queries:
                    start_batch(batch)
            counts.append(len(queries))
            routers = 2 if start == 0 else 10
            self.assertEqual(batch.operations.count(), 2 * routers)
        self.assertEqual(counts[0], counts[1])

    def test_deleting_waiting_modems_with_the_router(self):
        image = self._create_image()
        router, batch, first, second = self._every_batch(image)
        mark_in_progress(first.pk)
        # the router (and its operations) can be deleted while its first
        # modem upgrades and the second waits
        type(router).objects.filter(pk=router.pk).delete()
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        # and operations alone: the one waiting goes with the one it waits for
        router, batch, first, second = self._every_batch(image)
        mark_in_progress(first.pk)
        ModemUpgradeOperation.objects.filter(pk=first.pk).delete()
        self.assertFalse(ModemUpgradeOperation.objects.filter(pk=second.pk).exists())

    def _dispatch(self):
        from ..scheduler import dispatch

        with mock.patch(QUEUE) as queue:
            dispatch()
        return [call.args[0] for call in queue.call_args_list]

    def _every_batch(self, image):
        router = self._two_modem_router()
        batch, _queue = self._run(image.build, modems="every")
        first = batch.operations.get(usb_path="1-1.2")
        second = batch.operations.get(usb_path="2-1")
        return router, batch, first, second

    def test_next_modem_starts_after_a_success(self):
        image = self._create_image()
        router, batch, first, second = self._every_batch(image)
        self.assertTrue(mark_in_progress(first.pk))
        # never two upgrades of one router at once
        self.assertEqual(self._dispatch(), [])
        mark_flash_started(first.pk)
        self.assertEqual(self._dispatch(), [])
        finish_operation(first.pk, OperationStatus.SUCCESS)
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.IN_PROGRESS)
        self.assertEqual(self._dispatch(), [str(second.pk)])
        second.refresh_from_db()
        self.assertIsNone(second.runs_after_id)
        self.assertTrue(mark_in_progress(second.pk))
        finish_operation(second.pk, OperationStatus.SUCCESS)
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.SUCCESS)
        self.assertEqual(str(batch.progress_report), "2 out of 2 modems completed")

    def test_next_modem_skipped_after_a_failure(self):
        image = self._create_image()
        router, batch, first, second = self._every_batch(image)
        mark_in_progress(first.pk)
        finish_operation(first.pk, OperationStatus.FAILED, "tool error")
        self.assertEqual(self._dispatch(), [])
        second.refresh_from_db()
        self.assertEqual(second.status, OperationStatus.CANCELLED)
        self.assertIn("modem at 1-1.2 of this router ended failed", second.log)
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.FAILED)
        # the threshold counts operations: one failure, not two
        counts = batch.status_counts()
        self.assertEqual(
            (counts[OperationStatus.FAILED], counts[OperationStatus.CANCELLED]), (1, 1)
        )

    def test_single_upgrade_started_meanwhile_goes_first(self):
        image = self._create_image()
        router, batch, first, second = self._every_batch(image)
        mark_in_progress(first.pk)
        finish_operation(first.pk, OperationStatus.SUCCESS)
        # between the batch's two modems, an operator upgrades the router
        with mock.patch(QUEUE):
            single = start_upgrade(router, image, usb_path="2-1")
        with self.assertRaises(ValidationError):
            start_upgrade(router, image, usb_path="1-1.2")
        self.assertEqual(self._dispatch(), [str(single.pk)])
        second.refresh_from_db()
        self.assertEqual(second.runs_after_id, first.pk)
        mark_in_progress(single.pk)
        finish_operation(single.pk, OperationStatus.SUCCESS)
        self.assertEqual(self._dispatch(), [str(second.pk)])

    def test_cancel_batch_cancels_waiting_modems(self):
        image = self._create_image()
        router, batch, first, second = self._every_batch(image)
        cancelled, refused = cancel_batch(batch)
        self.assertEqual(set(cancelled), {first.pk, second.pk})
        batch.refresh_from_db()
        self.assertEqual(batch.status, OperationStatus.CANCELLED)

    def test_retry_keeps_the_choice_of_modems(self):
        from ..batch import retry_failed

        image = self._create_image()
        router, batch, first, second = self._every_batch(image)
        mark_in_progress(first.pk)
        finish_operation(first.pk, OperationStatus.FAILED, "tool error")
        self._dispatch()
        with mock.patch(QUEUE), self.captureOnCommitCallbacks(execute=True):
            retry = retry_failed(batch)
        self.assertEqual(retry.modems, "every")
        self.assertEqual(
            sorted(retry.operations.values_list("usb_path", flat=True)),
            ["1-1.2", "2-1"],
        )
