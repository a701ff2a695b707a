"""Modem detection against emulated routers (dropbear + busybox + fake modem).

Only the modem and ModemManager are emulated: SSH, the shell, the script
sent on ``sh -s`` and the database are real.
"""

import os
import time
from datetime import timedelta
from unittest import mock

import swapper
from device.router import EmulatedRouter
from django.core.cache import cache
from django.db import connection
from django.test import TestCase, TransactionTestCase
from django.utils import timezone

from .. import detection
from .. import settings as app_settings
from ..base.models import DetectionStatus, ModemChangeSource, OperationStatus
from ..detection import detect_device, detect_devices, fair_order, parse_modem_list
from ..swapper import load_model
from ..upgraders.base import BaseModemUpgrader
from . import (
    FN990A28,
    DeviceModemFirmware,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)

DeviceModemDetection = load_model("DeviceModemDetection")
ModemHistory = load_model("ModemHistory")
DeviceConnection = swapper.load_model("connection", "DeviceConnection")
B020 = "M0R.010000-B020"
B022 = "M0R.010000-B022"
SECOND_MODEM = {"usb_path": "1-1.2", "firmware": B022}


class DetectionMixin(TestModemUpgraderMixin):
    router_options = {}

    def start_router(self, **options):
        router = EmulatedRouter(**dict(self.router_options, **options))
        router.start()
        self.addCleanup(router.stop)
        return router

    def router_device(self, router, organization=None, name=None):
        org = organization or self._get_org()
        # routers on different loopback addresses may share a port: the
        # address and the port together name one
        address = f"{router.host.replace('.', '-')}-{router.port}"
        device = self._create_device(
            organization=org,
            name=name or f"router-{address}",
            mac_address=self._mac(router.host, router.port),
            management_ip=router.host,
        )
        self._create_config(device=device)
        credentials = self._create_credentials(
            organization=org,
            name=f"key-{address}",
            params={
                "username": "root",
                "key": router.private_key,
                "port": router.port,
            },
        )
        self._create_device_connection(device=device, credentials=credentials)
        return device

    @staticmethod
    def _mac(host, port):
        """A locally administered MAC from the loopback address's last two
        bytes and the port: unique per (address, port)."""
        third, fourth = (int(part) for part in host.split(".")[2:])
        return "02:00:{:02x}:{:02x}:{:02x}:{:02x}".format(
            third, fourth, port >> 8, port & 255
        )

    def detection_of(self, device):
        return DeviceModemDetection.objects.get(device=device)


class TestDetectionWithModemManager(DetectionMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.router = self.start_router()
        self.device = self.router_device(self.router)

    def test_modem_detected_with_mmcli(self):
        image = self._create_image(
            build=self._create_build(version=B020, modem_model=FN990A28)
        )
        self.assertEqual(detect_device(self.device), DetectionStatus.OK)
        modem = DeviceModemFirmware.objects.get(device=self.device)
        self.assertEqual(modem.usb_path, "2-1")
        self.assertEqual(modem.modem_manufacturer, "Telit")
        self.assertEqual(modem.modem_model, FN990A28)
        self.assertEqual(modem.modem_firmware_version, B020)
        self.assertEqual(modem.modem_revision, "45.00.010-B020-P0R.001600")
        self.assertEqual(modem.modem_imei, "351234567890123")
        self.assertEqual(modem.detection_status, DetectionStatus.OK)
        self.assertEqual((modem.image, modem.installed), (image, True))
        self.assertFalse(modem.unexplained_change)
        run = self.detection_of(self.device)
        self.assertEqual((run.status, run.modem_count), (DetectionStatus.OK, 1))
        self.assertIsNotNone(run.succeeded_at)
        self.assertLessEqual(run.started_at, run.attempted_at)
        history = ModemHistory.objects.get(device=self.device)
        self.assertEqual(history.source, ModemChangeSource.DETECTION)
        self.assertEqual((history.firmware_version, history.modem), (B020, modem))

    def test_one_ssh_session_no_upload(self):
        detect_device(self.device)
        with open(os.path.join(self.router.root, "dropbear.log")) as f:
            log = f.read()
        self.assertEqual(log.count("auth succeeded"), 1, log)
        # nothing was copied to the router
        self.assertEqual(os.listdir(self.router.tmp_dir), [])

    def test_build_of_another_organization_is_not_linked(self):
        other = self._create_org(name="other", slug="other")
        self._create_image(
            build=self._create_build(
                version=B020,
                category=self._create_category(organization=other),
            )
        )
        detect_device(self.device)
        modem = DeviceModemFirmware.objects.get(device=self.device)
        self.assertIsNone(modem.image)
        self.assertFalse(modem.installed)

    def test_shared_build_of_other_model_is_not_linked(self):
        self._create_image(
            build=self._create_build(
                version=B020,
                modem_model="FN990A40",
                category=self._create_category(organization=None),
            )
        )
        detect_device(self.device)
        self.assertIsNone(DeviceModemFirmware.objects.get(device=self.device).image)

    def test_two_modems(self):
        self.router.set_modem(extra_modems=[SECOND_MODEM])
        detect_device(self.device)
        modems = DeviceModemFirmware.objects.filter(device=self.device)
        self.assertEqual(
            [(m.usb_path, m.modem_firmware_version, m.modem_imei) for m in modems],
            [("1-1.2", B022, "351234567890999"), ("2-1", B020, "351234567890123")],
        )
        self.assertEqual(self.detection_of(self.device).modem_count, 2)
        self.assertEqual(ModemHistory.objects.filter(device=self.device).count(), 2)

    def test_no_modem(self):
        self.router.set_modem(mode="absent")
        self.assertEqual(detect_device(self.device), DetectionStatus.NO_MODEM)
        run = self.detection_of(self.device)
        self.assertEqual(run.reason, "the router lists no modem")
        self.assertIsNotNone(run.succeeded_at)
        self.assertFalse(
            DeviceModemFirmware.objects.filter(device=self.device).exists()
        )

    def test_flashing_mode_keeps_identity(self):
        detect_device(self.device)
        self.router.set_modem(mode="flashing", usb_flashing_id="05c6:9008")
        detect_device(self.device)
        modem = DeviceModemFirmware.objects.get(device=self.device)
        self.assertEqual(modem.detection_status, DetectionStatus.FLASHING)
        self.assertIn("05c6:9008", modem.detection_reason)
        self.assertEqual(modem.modem_firmware_version, B020)
        self.assertIn("flashing mode at 2-1", self.detection_of(self.device).reason)
        self.assertEqual(ModemHistory.objects.count(), 1)

    def test_modem_that_does_not_answer(self):
        self.router.set_fault("silent")
        detect_device(self.device)
        modem = DeviceModemFirmware.objects.get(device=self.device)
        self.assertEqual(modem.detection_status, DetectionStatus.NOT_IDENTIFIED)
        self.assertEqual(ModemHistory.objects.count(), 0)

    def test_unknown_vendor(self):
        self.router.set_modem(
            extra_modems=[
                {
                    "usb_path": "1-1.3",
                    "usb_id": "2c7c:0512",
                    "manufacturer": "Quectel",
                    "model": "EM12",
                    "firmware": "EM12GPAR01A21M4G",
                }
            ]
        )
        detect_device(self.device)
        quectel = DeviceModemFirmware.objects.get(device=self.device, usb_path="1-1.3")
        self.assertEqual(quectel.modem_model, "EM12")
        self.assertEqual(quectel.detection_status, DetectionStatus.UNKNOWN_VENDOR)
        self.assertIn("no upgrader can flash EM12", quectel.detection_reason)
        telit = DeviceModemFirmware.objects.get(device=self.device, usb_path="2-1")
        self.assertEqual(telit.detection_status, DetectionStatus.OK)

    def test_declared_models_of_a_custom_upgrader_count(self):
        """An upgrader's ``supported_models`` makes its modems upgradable
        for detection; a catch-all upgrader (none declared) does not."""
        self.router.set_modem(
            extra_modems=[
                {
                    "usb_path": "1-1.3",
                    "usb_id": "2c7c:0512",
                    "manufacturer": "Quectel",
                    "model": "EM12",
                    "firmware": "EM12GPAR01A21M4G",
                }
            ]
        )
        upgraders = {
            "declared": "openwisp_modem_upgrader.tests.test_detection.EM12Upgrader",
            "catch-all": "openwisp_modem_upgrader.tests.test_detection.AnyUpgrader",
        }
        for name, status in (
            ("catch-all", DetectionStatus.UNKNOWN_VENDOR),
            ("declared", DetectionStatus.OK),
        ):
            with self.subTest(name), mock.patch.dict(
                app_settings.UPGRADERS_MAP, {name: upgraders[name]}
            ):
                detect_device(self.device)
                quectel = DeviceModemFirmware.objects.get(
                    device=self.device, usb_path="1-1.3"
                )
                self.assertEqual(quectel.detection_status, status)

    def test_history_only_on_change(self):
        detect_device(self.device)
        detect_device(self.device)
        detect_device(self.device)
        self.assertEqual(ModemHistory.objects.count(), 1)
        self.router.set_modem(firmware=B022)
        detect_device(self.device)
        self.assertEqual(ModemHistory.objects.count(), 2)
        latest = ModemHistory.objects.first()
        self.assertEqual(latest.firmware_version, B022)

    def test_unexplained_change_is_flagged(self):
        detect_device(self.device)
        self.router.set_modem(imei="359999999999999")
        detect_device(self.device)
        modem = DeviceModemFirmware.objects.get(device=self.device)
        self.assertTrue(modem.unexplained_change)
        self.assertIsNotNone(modem.unexplained_change_at)
        change = ModemHistory.objects.first()
        self.assertTrue(change.unexplained)
        self.assertIsNone(change.operation)

    def test_change_explained_by_an_upgrade(self):
        detect_device(self.device)
        image = self._create_image(
            build=self._create_build(version=B022, modem_model=FN990A28)
        )
        operation = ModemUpgradeOperation.objects.create(
            device=self.device,
            image=image,
            usb_path="2-1",
            status=OperationStatus.SUCCESS,
            flash_started=True,
        )
        self.router.set_modem(firmware=B022)
        detect_device(self.device)
        modem = DeviceModemFirmware.objects.get(device=self.device)
        self.assertFalse(modem.unexplained_change)
        self.assertEqual((modem.image, modem.installed), (image, True))
        change = ModemHistory.objects.first()
        self.assertEqual(change.operation, operation)
        self.assertFalse(change.unexplained)

    def test_removed_modem_is_missing(self):
        self.router.set_modem(extra_modems=[SECOND_MODEM])
        detect_device(self.device)
        self.router.set_modem(extra_modems=[])
        detect_device(self.device)
        gone = DeviceModemFirmware.objects.get(device=self.device, usb_path="1-1.2")
        self.assertEqual(gone.detection_status, DetectionStatus.MISSING)

    def test_row_known_without_path_is_adopted(self):
        DeviceModemFirmware.objects.create(
            device=self.device, modem_model=FN990A28, modem_firmware_version=B020
        )
        detect_device(self.device)
        modem = DeviceModemFirmware.objects.get(device=self.device)
        self.assertEqual(modem.usb_path, "2-1")

    def test_unreachable_router(self):
        self.router.stop()
        self.assertEqual(detect_device(self.device), DetectionStatus.UNREACHABLE)
        run = self.detection_of(self.device)
        self.assertIn("no working SSH connection", run.reason)
        self.assertIsNone(run.succeeded_at)

    def test_garbage_output(self):
        script = detection.modem_info_script()
        with mock.patch.object(
            detection,
            "modem_info_script",
            return_value="echo 'Welcome to OpenWrt'\n" + script,
        ):
            self.assertEqual(detect_device(self.device), DetectionStatus.GARBAGE)
        self.assertIn("not JSON", self.detection_of(self.device).reason)
        self.assertFalse(DeviceModemFirmware.objects.exists())

    def test_failing_script(self):
        with mock.patch.object(
            detection, "modem_info_script", return_value="echo broken >&2; exit 3\n"
        ):
            self.assertEqual(detect_device(self.device), DetectionStatus.ERROR)
        self.assertIn("exited with 3", self.detection_of(self.device).reason)

    def test_timeout(self):
        with mock.patch.object(
            detection, "modem_info_script", return_value="sleep 5\n"
        ), mock.patch.object(app_settings, "DETECTION_TIMEOUT", 1):
            self.assertEqual(detect_device(self.device), DetectionStatus.TIMEOUT)

    def test_connection_working_triggers_detection(self):
        DeviceConnection.objects.filter(device=self.device).update(is_working=False)
        connection = DeviceConnection.objects.get(device=self.device)
        with self.captureOnCommitCallbacks(execute=True):
            self.assertTrue(connection.connect())
        connection.disconnect()
        self.assertEqual(self.detection_of(self.device).status, DetectionStatus.OK)
        self.assertTrue(DeviceModemFirmware.objects.filter(device=self.device).exists())

    def test_connection_already_working_triggers_nothing(self):
        DeviceConnection.objects.filter(device=self.device).update(is_working=True)
        connection = DeviceConnection.objects.get(device=self.device)
        with self.captureOnCommitCallbacks(execute=True):
            self.assertTrue(connection.connect())
        connection.disconnect()
        self.assertFalse(DeviceModemDetection.objects.exists())


class TestOnDemand(TestModemUpgraderMixin, TestCase):
    def test_queue_detection_of_a_queryset(self):
        org_b = self._create_org(name="org b", slug="org-b")
        a1, a2 = (
            self._create_device(name=f"a{n}", mac_address=f"02:00:00:00:00:0{n}")
            for n in (1, 2)
        )
        b1 = self._create_device(
            name="b1", mac_address="02:00:00:00:00:09", organization=org_b
        )
        Device = swapper.load_model("config", "Device")
        with mock.patch(
            "openwisp_modem_upgrader.tasks.detect_modems.delay"
        ) as delay, self.captureOnCommitCallbacks(execute=True):
            queued = detection.queue_detection(Device.objects.order_by("name"))
            delay.assert_not_called()  # only once committed
        self.assertEqual(queued, 3)
        (ids,), _ = delay.call_args
        self.assertEqual(ids, [str(a1.pk), str(b1.pk), str(a2.pk)])


class TestDetectionWithAtCommands(DetectionMixin, TestCase):
    router_options = {"modem_manager": False}

    def test_at_path_two_modems(self):
        router = self.start_router(extra_modems=[SECOND_MODEM])
        device = self.router_device(router)
        self.assertEqual(detect_device(device), DetectionStatus.OK)
        modems = DeviceModemFirmware.objects.filter(device=device)
        self.assertEqual(
            [(m.usb_path, m.modem_model, m.modem_firmware_version) for m in modems],
            [("1-1.2", FN990A28, B022), ("2-1", FN990A28, B020)],
        )
        self.assertEqual(modems[1].modem_imei, "351234567890123")


class TestParsing(TestCase):
    def entry(self, **values):
        entry = {
            "usb_path": "2-1",
            "manufacturer": "Telit",
            "model": FN990A28,
            "revision": "45.00",
            "firmware": B020,
            "imei": "1",
            "ports": {"at": "/dev/ttyUSB2", "diag": "/dev/ttyUSB0"},
            "mode": "normal",
            "source": "mmcli",
            "usb_id": "1bc7:1071",
        }
        entry.update(values)
        return entry

    def test_strict(self):
        import json

        self.assertEqual(len(parse_modem_list(json.dumps([self.entry()]))), 1)
        bad = [
            "",
            "{}",
            json.dumps([self.entry(usb_path="2-1;reboot")]),
            json.dumps([self.entry(usb_path="2-1\n")]),
            json.dumps([self.entry(mode="weird")]),
            json.dumps([self.entry(model="x" * 65)]),
            json.dumps([self.entry(model=7)]),
            json.dumps([self.entry(extra="x")]),
            json.dumps([self.entry(), self.entry()]),
            json.dumps([self.entry(usb_id="zz")]),
        ]
        for output in bad:
            with self.subTest(output=output[:40]):
                with self.assertRaises(detection.GarbageOutput):
                    parse_modem_list(output)

    def test_sweep_is_scheduled(self):
        from celery import current_app

        entries = [
            entry
            for entry in current_app.conf.beat_schedule.values()
            if entry["task"] == "openwisp_modem_upgrader.sweep_modem_detection"
        ]
        self.assertEqual(
            [e["schedule"] for e in entries], [app_settings.DETECTION_SWEEP_SCHEDULE]
        )

    def test_fair_order(self):
        pairs = [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("c1", "C")]
        self.assertEqual(fair_order(pairs), ["a1", "b1", "c1", "a2", "a3"])


class TestSweep(DetectionMixin, TransactionTestCase):
    routers = 10
    bound = 3

    def test_concurrency_bound_and_fairness(self):
        org_a = self._get_org()
        org_b = self._create_org(name="org b", slug="org-b")
        devices = []
        for number in range(self.routers):
            router = self.start_router(host=f"127.0.0.{number + 2}")
            org = org_a if number % 5 else org_b
            devices.append(self.router_device(router, organization=org))
        # recently detected: skipped by the sweep
        DeviceModemDetection.objects.create(
            device=devices[1],
            attempted_at=timezone.now() - timedelta(minutes=1),
            status=DetectionStatus.OK,
        )
        due = detection.due_devices()
        self.assertEqual(len(due), self.routers - 1)
        self.assertNotIn(devices[1].pk, due)
        # org b's two devices are not left until the end
        self.assertEqual(
            {due[0], due[1]} & {devices[0].pk, devices[5].pk}, {devices[0].pk}
        )
        with mock.patch.object(app_settings, "DETECTION_CONCURRENCY", self.bound):
            counts = detection.sweep()
        self.assertEqual(counts, {DetectionStatus.OK: self.routers - 1})
        runs = DeviceModemDetection.objects.exclude(device=devices[1])
        intervals = sorted((r.started_at, r.attempted_at) for r in runs)
        self.assertEqual(len(intervals), self.routers - 1)
        peak = max_overlap(intervals)
        self.assertLessEqual(peak, self.bound)
        if connection.vendor != "sqlite":  # SQLite: one at a time (detection.py)
            self.assertGreater(peak, 1, "detections never ran in parallel")
        # a second sweep finds nothing due
        self.assertEqual(detection.due_devices(), [])

    def test_queryset_detection_is_bounded_too(self):
        routers = [self.start_router(host=f"127.0.0.{n + 20}") for n in range(4)]
        devices = [self.router_device(router) for router in routers]
        with mock.patch.object(app_settings, "DETECTION_CONCURRENCY", 2):
            counts = detect_devices([d.pk for d in devices])
        self.assertEqual(counts, {DetectionStatus.OK: 4})
        intervals = [
            (r.started_at, r.attempted_at) for r in DeviceModemDetection.objects.all()
        ]
        self.assertLessEqual(max_overlap(intervals), 2)


class TestSweepLease(DetectionMixin, TransactionTestCase):
    """One sweep at a time (a lease in the cache), at most a capped number
    of routers per sweep."""

    def setUp(self):
        super().setUp()
        cache.delete(detection.SweepLease.key)

    def test_second_sweep_while_the_lease_is_held_does_nothing(self):
        device = self.router_device(self.start_router())
        running = detection.SweepLease(600)
        self.assertTrue(running.acquire())
        self.addCleanup(running.release)
        self.assertIsNone(detection.sweep())
        self.assertFalse(DeviceModemDetection.objects.exists())
        self.assertEqual(detection.due_devices(), [device.pk])
        # the lease is still the first sweep's
        self.assertTrue(running.renew())

    def test_expired_lease_is_taken_over(self):
        device = self.router_device(self.start_router())
        dead = detection.SweepLease(1)  # its worker died: never renewed
        self.assertTrue(dead.acquire())
        deadline = time.monotonic() + 30
        while cache.get(detection.SweepLease.key) is not None:
            self.assertLess(time.monotonic(), deadline, "the lease never expired")
            time.sleep(0.1)
        self.assertEqual(detection.sweep(), {DetectionStatus.OK: 1})
        self.assertEqual(self.detection_of(device).status, DetectionStatus.OK)
        # released at the end, and the dead worker's token cannot renew it
        self.assertIsNone(cache.get(detection.SweepLease.key))
        self.assertFalse(dead.renew())

    def test_lost_lease_stops_starting_routers(self):
        devices = [
            self.router_device(self.start_router(host=f"127.0.2.{n + 1}"))
            for n in range(3)
        ]
        lease = detection.SweepLease(600)
        self.assertTrue(lease.acquire())
        started = []

        def keep_going():
            started.append(1)
            if len(started) == 2:  # taken over by another sweep meanwhile
                cache.set(detection.SweepLease.key, "another sweep", 600)
            return lease.renew()

        with mock.patch.object(app_settings, "DETECTION_CONCURRENCY", 1):
            counts = detect_devices([d.pk for d in devices], keep_going=keep_going)
        self.assertEqual(counts, {DetectionStatus.OK: 1})
        self.assertEqual(DeviceModemDetection.objects.count(), 1)
        cache.delete(detection.SweepLease.key)

    def test_cap_per_sweep_holds(self):
        devices = [
            self.router_device(self.start_router(host=f"127.0.2.{n + 10}"))
            for n in range(3)
        ]
        with mock.patch.object(app_settings, "DETECTION_SWEEP_MAX_DEVICES", 2):
            self.assertEqual(detection.sweep(), {DetectionStatus.OK: 2})
            self.assertEqual(DeviceModemDetection.objects.count(), 2)
            # the next sweep goes on with the one left
            self.assertEqual(len(detection.due_devices()), 1)
            self.assertEqual(detection.sweep(), {DetectionStatus.OK: 1})
        self.assertEqual(
            set(DeviceModemDetection.objects.values_list("device_id", flat=True)),
            {device.pk for device in devices},
        )

    def test_routers_on_other_addresses_may_share_a_port(self):
        first = self.start_router(host="127.0.3.1")
        second = EmulatedRouter(host="127.0.3.2")
        second.port = first.port  # what the sweep benchmark's routers may get
        second.start()
        self.addCleanup(second.stop)
        devices = [self.router_device(router) for router in (first, second)]
        self.assertEqual(detection.sweep(), {DetectionStatus.OK: 2})
        for device in devices:
            self.assertEqual(self.detection_of(device).status, DetectionStatus.OK)


def max_overlap(intervals):
    events = []
    for start, end in intervals:
        events += [(start, 1), (end, -1)]
    # an end at the same instant as a start frees its slot first
    events.sort(key=lambda event: (event[0], event[1]))
    current = peak = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


class EM12Upgrader(BaseModemUpgrader):
    supported_models = r"EM12(G[A-Z0-9]*)?"


class AnyUpgrader(BaseModemUpgrader):
    pass


class TestCarrierInventory(DetectionMixin, TestCase):
    """SIM and carrier-image readings of detection (emulated router)."""

    def test_sim_swap_writes_history(self):
        from device.modem import SIM_ATT_US

        router = self.start_router()
        device = self.router_device(router)
        detect_device(device)
        modem = DeviceModemFirmware.objects.get(device=device)
        self.assertEqual(
            (modem.sim_state, modem.sim_iccid, modem.sim_imsi),
            ("ready", "8939100012345678901", "222103456789012"),
        )
        self.assertEqual(
            (modem.sim_network, modem.sim_operator), ("22210", "vodafone IT")
        )
        self.assertEqual(
            [image["name"] for image in modem.carrier_images], ["GENERIC", "ATT"]
        )
        self.assertEqual(
            (modem.carrier_image, modem.carrier_selection), ("GENERIC", "auto")
        )
        router.swap_sim(SIM_ATT_US)
        detect_device(device)
        detect_device(device)  # nothing changed: no further row
        modem.refresh_from_db()
        self.assertEqual((modem.sim_network, modem.carrier_image), ("310410", "ATT"))
        self.assertFalse(modem.unexplained_change)
        history = list(
            ModemHistory.objects.filter(device=device).order_by("detected_at")
        )
        self.assertEqual(len(history), 2)
        self.assertEqual(
            (history[1].sim_iccid, history[1].sim_network, history[1].carrier_image),
            (SIM_ATT_US["iccid"], "310410", "ATT"),
        )
        self.assertFalse(history[1].unexplained)
        router.swap_sim(None)
        detect_device(device)
        modem.refresh_from_db()
        self.assertEqual((modem.sim_state, modem.sim_network), ("absent", ""))
        self.assertEqual(ModemHistory.objects.filter(device=device).count(), 3)

    def test_carrier_output_is_strict(self):
        import json

        entry = TestParsing.entry(None)
        good = {
            "sim": "ready",
            "iccid": "8939100012345678901",
            "imsi": "222103456789012",
            "operator": "vodafone IT",
            "images": [{"index": "1", "name": "GENERIC", "version": "x"}],
            "active": "1",
            "selection": "auto",
        }
        parse_modem_list(json.dumps([dict(entry, carrier=good)]))
        for bad in (
            dict(good, sim="maybe"),
            dict(good, iccid="89;reboot"),
            dict(good, imsi="2221034567890123"),
            dict(good, active="1 2"),
            dict(good, images=[{"index": "1", "name": ""}]),
            dict(good, images=[dict(index="1", name="x\n", version="")]),
            dict(good, images=[good["images"][0]] * 9),
            dict(good, extra=""),
            "ready",
        ):
            with self.subTest(bad=str(bad)[:60]):
                with self.assertRaises(detection.GarbageOutput):
                    parse_modem_list(json.dumps([dict(entry, carrier=bad)]))
