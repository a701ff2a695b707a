"""modem-info.sh: ModemManager and AT paths, absent and flashing modems."""

import json
import os

from .helpers import MODEM_INFO, RouterTestCase


class ModemInfoTestCase(RouterTestCase):
    def info(self):
        result = self.router.run([MODEM_INFO])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.count("\n"), 1, result.stdout)
        return json.loads(result.stdout)


class TestWithModemManager(ModemInfoTestCase):
    def test_normal_modem(self):
        self.assertEqual(
            self.info(),
            {
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

    def test_started_by_relative_name(self):
        result = self.router.run(["modem-info.sh"], cwd=os.path.dirname(MODEM_INFO))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout)["model"], "FN990A28")

    def test_absent(self):
        self.router.set_modem(mode="absent")
        info = self.info()
        self.assertEqual(info["mode"], "absent")
        self.assertEqual(info["model"], "")
        self.assertEqual(info["ports"], {"at": "", "diag": ""})

    def test_flashing_mode(self):
        for usb_id in ("1bc7:9010", "05c6:9008", "18d1:d00d"):
            with self.subTest(usb_id=usb_id):
                self.router.set_modem(mode="flashing", usb_flashing_id=usb_id)
                info = self.info()
                self.assertEqual(info["mode"], "flashing")
                self.assertEqual(info["usb_id"], usb_id)
                self.assertEqual(info["ports"]["diag"], "/dev/ttyUSB0")
                self.assertEqual(info["model"], "")

    def test_json_is_escaped(self):
        self.router.set_modem(manufacturer='Tel"it\\ x')
        self.assertEqual(self.info()["manufacturer"], 'Tel"it\\ x')


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
