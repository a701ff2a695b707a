"""The mass-upgrade preview as one pass of joins: the same reasons as the
rules of ``compatibility.py``, whatever rows the joins repeat, and the same
number of queries whatever the fleet (``benchmarks/mass_upgrade_preview.py``
times it at 10,000 and 100,000 devices)."""

from unittest import mock

import swapper
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from .. import settings as app_settings
from ..base.models import DetectionStatus, OperationStatus
from ..batch import ExclusionReason, preview_batch, preview_counts, preview_page
from ..estimate import expected_duration, format_duration
from ..swapper import load_model
from . import (
    FN990A28,
    NEW_VERSION,
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
    ModemUpgradeOperation,
)
from .test_batch import BatchTestMixin

DeviceModemDetection = load_model("DeviceModemDetection")
Device = swapper.load_model("config", "Device")
ATT = "310410"


class TestPreviewJoins(BatchTestMixin, TestCase):
    def _modem(self, device, usb_path, model=FN990A28, version="M0R.010000-B022"):
        return DeviceModemFirmware.objects.create(
            device=device,
            usb_path=usb_path,
            modem_model=model,
            modem_firmware_version=version,
            modem_imei=f"35{abs(hash((device.pk, usb_path))) % 10**13:013d}",
        )

    def _second_connection(self, device, enabled=True):
        credentials = self._create_credentials(
            organization=device.organization, name=f"second {device.name}"
        )
        return self._create_device_connection(
            device=device, credentials=credentials, enabled=enabled
        )

    def test_reasons_and_counts_where_joins_repeat_rows(self):
        image = self._create_image()
        (
            two_modems,
            history,
            waiting,
            mixed,
            deactivated,
            failed_detection,
            one_enabled,
        ) = self._devices(7)
        # two modems that may be flashed (one of unknown model), reached
        # through two enabled connections: counted once each
        DeviceModemFirmware.objects.update(usb_path="2-1")
        self._modem(two_modems, "1-1", model="")
        self._second_connection(two_modems)
        # finished upgrades are history, not a running upgrade
        for status in (OperationStatus.SUCCESS, OperationStatus.FAILED):
            ModemUpgradeOperation.objects.create(
                device=history, image=image, status=status
            )
        # the next modem's upgrade, waiting for a finished one, runs
        first = ModemUpgradeOperation.objects.create(
            device=waiting, image=image, status=OperationStatus.SUCCESS
        )
        ModemUpgradeOperation.objects.create(
            device=waiting, image=image, runs_after=first, usb_path="1-1"
        )
        # one modem on the version, the other another model: up to date
        DeviceModemFirmware.objects.filter(device=mixed).update(
            modem_firmware_version=NEW_VERSION
        )
        self._modem(mixed, "1-1", model="FN990A40")
        # the first rule that applies wins
        deactivated.deactivate()
        ModemUpgradeOperation.objects.create(device=deactivated, image=image)
        # a detection that never succeeded: not detected, not "no modem"
        DeviceModemFirmware.objects.filter(device=failed_detection).delete()
        DeviceModemDetection.objects.create(
            device=failed_detection,
            attempted_at=timezone.now(),
            status=DetectionStatus.UNREACHABLE,
        )
        # a disabled connection beside an enabled one
        self._second_connection(one_enabled, enabled=False)
        batch = self._batch(image.build)
        preview = preview_batch(batch)
        eligible = {d.pk: d for d in preview["devices"]}
        excluded = {d.name: d.exclusion_reason for d in preview["excluded"]}
        self.assertEqual(set(eligible), {two_modems.pk, history.pk, one_enabled.pk})
        self.assertEqual(
            excluded,
            {
                waiting.name: ExclusionReason.RUNNING,
                mixed.name: ExclusionReason.UP_TO_DATE,
                deactivated.name: ExclusionReason.DEACTIVATED,
                failed_detection.name: ExclusionReason.NOT_DETECTED,
            },
        )
        router = eligible[two_modems.pk]
        self.assertEqual((router.target_usb_path, router.matching_modems), ("1-1", 2))
        self.assertEqual(
            router.target_imei,
            DeviceModemFirmware.objects.get(
                device=two_modems, usb_path="1-1"
            ).modem_imei,
        )
        self.assertEqual(eligible[history.pk].matching_modems, 1)
        self.assertEqual(
            preview_counts(batch),
            {
                "devices_count": 3,
                "excluded_count": 4,
                "not_detected_count": 1,
                "multi_modem_count": 1,
                "modems_count": 3,
            },
        )
        batch.modems = "every"
        self.assertEqual(preview_counts(batch)["modems_count"], 4)

    def test_shown_modem_prefers_the_target(self):
        image = self._create_image()
        (router,) = self._devices(1)
        DeviceModemFirmware.objects.filter(device=router).update(
            modem_firmware_version=NEW_VERSION, usb_path="1-1"
        )
        self._modem(router, "3-1", model="FN990A40", version="X")
        self._modem(router, "2-1")
        row = preview_batch(self._batch(image.build))["devices"].get()
        self.assertEqual(
            (row.modem_model, row.modem_firmware_version, row.target_usb_path),
            (FN990A28, "M0R.010000-B022", "2-1"),
        )


class TestSummaryFollowsTheRules(BatchTestMixin, TestCase):
    """The page's counts and lists (one query, ``SUMMARY_SQL``) exclude the
    same devices, for the same reasons, as ``annotate_preview`` does row by
    row: every reason, and the rows that could repeat a modem."""

    def _fleet(self, start):
        """One device per reason, and two eligible ones whose joins could
        repeat rows: ``{name: expected reason}``."""
        image = self.image
        (
            eligible,
            repeated,
            deactivated,
            running,
            no_modem,
            not_detected,
            unreachable,
            other_model,
            other_carrier,
            up_to_date,
            board,
            no_connection,
        ) = devices = self._devices(12, start=start, model="Router A")
        DeviceModemFirmware.objects.filter(device__in=devices).update(sim_network=ATT)
        # two matching modems, two enabled connections, finished upgrades
        DeviceModemFirmware.objects.create(
            device=repeated,
            usb_path="1-1",
            modem_model=FN990A28,
            modem_firmware_version="M0R.010000-B022",
            sim_network=ATT,
        )
        self._create_device_connection(
            device=repeated,
            credentials=self._create_credentials(
                organization=repeated.organization, name=f"second {repeated.name}"
            ),
        )
        for status in (OperationStatus.SUCCESS, OperationStatus.FAILED):
            ModemUpgradeOperation.objects.create(
                device=repeated, image=image, status=status
            )
        deactivated.deactivate()
        # a router's upgrade and the next modem's, waiting for it
        first = ModemUpgradeOperation.objects.create(device=running, image=image)
        ModemUpgradeOperation.objects.create(
            device=running, image=image, runs_after=first, usb_path="1-1"
        )
        now = timezone.now()
        for device, status, succeeded in (
            (no_modem, DetectionStatus.NO_MODEM, now),
            (unreachable, DetectionStatus.UNREACHABLE, None),
        ):
            DeviceModemDetection.objects.create(
                device=device, attempted_at=now, succeeded_at=succeeded, status=status
            )
        DeviceModemFirmware.objects.filter(
            device__in=[no_modem, not_detected, unreachable]
        ).delete()
        DeviceModemFirmware.objects.filter(device=other_model).update(
            modem_model="FN990A40"
        )
        DeviceModemFirmware.objects.filter(device=other_carrier).update(
            sim_network="22210"
        )
        DeviceModemFirmware.objects.filter(device=up_to_date).update(
            modem_firmware_version=NEW_VERSION
        )
        board.model = "Router B"
        board.save()
        no_connection.deviceconnection_set.update(enabled=False)
        return {
            eligible.name: None,
            repeated.name: None,
            deactivated.name: ExclusionReason.DEACTIVATED,
            running.name: ExclusionReason.RUNNING,
            no_modem.name: ExclusionReason.NO_MODEM,
            not_detected.name: ExclusionReason.NOT_DETECTED,
            unreachable.name: ExclusionReason.NOT_DETECTED,
            other_model.name: ExclusionReason.OTHER_MODEL,
            other_carrier.name: ExclusionReason.OTHER_CARRIER,
            up_to_date.name: ExclusionReason.UP_TO_DATE,
            board.name: ExclusionReason.BOARD,
            no_connection.name: ExclusionReason.NO_CONNECTION,
        }

    def _check(self, batch, expected):
        rows = preview_batch(batch)
        reasons = {
            device.name: device.exclusion_reason
            for device in [*rows["devices"], *rows["excluded"]]
        }
        self.assertEqual(reasons, expected)
        eligible = [name for name, reason in expected.items() if reason is None]
        excluded = [name for name, reason in expected.items() if reason]
        fields = ("pk", "name", "exclusion_reason")
        counts, shown, shown_excluded = preview_page(batch, fields, 100)
        self.assertEqual([row["name"] for row in shown], sorted(eligible))
        self.assertEqual(
            [(row["name"], row["exclusion_reason"]) for row in shown_excluded],
            [(name, expected[name]) for name in sorted(excluded)],
        )
        return counts

    def test_every_reason_at_two_fleet_sizes(self):
        self.image = self._create_image(
            boards=["Router A"],
            build=self._create_build(carriers="310-410", version=NEW_VERSION),
        )
        batch = self._batch(self.image.build)
        expected = self._fleet(0)
        counts = self._check(batch, expected)
        # the repeated router's two modems count once each
        self.assertEqual(
            counts,
            {
                "devices_count": 2,
                "excluded_count": 10,
                "not_detected_count": 2,
                "multi_modem_count": 1,
                "modems_count": 2,
            },
        )
        batch.modems = "every"
        self.assertEqual(preview_counts(batch)["modems_count"], 3)
        batch.modems = "first"
        expected.update(self._fleet(12))
        counts = self._check(batch, expected)
        self.assertEqual((counts["devices_count"], counts["excluded_count"]), (4, 20))
        self.assertEqual(counts["not_detected_count"], 4)
        self.assertEqual(counts["multi_modem_count"], 2)

    def test_filters_apply_to_every_part(self):
        self.image = self._create_image(
            boards=["Router A"],
            build=self._create_build(carriers="310-410", version=NEW_VERSION),
        )
        expected = self._fleet(0)
        names = ["router-00001", "router-00003", "router-00004", "router-00011"]
        chosen = Device.objects.filter(name__in=names)
        batch = self._batch(
            self.image.build,
            device_ids=[str(pk) for pk in chosen.values_list("pk", flat=True)],
        )
        counts = self._check(batch, {name: expected[name] for name in names})
        self.assertEqual((counts["devices_count"], counts["excluded_count"]), (1, 3))
        self.assertEqual(counts["not_detected_count"], 0)


class TestPreviewQueries(BatchTestMixin, TestCase):
    """The preview's SQL queries do not grow with the fleet."""

    def _queries(self, url, params):
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(url, params)
        self.assertEqual(response.status_code, 200)
        return len(queries), response

    def _mixed_fleet(self, start, count, image):
        devices = self._devices(count, start=start)
        # an excluded one of each of a few kinds, shown with its reason
        ModemUpgradeOperation.objects.create(device=devices[0], image=image)
        DeviceModemFirmware.objects.filter(device=devices[1]).delete()
        self._modem_twice(devices[2])

    def _modem_twice(self, device):
        DeviceModemFirmware.objects.create(
            device=device,
            usb_path="1-1",
            modem_model=FN990A28,
            modem_firmware_version="M0R.010000-B022",
        )

    def test_queries_constant_in_fleet_size(self):
        image = self._create_image()
        self.client.force_login(self._get_admin())
        params = {"organization": str(self._get_org().pk)}
        api = reverse("modem_upgrader:api_build_upgrade", args=[image.build.pk])
        admin = reverse("admin:modem_upgrader_mass_upgrade", args=[image.build.pk])
        self._mixed_fleet(0, 4, image)
        # the admin caches the user's notification count on the first page
        self.client.get(admin, params)
        small = {url: self._queries(url, params) for url in (api, admin)}
        self._mixed_fleet(4, 12, image)
        large = {url: self._queries(url, params) for url in (api, admin)}
        self.assertEqual(small[api][1].json()["devices_count"], 2)
        self.assertEqual(large[api][1].json()["devices_count"], 2 + 10)
        self.assertEqual(large[api][1].json()["excluded_count"], 2 + 2)
        for url in (api, admin):
            with self.subTest(url=url):
                self.assertEqual(small[url][0], large[url][0])

    def test_admin_page_does_not_count_the_build_s_devices(self):
        # the build list's figure (devices on the version) scans the fleet
        image = self._create_image()
        self._devices(2)
        self.client.force_login(self._get_admin())
        url = reverse("admin:modem_upgrader_mass_upgrade", args=[image.build.pk])
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(url, {"organization": str(self._get_org().pk)})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.context["devices_count"], 2)
        self.assertFalse([q["sql"] for q in queries if "running_count" in q["sql"]])


class TestPreviewPage(BatchTestMixin, TestCase):
    """The rows a preview lists are bounded; its counts are of the whole
    fleet, from the same evaluation of it (``preview_page``)."""

    fields = ("pk", "name", "target_usb_path", "exclusion_reason")

    def _fleet(self):
        image = self._create_image()
        devices = self._devices(7)
        # three excluded, with different reasons, among four eligible
        ModemUpgradeOperation.objects.create(device=devices[1], image=image)
        DeviceModemFirmware.objects.filter(device=devices[3]).delete()
        DeviceModemFirmware.objects.filter(device=devices[5]).update(
            modem_firmware_version=NEW_VERSION
        )
        return image, devices

    def test_rows_bounded_counts_of_the_whole_fleet(self):
        image, devices = self._fleet()
        batch = self._batch(image.build)
        with CaptureQueriesContext(connection) as queries:
            counts, eligible, excluded = preview_page(batch, self.fields, 2)
        # the images, the fleet once (counts and shown ids), the shown rows
        self.assertEqual(len(queries), 3)
        self.assertEqual(counts, preview_counts(batch))
        self.assertEqual(
            counts,
            {
                "devices_count": 4,
                "excluded_count": 3,
                "not_detected_count": 1,
                "multi_modem_count": 0,
                "modems_count": 4,
            },
        )
        # the first by name of each list, with their own values
        self.assertEqual(
            [row["name"] for row in eligible], [devices[0].name, devices[2].name]
        )
        self.assertEqual(
            [(row["name"], row["exclusion_reason"]) for row in excluded],
            [
                (devices[1].name, ExclusionReason.RUNNING),
                (devices[3].name, ExclusionReason.NOT_DETECTED),
            ],
        )
        self.assertEqual(
            [row["target_usb_path"] for row in eligible],
            [
                DeviceModemFirmware.objects.get(device=device).usb_path
                for device in (devices[0], devices[2])
            ],
        )
        _, eligible, excluded = preview_page(batch, self.fields, 10)
        self.assertEqual((len(eligible), len(excluded)), (4, 3))
        counts, eligible, excluded = preview_page(batch, self.fields, 0)
        self.assertEqual((eligible, excluded, counts["devices_count"]), ([], [], 4))

    def test_api_limit_bounds_the_lists_not_the_counts(self):
        image, devices = self._fleet()
        self.client.force_login(self._get_admin())
        response = self.client.get(
            reverse("modem_upgrader:api_build_upgrade", args=[image.build.pk]),
            {"organization": str(self._get_org().pk), "limit": 1},
        )
        self.assertEqual(response.status_code, 200, response.content)
        data = response.json()
        self.assertEqual((data["devices_count"], data["excluded_count"]), (4, 3))
        self.assertEqual([d["name"] for d in data["devices"]], [devices[0].name])
        self.assertEqual([d["name"] for d in data["excluded"]], [devices[1].name])


class TestExpectedDuration(BatchTestMixin, TestCase):
    """The preview says what its limits imply (``estimate.py``)."""

    def _estimate(self, waves, modems=None, image_size=0, **batch):
        batch = ModemBatchUpgradeOperation(**batch)
        return expected_duration(batch, waves, modems or sum(waves), image_size)

    @mock.patch.object(app_settings, "ESTIMATE_FLASH_SECONDS", 600)
    @mock.patch.object(app_settings, "ESTIMATE_LINK_RATE", 10_000_000)
    @mock.patch.object(app_settings, "MAX_CONCURRENT_UPGRADES", 500)
    def test_ten_thousand_routers_at_the_default_and_a_higher_limit(self):
        # issue 20's figures: 10-minute flashes, 10,000 routers
        slow = self._estimate([10_000], max_concurrent=50)
        self.assertEqual((slow["seconds"], slow["in_flight"]), (200 * 600, 50))
        self.assertEqual(slow["limited_by"], "batch")
        self.assertEqual(format_duration(slow["seconds"]), "~33 h")
        fast = self._estimate([10_000], max_concurrent=1000)
        self.assertEqual((fast["in_flight"], fast["limited_by"]), (500, "installation"))
        self.assertEqual(format_duration(fast["seconds"]), "~3.3 h")
        # 100 MiB at 10 Mbit/s: 84 s of transfer before each flash
        big = self._estimate([10_000], max_concurrent=50, image_size=100 * 2**20)
        self.assertEqual(big["transfer_seconds"], 84)
        self.assertEqual(big["seconds"], round(200 * (600 + 100 * 2**20 * 8 / 1e7)))

    @mock.patch.object(app_settings, "ESTIMATE_FLASH_SECONDS", 600)
    def test_waves_and_further_modems(self):
        # a canary of 10 is one round of its own, then 2 rounds of 50
        waves = self._estimate([10, 100], max_concurrent=50)
        self.assertEqual(waves["seconds"], 3 * 600)
        # every router's two modems, one after the other
        twice = self._estimate([100], modems=200, max_concurrent=50)
        self.assertEqual(twice["seconds"], 2 * 2 * 600)
        self.assertEqual(self._estimate([])["seconds"], 0)
        self.assertEqual(format_duration(25 * 60), "~25 min")

    def test_shown_by_the_api_and_the_admin_preview(self):
        image = self._create_image()
        self._devices(3)
        self.client.force_login(self._get_admin())
        params = {"organization": str(self._get_org().pk), "max_concurrent": 2}
        response = self.client.get(
            reverse("modem_upgrader:api_build_upgrade", args=[image.build.pk]), params
        )
        self.assertEqual(response.status_code, 200, response.content)
        estimate = response.json()["expected_duration"]
        # 3 routers, 2 at once: 2 rounds of (transfer + flash)
        per_upgrade = image.size * 8 / app_settings.ESTIMATE_LINK_RATE
        per_upgrade += app_settings.ESTIMATE_FLASH_SECONDS
        self.assertEqual(estimate["seconds"], round(2 * per_upgrade))
        self.assertEqual(
            (estimate["in_flight"], estimate["image_size"]), (2, image.size)
        )
        self.assertEqual(estimate["text"], format_duration(estimate["seconds"]))
        response = self.client.get(
            reverse("admin:modem_upgrader_mass_upgrade", args=[image.build.pk]), params
        )
        self.assertContains(
            response, f"At these limits this mass upgrade takes {estimate['text']}"
        )
        self.assertContains(response, "2 upgrades at once")
