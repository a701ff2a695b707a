"""SIM networks and carrier images: the catalogue's carrier targets, the
preview's exclusion, compliance per (model, carrier) and the report of
modems whose active carrier image does not suit their SIM."""

from device.modem import SIM_ATT_US
from django.core.exceptions import ValidationError
from django.test import TestCase

from ..batch import preview_batch
from ..carriers import mcc_mnc, parse_carriers
from ..compatibility import ExclusionReason
from ..detection import detect_device
from ..inventory import annotate_newest, carrier_image_mismatches
from . import (
    FN990A28,
    NEW_VERSION,
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)
from .test_detection import DetectionMixin

ATT = "310410"
VODAFONE_IT = "22210"


class TestCarrierRules(TestCase):
    def test_mcc_mnc_from_imsi(self):
        self.assertEqual(mcc_mnc("222103456789012"), "22210")
        self.assertEqual(mcc_mnc("310410123456789"), "310410")
        self.assertEqual(mcc_mnc(""), "")
        self.assertEqual(mcc_mnc("31041x"), "")

    def test_parse_carriers(self):
        self.assertEqual(parse_carriers("310-410, 22210 310410"), ["22210", "310410"])
        self.assertEqual(parse_carriers("generic"), [])
        self.assertEqual(parse_carriers(" "), [])
        for bad in ("310", "ATT", "310-410;reboot", "3104100"):
            with self.subTest(bad=bad), self.assertRaises(ValidationError):
                parse_carriers(bad)


class TestCarrierCatalogue(TestModemUpgraderMixin, TestCase):
    def _modem_device(self, name, network, **kwargs):
        device = self._create_modem_device(
            name=name, mac_address=f"00:11:22:33:44:{len(name):02x}", **kwargs
        )
        DeviceModemFirmware.objects.filter(device=device).update(sim_network=network)
        return device

    def test_bad_carriers_are_refused_with_nothing_saved(self):
        with self.assertRaises(ValidationError) as caught:
            self._create_build(carriers="310-410, AT&T")
        self.assertIn("carriers", caught.exception.message_dict)
        self.assertFalse(type(self)._build_model().objects.exists())

    @staticmethod
    def _build_model():
        from ..swapper import load_model

        return load_model("ModemBuild")

    def test_preview_excludes_another_carrier_with_its_reason(self):
        image = self._create_image(build=self._create_build(carriers="310-410"))
        att = self._modem_device("att", ATT)
        vodafone = self._modem_device("vodafone", VODAFONE_IT)
        unknown = self._modem_device("no-sim", "")
        batch = ModemBatchUpgradeOperation(
            build=image.build, organization=self._get_org()
        )
        with self.assertNumQueries(3):
            preview = preview_batch(batch)
            eligible = [d.pk for d in preview["devices"]]
            excluded = {d.pk: d.exclusion_reason for d in preview["excluded"]}
        self.assertEqual(eligible, [att.pk])
        self.assertEqual(
            excluded,
            {
                vodafone.pk: ExclusionReason.OTHER_CARRIER,
                unknown.pk: ExclusionReason.OTHER_CARRIER,
            },
        )
        # a generic build (the existing reasons unchanged) takes them all
        generic = self._create_image(
            build=self._create_build(
                version="M0R.010200-B030", category=image.build.category
            )
        )
        batch.build = generic.build
        self.assertEqual(preview_batch(batch)["devices"].count(), 3)

    def test_single_upgrade_refuses_another_carrier(self):
        image = self._create_image(build=self._create_build(carriers="310-410"))
        vodafone = self._modem_device("vodafone", VODAFONE_IT)
        operation = ModemUpgradeOperation(device=vodafone, image=image)
        with self.assertRaises(ValidationError) as caught:
            operation.full_clean()
        self.assertIn("310410", str(caught.exception))
        att = self._modem_device("att", ATT)
        ModemUpgradeOperation(device=att, image=image).full_clean()

    def test_newest_build_per_model_and_carrier(self):
        category = self._create_category()
        self._create_build(category=category, version="M0R.010100-B024")
        self._create_build(
            category=category, version="M0R.010300-B040", carriers="310-410"
        )
        self._modem_device("att", ATT)
        self._modem_device("vodafone", VODAFONE_IT)
        newest = dict(
            annotate_newest(DeviceModemFirmware.objects).values_list(
                "device__name", "newest_version"
            )
        )
        self.assertEqual(
            newest, {"att": "M0R.010300-B040", "vodafone": "M0R.010100-B024"}
        )
        self.assertEqual(FN990A28, self._build_model().objects.first().modem_model)
        self.assertNotEqual(newest["vodafone"], NEW_VERSION + "x")

    def test_carrier_image_report(self):
        images = [
            {"index": "1", "name": "GENERIC", "version": "a"},
            {"index": "2", "name": "ATT", "version": "b"},
        ]
        rows = {
            "att-on-att": (ATT, "ATT"),
            "att-on-generic": (ATT, "GENERIC"),
            "vodafone-on-att": (VODAFONE_IT, "ATT"),
            "vodafone-on-generic": (VODAFONE_IT, "GENERIC"),
        }
        for name, (network, active) in rows.items():
            device = self._modem_device(name, network)
            DeviceModemFirmware.objects.filter(device=device).update(
                carrier_images=images, carrier_image=active
            )
        with self.assertNumQueries(1):
            report = carrier_image_mismatches()
        self.assertEqual(
            [row["device_name"] for row in report],
            ["att-on-generic", "vodafone-on-att"],
        )
        self.assertIn("ATT", report[0]["reason"])
        self.assertEqual(carrier_image_mismatches(organization_ids=[]), [])


class TestCarrierCompliance(TestModemUpgraderMixin, TestCase):
    def test_rows_per_model_and_carrier_and_mismatch_api(self):
        from django.urls import reverse

        from ..inventory import compliance_table

        category = self._create_category()
        self._create_build(category=category, version="M0R.010100-B024")
        self._create_build(
            category=category, version="M0R.010300-B040", carriers="310-410"
        )
        for name, network in (("att", ATT), ("vodafone", VODAFONE_IT)):
            device = self._create_modem_device(
                name=name, mac_address=f"00:11:22:33:44:{len(name):02x}"
            )
            DeviceModemFirmware.objects.filter(device=device).update(
                sim_network=network,
                carrier_images=[{"index": "1", "name": "GENERIC", "version": "x"}],
                carrier_image="GENERIC",
            )
        rows = {
            row["carrier"]: (row["devices"], row["newest_versions"], row["behind"])
            for row in compliance_table([self._get_org().pk])
        }
        self.assertEqual(
            rows,
            {
                ATT: (1, ["M0R.010300-B040"], 1),
                VODAFONE_IT: (1, ["M0R.010100-B024"], 1),
            },
        )
        # the report over the REST API: organization isolation, one row
        # per mismatch (no stored image for AT&T here: none)
        self.client.force_login(
            self._create_administrator(organizations=[self._get_org()])
        )
        url = reverse("modem_upgrader:api_carrier_image_mismatch")
        self.assertEqual(self.client.get(url).json(), [])
        DeviceModemFirmware.objects.filter(sim_network=ATT).update(
            carrier_images=[
                {"index": "1", "name": "GENERIC", "version": "x"},
                {"index": "2", "name": "ATT", "version": "y"},
            ]
        )
        (row,) = self.client.get(url).json()
        self.assertEqual((row["device_name"], row["sim_network"]), ("att", ATT))


class TestCarrierOnEmulatedRouters(DetectionMixin, TestCase):
    def test_detected_sims_decide_the_preview(self):
        image = self._create_image(
            build=self._create_build(carriers="310-410", version=NEW_VERSION)
        )
        routers = [self.start_router(), self.start_router()]
        routers[1].swap_sim(SIM_ATT_US)
        devices = [self.router_device(router) for router in routers]
        for device in devices:
            detect_device(device)
        batch = ModemBatchUpgradeOperation(
            build=image.build, organization=self._get_org()
        )
        preview = preview_batch(batch)
        reasons = {
            d.pk: d.exclusion_reason
            for d in [*preview["devices"], *preview["excluded"]]
        }
        self.assertEqual(
            reasons,
            {devices[0].pk: ExclusionReason.OTHER_CARRIER, devices[1].pk: None},
        )


class TestOlderScript(TestModemUpgraderMixin, TestCase):
    def test_entry_without_carrier_keeps_the_last_reading(self):
        from ..detection import record_modems
        from ..statuses import ModemChangeSource
        from .test_detection import TestParsing

        device = self._create_device()
        entry = TestParsing.entry(None)
        carrier = {
            "sim": "ready",
            "iccid": "8939100012345678901",
            "imsi": "222103456789012",
            "operator": "vodafone IT",
            "images": [],
            "active": "",
            "selection": "",
        }
        record_modems(
            device, [dict(entry, carrier=carrier)], ModemChangeSource.DETECTION
        )
        record_modems(device, [entry], ModemChangeSource.DETECTION)
        modem = DeviceModemFirmware.objects.get(device=device)
        self.assertEqual((modem.sim_network, modem.sim_state), (VODAFONE_IT, "ready"))
        self.assertEqual(modem.history.count(), 1)
