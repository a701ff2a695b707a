"""carrier-select.sh on the emulated router: a stored carrier image made
active and read back after the modem's reboot, the refusals that send
nothing to the modem, and the emulator's failure knobs."""

import json
import os

from .helpers import RouterTestCase
from .router import DEVICE_SCRIPTS

SELECT = os.path.join(DEVICE_SCRIPTS, "carrier-select.sh")


class TestCarrierSelect(RouterTestCase):
    modem = {"reboot_delay": 0.5}

    def select(self, *args, code=0):
        result = self.router.run([SELECT, *args])
        self.assertEqual(result.returncode, code, result.stdout + result.stderr)
        if code == 64:
            return result.stderr
        self.assertEqual(result.stdout.count("\n"), 1, result.stdout)
        return json.loads(result.stdout)

    def switch_commands(self):
        return [
            event[1]
            for event in self.router.modem_state()["events"]
            if event[0] == "at" and event[1].startswith("AT#ACTIVEFW=")
        ]

    def test_switch_is_read_back_after_the_reboot(self):
        outcome = self.select("--image", "2", "--name", "ATT", "--wait", "20")
        self.assertEqual(outcome["result"], "switched", outcome)
        self.assertEqual(
            (outcome["active"], outcome["selection"], outcome["usb_path"]),
            ("2", "manual", "2-1"),
        )
        state = self.router.modem_state()
        self.assertEqual(state["active_carrier_image"], 2)
        self.assertEqual(state["carrier_selection"], "manual")
        self.assertEqual(self.switch_commands(), ["AT#ACTIVEFW=0,2", "AT#ACTIVEFW=1,2"])
        # the modem left USB and came back (the reboot into the image)
        self.assertIn(["activefw", "2"], state["events"])

    def test_already_active_sends_nothing(self):
        outcome = self.select("--image", "1", "--name", "GENERIC")
        self.assertEqual(outcome["result"], "already-active")
        self.assertEqual(self.switch_commands(), [])

    def test_refusals_touch_nothing(self):
        cases = (
            ({}, ("--image", "3", "--name", "VZW"), "unknown-image"),
            ({}, ("--image", "2", "--name", "VZW"), "unknown-image"),
            (
                {"carrier_commands": False},
                ("--image", "2", "--name", "ATT"),
                "unsupported",
            ),
            ({"mode": "absent"}, ("--image", "2", "--name", "ATT"), "no-modem"),
        )
        for values, args, result in cases:
            with self.subTest(result=result, args=args):
                self.router.set_modem(**values)
                outcome = self.select(*args, code=3)
                self.assertEqual(outcome["result"], result)
                self.assertEqual(self.switch_commands(), [])
                state = self.router.modem_state()
                self.assertEqual(
                    (state["active_carrier_image"], state["carrier_selection"]),
                    (1, "auto"),
                )
                self.router.set_modem(carrier_commands=True, mode="normal")

    def test_refused_switch_puts_the_selection_back(self):
        self.router.set_modem(carrier_switch_fault="refused")
        outcome = self.select("--image", "2", "--name", "ATT", code=4)
        self.assertEqual(outcome["result"], "refused")
        self.assertIn("AT#ACTIVEFW=1,2 answered ERROR", outcome["detail"])
        state = self.router.modem_state()
        self.assertEqual(
            (state["active_carrier_image"], state["carrier_selection"]), (1, "auto")
        )
        self.assertEqual((outcome["active"], outcome["selection"]), ("1", "auto"))

    def test_modem_not_back(self):
        self.router.set_modem(carrier_switch_fault="no-return")
        outcome = self.select("--image", "2", "--name", "ATT", "--wait", "3", code=5)
        self.assertEqual(outcome["result"], "not-back")
        self.assertIn("within 3s", outcome["detail"])

    def test_modem_back_with_the_old_image(self):
        self.router.set_modem(carrier_switch_fault="stale")
        outcome = self.select("--image", "2", "--name", "ATT", "--wait", "4", code=6)
        self.assertEqual(outcome["result"], "not-switched")
        self.assertEqual(outcome["active"], "1")

    def test_hostile_arguments_are_refused(self):
        for args in (
            ("--image", "2;reboot", "--name", "ATT"),
            ("--image", "0", "--name", "ATT"),
            ("--image", "2", "--name", "ATT$(reboot)"),
            ("--image", "2", "--name", "ATT\nX"),
            ("--image", "2", "--name", "ATT", "--usb-path", "../1"),
            ("--image", "2"),
        ):
            with self.subTest(args=args):
                self.select(*args, code=64)
        self.assertEqual(self.switch_commands(), [])
