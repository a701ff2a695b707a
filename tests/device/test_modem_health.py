"""modem-health.sh on the emulated router: each health knob of the emulator
read back through the AT helper, netifd and a real ping, and the cheap
remediation steps (issue 22)."""

import os

from openwisp_modem_upgrader.health import HEALTH_KEYS, parse_health

from .helpers import RouterTestCase
from .router import DEVICE_SCRIPTS

HEALTH = os.path.join(DEVICE_SCRIPTS, "modem-health.sh")
ON_LOOPBACK = ["--interface", "wwan", "--target", "127.0.0.1"]


class HealthTestCase(RouterTestCase):
    def reading(self, *args):
        result = self.router.run([HEALTH, *args], env={"PING_WAIT": "1"})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.count("\n"), 1, result.stdout)
        return parse_health(result.stdout)


class TestReadings(HealthTestCase):
    def test_default_state_is_in_service(self):
        reading = self.reading(*ON_LOOPBACK)
        self.assertEqual(set(reading), set(HEALTH_KEYS))
        expected = {
            "usb_path": "2-1",
            "mode": "normal",
            "usb_id": "1bc7:1071",
            "at": "ok",
            "sim": "ready",
            "registration": "home",
            "rat": "lte",
            "rsrp": -95,
            "sinr": None,  # LTE: AT+CESQ carries no SINR
            "apn": "internet",
            "pdp_type": "IPV4V6",
            "interface": "wwan",
            "data": "up",
            "address": "127.0.0.1",
            "device": "lo",
            "reachable": "yes",
            "http_status": "",
            "uptime": 86400,
            "power": "",
            "actions": "",
        }
        self.assertEqual(reading, expected)

    def test_without_interface_no_data_reading(self):
        reading = self.reading()
        self.assertEqual((reading["data"], reading["reachable"]), ("", ""))

    def test_sim_states(self):
        for sim in ("absent", "pin"):
            with self.subTest(sim=sim):
                self.router.set_modem(sim=sim)
                reading = self.reading(*ON_LOOPBACK)
                self.assertEqual(reading["sim"], sim)
                self.assertEqual(reading["registration"], "none")
                self.assertEqual(
                    (reading["data"], reading["reachable"]), ("down", "no")
                )

    def test_registration_states(self):
        for state in ("roaming", "searching", "denied", "none"):
            with self.subTest(registration=state):
                self.router.set_modem(registration=state)
                self.assertEqual(self.reading()["registration"], state)

    def test_5g_registration_and_signal(self):
        self.router.set_modem(rat="nr", rsrp=-101, sinr=7)
        reading = self.reading()
        self.assertEqual((reading["registration"], reading["rat"]), ("home", "nr"))
        self.assertEqual((reading["rsrp"], reading["sinr"]), (-101, 7))

    def test_weak_signal(self):
        self.router.set_modem(rsrp=-134)
        self.assertEqual(self.reading()["rsrp"], -134)

    def test_unreachable_target(self):
        # 192.0.2.1 (TEST-NET-1) never answers through lo
        reading = self.reading("--interface", "wwan", "--target", "192.0.2.1")
        self.assertEqual((reading["data"], reading["reachable"]), ("up", "no"))

    def test_http_target_through_the_interface(self):
        url = self.router.serve_http()
        reading = self.reading("--interface", "wwan", "--target", url)
        self.assertEqual((reading["reachable"], reading["http_status"]), ("yes", "204"))
        self.router.http_status = 503
        reading = self.reading("--interface", "wwan", "--target", url)
        self.assertEqual((reading["reachable"], reading["http_status"]), ("no", "503"))
        # bound to the interface's device: nothing answers through a down one
        self.router.set_modem(registration="searching")
        reading = self.reading("--interface", "wwan", "--target", url)
        self.assertEqual((reading["data"], reading["reachable"]), ("down", "no"))

    def test_http_target_without_curl(self):
        os.unlink(os.path.join(self.router.bin_dir, "curl"))
        reading = self.reading("--interface", "wwan", "--target", "http://127.0.0.1/")
        self.assertEqual(reading["reachable"], "unsupported")

    def test_uptime_and_power_source_hook(self):
        self.router.set_uptime(42)
        self.assertEqual(self.reading()["power"], "")
        hook = self.router.set_power_source("battery")
        reading = self.reading("--power-command", hook)
        self.assertEqual((reading["uptime"], reading["power"]), (42, "battery"))
        hook = self.router.set_power_source("'Mains; reboot'")
        self.assertEqual(self.reading("--power-command", hook)["power"], "unknown")

    def test_unknown_interface(self):
        reading = self.reading("--interface", "lte0")
        self.assertEqual(reading["data"], "unknown")

    def test_flashing_mode_by_usb_id(self):
        for usb_id in ("1bc7:9010", "05c6:9008", "18d1:d00d"):
            with self.subTest(usb_id=usb_id):
                self.router.leave_in_flash_mode(usb_id)
                reading = self.reading(*ON_LOOPBACK)
                self.assertEqual(
                    (reading["mode"], reading["usb_id"]), ("flashing", usb_id)
                )
                self.assertEqual((reading["at"], reading["sim"]), ("", ""))

    def test_silent_modem(self):
        self.router.set_fault("silent")
        reading = self.reading()
        self.assertEqual((reading["mode"], reading["at"]), ("normal", "silent"))

    def test_hostile_arguments_refused(self):
        for args in (
            ["--target", "127.0.0.1;reboot"],
            ["--target", "-c9"],
            ["--target", "http://127.0.0.1/$(reboot)"],
            ["--target", "file:///etc/passwd"],
            ["--power-command", "relative/hook"],
            ["--interface", "wwan\nx"],
            ["--apply-apn", 'a",1'],
            ["--pdp-type", "PPP"],
            ["--restart-service", "relative/path"],
            ["--usb-path", "../1-1"],
            ["--ifup"],
        ):
            with self.subTest(args=args):
                result = self.router.run([HEALTH, *args])
                self.assertEqual(result.returncode, 64, result.stdout)
                self.assertEqual(result.stdout, "")
        events = [e for e in self.router.modem_state()["events"] if e[0] != "at"]
        self.assertEqual(events, [])


class TestRemediation(HealthTestCase):
    def test_lost_apn_written_back_and_interface_restarted(self):
        self.router.set_modem(apn="")
        before = self.reading(*ON_LOOPBACK)
        self.assertEqual((before["apn"], before["data"]), ("", "down"))
        after = self.reading(
            *ON_LOOPBACK, "--apply-apn", "internet", "--pdp-type", "IPV4V6", "--ifup"
        )
        self.assertEqual(after["actions"], "apn:ok ifup:ok")
        self.assertEqual(
            (after["apn"], after["data"], after["reachable"]), ("internet", "up", "yes")
        )
        events = self.router.modem_state()["events"]
        self.assertIn(["cgdcont", "internet"], events)
        self.assertIn(["ifup", "wwan"], events)

    def test_firmware_that_breaks_data_is_not_remediated(self):
        self.router.set_modem(data_broken_firmware=["M0R.010000-B020"])
        after = self.reading(*ON_LOOPBACK, "--ifup")
        self.assertEqual(after["actions"], "ifup:ok")
        self.assertEqual((after["data"], after["reachable"]), ("down", "no"))
