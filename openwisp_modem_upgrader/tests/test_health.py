"""Health-verified upgrades (issue 22): the pre-flight gate, the post-flash
service verification, remediation, the re-flash of the previous build and
the recovery run of a modem stuck in flash mode, on emulated routers
(dropbear + busybox, the emulator's health knobs); and the decisions of
``health.py`` on their own."""

import os
import tempfile
from datetime import timedelta
from unittest import mock

from device.firmware import write_firmware_stream
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.files import File
from django.test import SimpleTestCase, TestCase
from django.urls import reverse
from django.utils import timezone
from openwisp_notifications.swapper import load_model as load_notification_model

from .. import settings as app_settings
from ..base.rollout import RolloutState
from ..detection import detect_device, record_modems
from ..device_contract import GarbageOutput
from ..health import gate_refusal, parse_health, service_problems
from ..scheduler import dispatch
from ..statuses import (
    FAILED_STATUSES,
    TERMINAL_STATUSES,
    DetectionStatus,
    ModemChangeSource,
    OperationStatus,
)
from ..upgrade import (
    finish_operation,
    mark_in_progress,
    modem_version_before,
    record_health,
    start_previous_build,
    start_upgrade,
)
from ..upgraders import get_upgrader_class
from . import (
    FN990A28,
    NEW_VERSION,
    OLD_VERSION,
    DeviceModemFirmware,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)
from .test_containment import ContainmentMixin
from .test_engine import LONG_ROUTER_TAGS, EngineTestMixin

Notification = load_notification_model("Notification")
OLD_FIRMWARE = "M0R.010000-B020"
# the router's cellular interface and a target on its loopback side
DATA = {"data_interface": "wwan", "reachability_target": "127.0.0.1"}
IN_SERVICE = {
    "usb_path": "2-1",
    "mode": "normal",
    "usb_id": "1bc7:1071",
    "at": "ok",
    "sim": "ready",
    "registration": "home",
    "rat": "lte",
    "rsrp": -95,
    "sinr": None,
    "apn": "internet",
    "pdp_type": "IPV4V6",
    "interface": "wwan",
    "data": "up",
    "address": "10.0.0.2",
    "device": "wwan0",
    "reachable": "yes",
    "http_status": "",
    "uptime": 86400,
    "power": "",
    "actions": "",
}


def defaults(**options):
    upgrader = get_upgrader_class("telit-fn990a")
    return upgrader.get_options(options)


class TestHealthDecisions(SimpleTestCase):
    def test_defaults_pass_a_modem_in_service(self):
        self.assertIsNone(gate_refusal(IN_SERVICE, defaults()))
        self.assertEqual(service_problems(IN_SERVICE, IN_SERVICE, defaults(**DATA)), [])

    def test_gate_reasons(self):
        cases = {
            "no SIM card": {"sim": "absent"},
            "SIM is locked": {"sim": "pin"},
            "not registered (searching)": {"registration": "searching"},
            "RSRP -130 dBm, the floor is -125 dBm": {"rsrp": -130},
            "SINR -15 dB": {"sinr": -15},
            "does not answer AT": {"at": "silent"},
            "flashing mode (USB 05c6:9008)": {
                "mode": "flashing",
                "usb_id": "05c6:9008",
                "at": "",
            },
            "no modem": {"mode": "absent"},
        }
        for expected, change in cases.items():
            with self.subTest(expected=expected):
                reason = gate_refusal(dict(IN_SERVICE, **change), defaults())
                self.assertIn(expected, reason or "")

    def test_gate_options(self):
        no_sim = dict(IN_SERVICE, sim="absent", registration="none")
        options = defaults(require_sim=False, require_registration=False)
        self.assertIsNone(gate_refusal(no_sim, options))
        self.assertIsNone(
            gate_refusal(dict(IN_SERVICE, rsrp=-130), defaults(min_rsrp=-140))
        )
        flashing = dict(IN_SERVICE, mode="flashing", at="")
        self.assertIsNone(gate_refusal(flashing, defaults(recovery_run=True)))
        self.assertIn(
            "needs a modem in a flashing mode",
            gate_refusal(IN_SERVICE, defaults(recovery_run=True)),
        )

    def test_router_gates(self):
        # off by default; on, they refuse a router just rebooted or on battery
        self.assertIsNone(gate_refusal(dict(IN_SERVICE, uptime=30), defaults()))
        self.assertIn(
            "up for 30s only, the floor is 600s",
            gate_refusal(dict(IN_SERVICE, uptime=30), defaults(min_uptime=600)),
        )
        self.assertIn(
            "uptime cannot be read",
            gate_refusal(dict(IN_SERVICE, uptime=None), defaults(min_uptime=600)),
        )
        hook = defaults(power_source_command="/usr/bin/power-source")
        self.assertIsNone(gate_refusal(dict(IN_SERVICE, power="mains"), hook))
        self.assertIn(
            "not on mains power (the power-source hook says battery)",
            gate_refusal(dict(IN_SERVICE, power="battery"), hook),
        )

    def test_http_reachability_problems(self):
        url = "http://192.0.2.10/generate_204"
        options = defaults(data_interface="wwan", reachability_target=url)
        failing = {
            f"{url} answered HTTP 503 through wwan": {
                "reachable": "no",
                "http_status": "503",
            },
            f"{url} unreachable through wwan": {"reachable": "no"},
            "an HTTP check needs curl on the router": {"reachable": "unsupported"},
        }
        for expected, change in failing.items():
            with self.subTest(expected=expected):
                problems = service_problems(
                    dict(IN_SERVICE, **change), IN_SERVICE, options
                )
                self.assertIn(expected, "; ".join(problems))
        self.assertEqual(service_problems(IN_SERVICE, IN_SERVICE, options), [])

    def test_service_problems(self):
        options = defaults(**DATA)
        cases = {
            "not registered (denied)": {"registration": "denied"},
            "no data session (wwan is down)": {"data": "down", "reachable": "no"},
            "127.0.0.1 unreachable through wwan": {"reachable": "no"},
            "APN profile lost (context 1 is empty, was internet)": {"apn": ""},
            "signal dropped: RSRP -124 dBm, -90 dBm before": {"rsrp": -124},
        }
        baseline = dict(IN_SERVICE, rsrp=-90)
        for expected, change in cases.items():
            with self.subTest(expected=expected):
                problems = service_problems(
                    dict(IN_SERVICE, **change), baseline, options
                )
                self.assertIn(expected, "; ".join(problems))

    def test_hostile_or_garbled_readings_refused(self):
        import json

        for change in (
            {"apn": 'x";reboot'},
            {"rsrp": "-95; ls"},
            {"mode": "weird"},
            {"address": "1.2.3.4\n"},
        ):
            with self.subTest(change=change):
                text = json.dumps(
                    dict(IN_SERVICE, rsrp="-95", sinr="", uptime="86400") | change
                )
                with self.assertRaises(GarbageOutput):
                    parse_health(text)
        with self.assertRaises(GarbageOutput):
            parse_health("Segmentation fault")

    def test_hostile_options_refused(self):
        from django.core.exceptions import ValidationError

        upgrader = get_upgrader_class("telit-fn990a")
        for option in (
            {"reachability_target": "127.0.0.1;reboot"},
            {"reachability_target": "-c9"},
            {"reachability_target": "http://127.0.0.1/$(reboot)"},
            {"reachability_target": "ftp://127.0.0.1/"},
            {"power_source_command": "power-source; reboot"},
            {"min_uptime": -1},
            {"data_interface": "wwan x"},
            {"modem_daemon_service": "../x"},
            {"min_rsrp": 5},
        ):
            with self.subTest(option=option):
                with self.assertRaises(ValidationError):
                    upgrader.validate_upgrade_options(option)

    def test_failure_cause_names_the_health_stages(self):
        from ..failure_cause import failure_cause

        gate = [
            "attempt 1 of 3",
            "pre-flight reading: SIM absent, registration none",
            "not started: no SIM card (pre-flight gate; nothing was sent)",
        ]
        self.assertEqual(failure_cause("\n".join(gate)).stage, "pre-flight gate")
        service = [
            "attempt 1 of 3",
            "pre-flight reading: SIM ready, registration home (lte)",
            "pre-flight gate passed",
            "transferring 65792 bytes to the router",
            "the router reports success, reading the modem",
            "modem verified by the server: FN990A28 M0R.010100-B024",
            "service not restored yet: no data session (wwan is down)",
            "flashed, service not restored: no data session (wwan is down)",
        ]
        cause = failure_cause("\n".join(service))
        self.assertEqual(cause.stage, "service verification")
        self.assertIn("no data session", cause.line)

    def test_service_not_restored_counts_as_a_failure(self):
        self.assertIn(OperationStatus.NO_SERVICE, FAILED_STATUSES)
        self.assertIn(OperationStatus.NO_SERVICE, TERMINAL_STATUSES)
        self.assertEqual(
            str(OperationStatus.NO_SERVICE.label), "flashed, service not restored"
        )


class HealthEngineMixin(EngineTestMixin):
    tags = LONG_ROUTER_TAGS

    def uxfp_runs(self):
        return [e for e in self.router.modem_state()["events"] if e[0] == "uxfp"]

    def create_image(self, version):
        handle, path = tempfile.mkstemp(suffix=".bin")
        os.close(handle)
        self.addCleanup(os.unlink, path)
        write_firmware_stream(path, version, model=FN990A28, size=65536)
        build = self._create_build(
            version=version, modem_model=FN990A28, category=self.image.build.category
        )
        with open(path, "rb") as stream:
            return self._create_image(
                build=build, type="telit-fn990a", file=File(stream, name="old.bin")
            )


class TestPreflightGate(HealthEngineMixin, StaticLiveServerTestCase):
    def upgrade_once(self, **options):
        """One reading of the gate: the next would be past the deadline."""
        with mock.patch.object(app_settings, "PREFLIGHT_RETRY_INTERVAL", 10**6):
            return self.upgrade(**options)

    def assertRefusedUntouched(self, operation, reason):
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn(f"not started: {reason}", operation.log)
        self.assertIn(
            "nothing was sent to the router and the modem is untouched", operation.log
        )
        self.assertFalse(operation.flash_started)
        self.assertEqual(self.uxfp_runs(), [])
        # nothing was sent but the scripts: no image on the router
        self.assertFalse(any(name.endswith(".bin") for name in self.router_files()))
        self.assertIn("baseline", operation.health)

    def test_refusals_touch_nothing(self):
        # one router for the three cases (each a router set-up less)
        cases = (
            ("no SIM card", {"sim": "absent"}, {}),
            ("signal too weak: RSRP -131 dBm", {"rsrp": -131}, {"min_rsrp": -120}),
            (
                "signal too noisy: SINR -14 dB, the floor is -10 dB",
                {"rat": "nr", "sinr": -14},
                {},
            ),
            (
                "the modem is in a flashing mode (USB 05c6:9008)",
                {"mode": "flashing", "usb_flashing_id": "05c6:9008"},
                {},
            ),
        )
        for reason, knobs, options in cases:
            with self.subTest(reason=reason):
                ModemUpgradeOperation.objects.all().delete()
                self.router.set_modem(**knobs)
                operation = self.upgrade_once(**options)
                self.assertRefusedUntouched(operation, reason)
                self.router.set_modem(
                    sim="ready", rsrp=-95, sinr=12, rat="lte", mode="normal"
                )
        baseline = operation.health["baseline"]
        self.assertEqual(
            (baseline["mode"], baseline["usb_id"]), ("flashing", "05c6:9008")
        )

    def test_router_gates_refuse(self):
        # a router that just rebooted, then one on battery (the operator's hook)
        self.router.set_uptime(30)
        operation = self.upgrade_once(min_uptime=600)
        self.assertRefusedUntouched(
            operation, "the router has been up for 30s only, the floor is 600s"
        )
        self.assertEqual(operation.health["baseline"]["uptime"], 30)
        ModemUpgradeOperation.objects.all().delete()
        self.router.set_uptime(86400)
        hook = self.router.set_power_source("battery")
        operation = self.upgrade_once(min_uptime=600, power_source_command=hook)
        self.assertRefusedUntouched(
            operation,
            "the router is not on mains power (the power-source hook says " "battery)",
        )

    def test_refusal_then_pass_within_the_deadline(self):
        # a SIM that becomes ready between two attempts: the retry starts it
        self.router.set_modem(registration="searching")
        from ..upgraders.wrapper import WrapperUpgrader

        original = WrapperUpgrader.preflight
        calls = []

        def preflight_then_register(upgrader):
            calls.append(1)
            try:
                original(upgrader)
            finally:
                if len(calls) == 1:
                    self.router.set_modem(registration="home")

        with mock.patch.object(WrapperUpgrader, "preflight", preflight_then_register):
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn(
            "not started: the modem is not registered (searching)", operation.log
        )
        self.assertIn("reading the gate again in 0s", operation.log)
        # a refused gate uses no attempt: the flash ran on the first one
        self.assertEqual(operation.attempts, 1)
        self.assertEqual(len(self.uxfp_runs()), 1)

    def test_refused_until_the_deadline(self):
        # never registered: read again and again, then a truthful end
        self.router.set_modem(registration="searching")
        with mock.patch.object(app_settings, "PREFLIGHT_RETRY_INTERVAL", 1):
            deadline = timezone.now() + timedelta(seconds=8)
            operation = self.upgrade(schedule={"deadline": deadline})
        self.assertRefusedUntouched(
            operation, "the modem is not registered (searching)"
        )
        # ended by the gate's last reading, or (a saturated machine reading
        # it late) by the scheduler's deadline while it waited: both truthful
        self.assertTrue(
            "refused at every reading until the deadline" in operation.log
            or "not started before the deadline: nothing was sent" in operation.log,
            operation.log,
        )
        # read at least twice: a retry, then the refusal that ended it
        self.assertGreaterEqual(operation.log.count("reading the gate again"), 1)
        self.assertGreaterEqual(
            operation.log.count("not started: the modem is not registered"), 2
        )
        # every reading but the last was refunded: one attempt, not one per reading
        self.assertEqual(operation.attempts, 1)
        self.assertIsNotNone(operation.finished_at)


class TestServiceVerification(HealthEngineMixin, StaticLiveServerTestCase):
    def test_success_means_version_and_service(self):
        operation = self.upgrade(**DATA)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("pre-flight gate passed", operation.log)
        self.assertIn("service verified: SIM ready, registration home", operation.log)
        self.assertIn("upgrade successful: version and service verified", operation.log)
        self.assertEqual(operation.health["baseline"]["firmware"], OLD_FIRMWARE)
        self.assertEqual(operation.health["after"]["reachable"], "yes")
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)

    def test_version_verified_but_no_registration(self):
        self.router.set_modem(registration_after_flash="searching")
        operation = self.upgrade(service_timeout=5, **DATA)
        self.assertEqual(operation.status, OperationStatus.NO_SERVICE, operation.log)
        self.assertIn("modem verified by the server", operation.log)
        self.assertIn(
            "flashed, service not restored: not registered (searching)", operation.log
        )
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)
        self.assertEqual(operation.health["after"]["registration"], "searching")

    def test_http_reachability_failing(self):
        url = self.router.serve_http()
        self.router.http_status = 503
        operation = self.upgrade(
            data_interface="wwan", reachability_target=url, service_timeout=5
        )
        self.assertEqual(operation.status, OperationStatus.NO_SERVICE, operation.log)
        self.assertIn(
            f"flashed, service not restored: {url} answered HTTP 503 through wwan",
            operation.log,
        )
        self.assertEqual(operation.health["after"]["http_status"], "503")
        # the pre-flight gate does not judge reachability: the flash ran
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)

    def test_lost_apn_remediated(self):
        self.router.set_modem(apn_lost_on_flash=True)
        operation = self.upgrade(remediation=True, service_timeout=60, **DATA)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("APN profile lost", operation.log)
        self.assertIn("remediation: re-apply the APN internet", operation.log)
        self.assertIn("remediation: restart the interface wwan", operation.log)
        self.assertIn("service restored by the remediation", operation.log)
        self.assertEqual(
            operation.health["remediation"]["reading"]["actions"], "apn:ok ifup:ok"
        )
        events = self.router.modem_state()["events"]
        self.assertIn(["cgdcont", "internet"], events)

    def test_remediation_fails_then_previous_build_reflashed(self):
        old_image = self.create_image(OLD_FIRMWARE)
        # the new build never brings data up; the old one does
        self.router.set_modem(data_broken_firmware=[NEW_VERSION])
        operation = self.upgrade(
            remediation=True, reflash_previous=True, service_timeout=5, **DATA
        )
        self.assertEqual(operation.status, OperationStatus.NO_SERVICE, operation.log)
        self.assertIn("the remediation did not help", operation.log)
        self.assertIn(
            f"remediation: re-flashing the previous build {OLD_FIRMWARE}", operation.log
        )
        linked = ModemUpgradeOperation.objects.get(remediation_of=operation)
        self.assertEqual(linked.image, old_image)
        linked = self.drive_to_end(linked)
        self.assertEqual(linked.status, OperationStatus.SUCCESS, linked.log)
        self.assertIn("version and service verified", linked.log)
        self.assertEqual(self.router.modem_state()["firmware"], OLD_FIRMWARE)
        # never a loop: one linked operation, none of its own
        self.assertEqual(ModemUpgradeOperation.objects.count(), 2)
        self.assertFalse(linked.upgrade_options["reflash_previous"])


class TestFlashModeRecovery(HealthEngineMixin, StaticLiveServerTestCase):
    def test_power_loss_then_recovery_run(self):
        # a flash cut by a power loss: the modem stays in flash mode
        self.router.set_fault("interrupt")
        first = self.upgrade()
        self.assertEqual(first.status, OperationStatus.ABORTED, first.log)
        self.assertEqual(self.router.modem_state()["mode"], "flashing")
        self.router.set_fault(None)
        recovery = self.upgrade(recovery_run=True, **DATA)
        self.assertEqual(recovery.status, OperationStatus.SUCCESS, recovery.log)
        self.assertIn("modem in flashing mode (USB 1bc7:9010)", recovery.log)
        _first, second = self.uxfp_runs()
        self.assertIn("--lossrecovery", second)
        self.assertEqual(self.router.modem_state()["mode"], "normal")
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)


class TestRecoveryStarts(HealthEngineMixin, StaticLiveServerTestCase):
    """A recovery run started by an operator ("Recover") or by the opt-in
    policy when a detection finds the modem stuck in flash mode."""

    def interrupted_flash(self):
        self.router.set_fault("interrupt")
        first = self.upgrade(**DATA)
        self.assertEqual(first.status, OperationStatus.ABORTED, first.log)
        self.router.set_fault(None)
        return first

    def stuck_modem(self):
        detect_device(self.device)
        return DeviceModemFirmware.objects.get(
            device=self.device, detection_status=DetectionStatus.FLASHING
        )

    def assertRecovered(self, recovery, first):
        recovery = self.drive_to_end(recovery)
        self.assertEqual(recovery.status, OperationStatus.SUCCESS, recovery.log)
        self.assertEqual(recovery.image, first.image)
        self.assertTrue(recovery.upgrade_options["recovery_run"])
        self.assertIn("version and service verified", recovery.log)
        self.assertIn("--lossrecovery", self.uxfp_runs()[-1])
        self.assertEqual(self.router.modem_state()["mode"], "normal")

    def test_recover_button_then_success(self):
        first = self.interrupted_flash()
        modem = self.stuck_modem()
        self.client.force_login(self._get_admin())
        opts = self.image.build._meta
        compliance = reverse(f"admin:{opts.app_label}_{opts.model_name}_compliance")
        recover = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_recover_modem", args=[modem.pk]
        )
        self.assertContains(self.client.get(compliance), f'action="{recover}"')
        # the device's modem tab offers the same action
        device_page = reverse("admin:config_device_change", args=[self.device.pk])
        self.assertContains(self.client.get(device_page), f'formaction="{recover}"')
        response = self.client.post(recover)
        recovery = ModemUpgradeOperation.objects.exclude(pk=first.pk).get()
        self.assertRedirects(
            response,
            reverse(
                f"admin:{recovery._meta.app_label}_{recovery._meta.model_name}_change",
                args=[recovery.pk],
            ),
            fetch_redirect_response=False,
        )
        self.assertRecovered(recovery, first)
        # recovered: a second press says there is nothing to recover
        detect_device(self.device)
        response = self.client.post(recover, follow=True)
        self.assertContains(response, "not stuck in a flashing mode")
        self.assertEqual(ModemUpgradeOperation.objects.count(), 2)

    def test_automatic_recovery_opt_in(self):
        first = self.interrupted_flash()
        with mock.patch.object(app_settings, "AUTO_RECOVERY", False):
            self.stuck_modem()
        self.assertEqual(ModemUpgradeOperation.objects.count(), 1)
        # the policy on: the next detection that finds it stuck starts it
        DeviceModemFirmware.objects.filter(device=self.device).update(
            detection_status=DetectionStatus.OK
        )
        with mock.patch.object(app_settings, "AUTO_RECOVERY", True):
            self.stuck_modem()
        recovery = ModemUpgradeOperation.objects.exclude(pk=first.pk).get()
        self.assertRecovered(recovery, first)


class TestHealthFaces(TestModemUpgraderMixin, TestCase):
    """The readings in the API and on the operation page, the fleet view
    beside compliance, and the two notification types."""

    def setUp(self):
        super().setUp()
        self.org = self._get_org()
        other = self._create_org(name="other", slug="other")
        with self.captureOnCommitCallbacks(execute=True):
            self.manager = self._create_administrator(organizations=[self.org])
            self.outsider = self._create_administrator(
                organizations=[other], username="outsider", email="o@test.com"
            )
        self.device = self._create_modem_device()
        self.other_device = self._create_modem_device(
            organization=other, name="other-router"
        )
        self.image = self._create_image()
        self.other_image = self._create_image(
            build=self._create_build(
                category=self._create_category(name="other", organization=other)
            )
        )

    def no_service_operation(self, device=None):
        device = device or self.device
        image = self.image if device == self.device else self.other_image
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            operation = start_upgrade(device, image)
        mark_in_progress(operation.pk)
        record_health(operation.pk, "baseline", IN_SERVICE)
        record_health(operation.pk, "after", dict(IN_SERVICE, registration="denied"))
        with self.captureOnCommitCallbacks(execute=True):
            finish_operation(
                operation.pk,
                OperationStatus.NO_SERVICE,
                "flashed, service not restored: not registered (denied)",
            )
        operation.refresh_from_db()
        return operation

    def test_readings_in_the_api_and_on_the_operation_page(self):
        operation = self.no_service_operation()
        self.client.force_login(self.manager)
        response = self.client.get(
            reverse("modem_upgrader:api_upgrade_operation_detail", args=[operation.pk])
        )
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["status"], "no-service")
        self.assertEqual(body["health"]["baseline"]["registration"], "home")
        self.assertEqual(body["health"]["after"]["registration"], "denied")
        self.assertIsNone(body["remediation_of"])
        opts = operation._meta
        response = self.client.get(
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change", args=[operation.pk]
            )
        )
        self.assertContains(response, "before the flash")
        self.assertContains(response, "registration denied")
        self.assertContains(response, "flashed, service not restored")

    def stuck_after_interrupted_flash(self, device, image):
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            operation = start_upgrade(device, image)
        mark_in_progress(operation.pk)
        ModemUpgradeOperation.objects.filter(pk=operation.pk).update(flash_started=True)
        finish_operation(operation.pk, OperationStatus.ABORTED, "power lost")
        DeviceModemFirmware.objects.filter(device=device).update(
            detection_status=DetectionStatus.FLASHING
        )
        return operation

    def test_recover_api(self):
        url = reverse("modem_upgrader:api_device_recover_modem", args=[self.device.pk])
        self.client.force_login(self.manager)
        response = self.client.post(url, {}, content_type="application/json")
        self.assertEqual(response.status_code, 409)
        self.assertIn("No modem of this device is stuck", response.json()["detail"])
        first = self.stuck_after_interrupted_flash(self.device, self.image)
        self.stuck_after_interrupted_flash(self.other_device, self.other_image)
        # another organization's device: not found, nothing started
        self.client.force_login(self.outsider)
        response = self.client.post(url, {}, content_type="application/json")
        self.assertEqual(response.status_code, 404)
        # a member without the permission to start upgrades
        viewer = self._create_user(username="viewer", email="v@test.com", is_staff=True)
        self._create_org_user(user=viewer, organization=self.org, is_admin=True)
        self.client.force_login(viewer)
        response = self.client.post(url, {}, content_type="application/json")
        self.assertEqual(response.status_code, 403)
        self.assertEqual(ModemUpgradeOperation.objects.count(), 2)
        self.client.force_login(self.manager)
        response = self.client.post(
            url, {"usb_path": "../x"}, content_type="application/json"
        )
        self.assertEqual(response.status_code, 400)
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            response = self.client.post(url, {}, content_type="application/json")
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertTrue(body["upgrade_options"]["recovery_run"])
        self.assertEqual(body["image"]["id"], str(first.image_id))
        # the recovery run is the device's one active upgrade: a second is refused
        response = self.client.post(url, {}, content_type="application/json")
        self.assertEqual(response.status_code, 409)
        self.assertIn("already running", response.json()["detail"])

    def test_reflash_of_a_batch_upgrade_tied_to_its_batch(self):
        # the canary of a mass upgrade ended without service; its remediation
        # re-flashes the previous build: shown with the batch, counted once
        from ..swapper import load_model

        batch = load_model("ModemBatchUpgradeOperation").objects.create(
            build=self.image.build,
            organization=self.org,
            status=OperationStatus.IN_PROGRESS,
            upgrade_options={"reflash_previous": True},
        )
        old_image = self._create_image(
            build=self._create_build(
                version=OLD_VERSION, category=self.image.build.category
            )
        )
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            operation = start_upgrade(
                self.device, self.image, {"reflash_previous": True}, batch=batch
            )
        mark_in_progress(operation.pk)
        record_health(operation.pk, "baseline", dict(IN_SERVICE, firmware=OLD_VERSION))
        finish_operation(
            operation.pk, OperationStatus.NO_SERVICE, "flashed, service not restored"
        )
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            linked = start_previous_build(operation.pk)
        self.assertEqual(linked.image, old_image)
        # a single upgrade for the scheduler: a stopped rollout still runs it
        self.assertIsNone(linked.batch)
        counts = batch.status_counts()
        self.assertEqual(counts["total"], 1)
        self.assertEqual(counts[OperationStatus.NO_SERVICE], 1)
        self.assertEqual(counts[OperationStatus.IDLE], 0)
        self.client.force_login(self.manager)
        body = self.client.get(
            reverse(
                "modem_upgrader:api_batch_upgrade_operation_detail", args=[batch.pk]
            )
        ).json()
        self.assertEqual(body["status_counts"]["total"], 1)
        self.assertEqual(
            [
                (r["id"], r["remediation_of"], r["build_version"], r["status"])
                for r in body["remediations"]
            ],
            [(str(linked.pk), str(operation.pk), OLD_VERSION, "idle")],
        )
        opts = batch._meta
        page = self.client.get(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[batch.pk])
        )
        self.assertContains(page, "Re-flashes of the previous build")
        self.assertContains(page, f'data-operation-id="{linked.pk}"')
        # the list stays one aggregate per page: no remediations there
        listing = self.client.get(
            reverse("modem_upgrader:api_batch_upgrade_operation_list")
        ).json()
        self.assertNotIn("remediations", listing["results"][0])

    def test_baseline_version_of_a_modem_known_before_its_usb_path(self):
        # the real stack's failure: a modem row created before any detection
        # has no USB path; the reading names it 2-1
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            operation = start_upgrade(self.device, self.image)
        DeviceModemFirmware.objects.filter(device=self.device).update(usb_path="")
        self.assertEqual(modem_version_before(operation, "2-1"), OLD_VERSION)
        DeviceModemFirmware.objects.filter(device=self.device).update(usb_path="2-1")
        self.assertEqual(modem_version_before(operation, "2-1"), OLD_VERSION)
        self.assertEqual(modem_version_before(operation, "1-1.2"), "")

    def test_fleet_view_beside_compliance(self):
        mine = self.no_service_operation()
        self.no_service_operation(self.other_device)
        # a modem a detection found in flash mode, with its target image
        DeviceModemFirmware.objects.filter(device=self.device).update(
            detection_status="flashing",
            detection_reason="in flashing mode (USB 05c6:9008)",
            image=self.image,
        )
        self.client.force_login(self.manager)
        opts = self.image.build._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_compliance")
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.context["service_not_restored"], [mine])
        self.assertContains(response, "not registered (denied)")
        (stuck,) = response.context["stuck_in_flash_mode"]
        self.assertEqual(stuck.device, self.device)
        self.assertContains(response, "05c6:9008")
        self.assertNotContains(response, "other-router")
        # a later success on that modem takes it off the list
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            later = start_upgrade(self.device, self.image)
        mark_in_progress(later.pk)
        finish_operation(later.pk, OperationStatus.SUCCESS, "ok")
        response = self.client.get(url)
        self.assertEqual(response.context["service_not_restored"], [])

    def test_service_not_restored_notification(self):
        operation = self.no_service_operation()
        notification = Notification.objects.get(
            type="modem_service_not_restored", recipient=self.manager
        )
        self.assertEqual(notification.action_object, operation)
        self.assertIn("not registered (denied)", notification.message)
        self.assertFalse(
            Notification.objects.filter(type="modem_service_not_restored")
            .filter(recipient=self.outsider)
            .exists()
        )
        # its own type, not a second "upgrade failed"
        self.assertFalse(
            Notification.objects.filter(type="modem_upgrade_failed").exists()
        )

    def test_stuck_in_flash_mode_notification(self):
        flashing = {
            "usb_path": "2-1",
            "manufacturer": "",
            "model": "",
            "revision": "",
            "firmware": "",
            "imei": "",
            "ports": {"at": "", "diag": "/dev/ttyUSB0"},
            "mode": "flashing",
            "source": "",
            "usb_id": "1bc7:9010",
        }
        for _ in range(2):  # once, not at every detection
            with self.captureOnCommitCallbacks(execute=True):
                record_modems(self.device, [flashing], ModemChangeSource.DETECTION)
        notification = Notification.objects.get(
            type="modem_stuck_in_flash_mode", recipient=self.manager
        )
        self.assertIn("1bc7:9010", notification.message)
        self.assertIn("recovery run", notification.message)


class TestCanaryContainment(ContainmentMixin, TestCase):
    def test_a_canary_without_service_stops_before_wave_2(self):
        batch = self._batch(
            self._devices(6), canary_size=2, max_concurrent=5, failure_threshold=20
        )
        dispatch()
        canary = self.published()
        self.run_workers(canary)
        with self.captureOnCommitCallbacks(execute=True):
            finish_operation(
                canary[0],
                OperationStatus.NO_SERVICE,
                "flashed, service not restored: no data session (wwan is down)",
            )
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertIn("the canary wave failed (1 failed", batch.rollout_reason)
        self.finish(canary[1:])
        self.assertEqual(dispatch(), 0)
        self.assertEqual(self.wave_started(batch, 2), 0)
        self.assertEqual(batch.status_counts()[OperationStatus.NO_SERVICE], 1)
        self.client.force_login(self._get_admin())
        response = self.client.get(
            reverse(
                "modem_upgrader:api_batch_upgrade_operation_detail", args=[batch.pk]
            )
        )
        self.assertEqual(response.data["status_counts"]["no_service"], 1)
        self.assertEqual(response.data["rates"]["no_service"], round(100 / 6, 2))
