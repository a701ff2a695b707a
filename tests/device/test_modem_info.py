"""modem-info.sh: every modem of the router, ModemManager and AT paths,
absent and flashing modems."""

import json
import os

from openwisp_modem_upgrader.device_contract import (
    MODEM_KEYS,
    OPTIONAL_MODEM_KEYS,
    parse_modem_list,
)

from .helpers import MODEM_INFO, RouterTestCase
from .modem import SIM_ATT_US

SECOND_MODEM = {"usb_path": "1-1.2", "firmware": "M0R.010000-B022"}


class ModemInfoTestCase(RouterTestCase):
    def modems(self):
        result = self.router.run([MODEM_INFO])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.count("\n"), 1, result.stdout)
        modems = json.loads(result.stdout)
        self.assertIsInstance(modems, list)
        return modems

    def info(self):
        modems = self.modems()
        self.assertEqual(len(modems), 1, modems)
        return modems[0]


class TestWithModemManager(ModemInfoTestCase):
    def test_normal_modem(self):
        info = self.info()
        info.pop("carrier")  # TestSimAndCarrierImages
        self.assertEqual(
            info,
            {
                "usb_path": "2-1",
                "manufacturer": "Telit",
                "model": "FN990A28",
                "revision": "45.00.010-B020-P0R.001600",
                "firmware": "M0R.010000-B020",
                "imei": "351234567890123",
                "ports": {"at": "/dev/ttyUSB2", "diag": "/dev/ttyUSB0"},
                "mode": "normal",
                "source": "mmcli",
                "usb_id": "1bc7:1071",
            },
        )

    def test_output_is_the_servers_modem_info_contract(self):
        result = self.router.run([MODEM_INFO])
        modems = parse_modem_list(result.stdout)
        self.assertEqual(
            [set(modem) for modem in modems], [MODEM_KEYS | OPTIONAL_MODEM_KEYS]
        )

    def test_started_by_relative_name(self):
        result = self.router.run(["modem-info.sh"], cwd=os.path.dirname(MODEM_INFO))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout)[0]["model"], "FN990A28")

    def test_absent(self):
        self.router.set_modem(mode="absent")
        self.assertEqual(self.modems(), [])

    def test_flashing_mode(self):
        for usb_id in ("1bc7:9010", "05c6:9008", "18d1:d00d"):
            with self.subTest(usb_id=usb_id):
                self.router.set_modem(mode="flashing", usb_flashing_id=usb_id)
                info = self.info()
                self.assertEqual(info["mode"], "flashing")
                self.assertEqual(info["usb_id"], usb_id)
                self.assertEqual(info["usb_path"], "2-1")
                self.assertEqual(info["ports"]["diag"], "/dev/ttyUSB0")
                self.assertEqual(info["model"], "")

    def test_json_is_escaped(self):
        self.router.set_modem(manufacturer='Tel"it\\ x')
        self.assertEqual(self.info()["manufacturer"], 'Tel"it\\ x')

    def test_two_modems(self):
        self.router.set_modem(extra_modems=[SECOND_MODEM])
        first, second = self.modems()
        # sorted by USB path
        self.assertEqual(first["usb_path"], "1-1.2")
        self.assertEqual(first["firmware"], "M0R.010000-B022")
        self.assertEqual(first["imei"], "351234567890999")
        self.assertEqual(first["ports"], {"at": "/dev/ttyUSB6", "diag": "/dev/ttyUSB4"})
        self.assertEqual(first["source"], "mmcli")
        self.assertEqual(second["usb_path"], "2-1")
        self.assertEqual(second["firmware"], "M0R.010000-B020")
        self.assertEqual(second["imei"], "351234567890123")

    def test_one_of_two_modems_flashing(self):
        self.router.set_modem(
            extra_modems=[dict(SECOND_MODEM, mode="flashing", usb_id="05c6:9008")]
        )
        first, second = self.modems()
        self.assertEqual((first["usb_path"], first["mode"]), ("1-1.2", "flashing"))
        self.assertEqual(first["model"], "")
        self.assertEqual((second["mode"], second["model"]), ("normal", "FN990A28"))

    def test_other_vendor_is_listed(self):
        quectel = {
            "usb_path": "1-1.3",
            "usb_id": "2c7c:0512",
            "manufacturer": "Quectel",
            "model": "EM12",
            "firmware": "EM12GPAR01A21M4G",
            "revision": "EM12GPAR01A21M4G",
        }
        self.router.set_modem(extra_modems=[quectel])
        first, _ = self.modems()
        self.assertEqual((first["manufacturer"], first["model"]), ("Quectel", "EM12"))


class TestWithAtCommands(ModemInfoTestCase):
    router_options = {"modem_manager": False}

    def test_at_path(self):
        info = self.info()
        self.assertEqual(info["source"], "at")
        self.assertEqual(info["model"], "FN990A28")
        self.assertEqual(info["manufacturer"], "Telit")
        self.assertEqual(info["imei"], "351234567890123")
        self.assertEqual(info["revision"], "45.00.010-B020-P0R.001600")
        self.assertEqual(info["firmware"], "M0R.010000-B020")

    def test_two_modems_at_path(self):
        self.router.set_modem(extra_modems=[SECOND_MODEM])
        first, second = self.modems()
        self.assertEqual((first["source"], second["source"]), ("at", "at"))
        self.assertEqual(first["firmware"], "M0R.010000-B022")
        self.assertEqual(first["imei"], "351234567890999")
        self.assertEqual(second["firmware"], "M0R.010000-B020")

    def test_cgmr_fallback_without_swpkgv(self):
        self.router.set_fault("no-swpkgv")
        info = self.info()
        self.assertEqual(info["revision"], "45.00.010-B020-P0R.001600")
        self.assertEqual(info["firmware"], "")

    def test_silent_modem(self):
        self.router.set_fault("silent")
        info = self.info()
        self.assertEqual(info["mode"], "normal")
        self.assertEqual(info["model"], "")
        self.assertEqual(info["source"], "")


class TestSimAndCarrierImages(ModemInfoTestCase):
    """The "carrier" object: AT+CPIN?, AT#CCID, AT+CIMI, AT+COPS?, AT#GETFW
    and AT#ACTIVEFW? (on the AT port, with or without ModemManager)."""

    router_options = {"modem_manager": False}

    def test_sim_and_stored_images(self):
        self.assertEqual(
            self.info()["carrier"],
            {
                "sim": "ready",
                "iccid": "8939100012345678901",
                "imsi": "222103456789012",
                "operator": "vodafone IT",
                "images": [
                    {"index": "1", "name": "GENERIC", "version": "M0R.010000-B020"},
                    {"index": "2", "name": "ATT", "version": "M0R.010000-B020"},
                ],
                "active": "1",
                "selection": "auto",
            },
        )

    def test_sim_swap_and_automatic_selection(self):
        self.router.swap_sim(SIM_ATT_US)
        carrier = self.info()["carrier"]
        self.assertEqual(carrier["iccid"], SIM_ATT_US["iccid"])
        self.assertEqual((carrier["operator"], carrier["active"]), ("AT&T", "2"))
        self.router.swap_sim(None)
        carrier = self.info()["carrier"]
        self.assertEqual(
            (carrier["sim"], carrier["iccid"], carrier["imsi"], carrier["operator"]),
            ("absent", "", "", ""),
        )
        # the image stays as it was: the modem reads the SIM when one comes
        self.assertEqual(carrier["active"], "2")

    def test_locked_sim_and_manual_selection(self):
        self.router.set_modem(
            sim=dict(SIM_ATT_US, state="locked"), carrier_selection="manual"
        )
        carrier = self.info()["carrier"]
        self.assertEqual((carrier["sim"], carrier["imsi"]), ("locked", ""))
        self.assertEqual(carrier["selection"], "manual")

    def test_single_image_modem(self):
        self.router.set_modem(carrier_commands=False)
        carrier = self.info()["carrier"]
        self.assertEqual((carrier["sim"], carrier["images"]), ("ready", []))
        self.assertEqual((carrier["active"], carrier["selection"]), ("", ""))

    def test_hostile_image_names_are_escaped_or_dropped(self):
        self.router.set_modem(
            carrier_images=[
                {"name": "A\\B", "version": "1", "networks": []},
                {"name": 'X"Y', "version": "2", "networks": []},
            ]
        )
        carrier = self.info()["carrier"]
        self.assertEqual([i["name"] for i in carrier["images"]], ["A\\B"])
        parse_modem_list(json.dumps([dict(self.info())]))
