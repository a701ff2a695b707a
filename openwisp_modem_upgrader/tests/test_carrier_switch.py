""" "Select carrier image" (issue 23): a stored carrier image made active on
an emulated router (dropbear + busybox, the emulator's AT#ACTIVEFW) through
the engine, verified by the server's own reading; refusals that touch
nothing; the emulator's failure knob; the mismatch report; the REST API and
the admin entry points with their permissions and organization isolation."""

from device.modem import SIM_ATT_US
from django.test import TestCase
from django.urls import reverse
from openwisp_notifications.swapper import load_model as load_notification_model

from .. import engine
from ..carrier_select import start_carrier_switch
from ..detection import detect_device
from ..inventory import carrier_image_mismatches
from ..statuses import ModemChangeSource, OperationStatus
from ..swapper import load_model
from . import DeviceModemFirmware, ModemUpgradeOperation
from .test_detection import DetectionMixin

Notification = load_notification_model("Notification")
ModemBuild = load_model("ModemBuild")
ATT = "310410"


class CarrierSwitchMixin(DetectionMixin):
    def mismatched_router(self, organization=None, **modem):
        """An emulated router whose AT&T SIM runs on the GENERIC image
        (manual selection: the modem did not switch by itself), detected."""
        router = self.start_router(reboot_delay=0.3, **modem)
        router.set_modem(carrier_selection="manual")
        router.swap_sim(SIM_ATT_US)
        device = self.router_device(router, organization=organization)
        detect_device(device)
        return router, device, DeviceModemFirmware.objects.get(device=device)

    def run_switch(self, operation):
        engine.run_operation(str(operation.pk))
        operation.refresh_from_db()
        return operation


class TestCarrierSwitch(CarrierSwitchMixin, TestCase):
    def test_switch_verified_and_mismatch_fixed(self):
        router, device, modem = self.mismatched_router()
        (row,) = carrier_image_mismatches()
        self.assertEqual((row["modem"].pk, row["sim_image"]), (modem.pk, "ATT"))
        operation = start_carrier_switch(modem)
        self.assertEqual(
            (operation.target_carrier_image, operation.image, operation.usb_path),
            ("ATT", None, "2-1"),
        )
        operation = self.run_switch(operation)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("carrier image ATT active", operation.log)
        self.assertIn("verified by the server's reading", operation.log)
        self.assertEqual(operation.bytes_sent, 0)
        state = router.modem_state()
        self.assertEqual(state["active_carrier_image"], 2)
        self.assertIn(["activefw", "2"], state["events"])
        modem.refresh_from_db()
        self.assertEqual(
            (modem.carrier_image, modem.carrier_selection), ("ATT", "manual")
        )
        history = modem.history.order_by("-detected_at").first()
        self.assertEqual(
            (history.carrier_image, history.operation_id, history.source),
            ("ATT", operation.pk, ModemChangeSource.UPGRADE),
        )
        self.assertFalse(history.unexplained)
        self.assertEqual(carrier_image_mismatches(), [])

    def test_through_the_scheduler_and_a_worker(self):
        """Queued once committed, dispatched by the scheduler like any
        single upgrade, run by the engine's task (Celery eager here)."""
        router, device, modem = self.mismatched_router()
        with self.captureOnCommitCallbacks(execute=True):
            operation = start_carrier_switch(modem, "ATT")
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertEqual(operation.attempts, 1)
        self.assertIsNotNone(operation.dispatched_at)

    def test_refusals_touch_nothing(self):
        router, device, modem = self.mismatched_router()
        cases = (
            ("VERIZON", "stores no carrier image named VERIZON"),
            ("GENERIC", "already active"),
            ("ATT;reboot", "Not a stored carrier image name"),
        )
        for name, reason in cases:
            with self.subTest(name=name):
                with self.assertRaisesMessage(Exception, reason):
                    start_carrier_switch(modem, name)
        # a modem that lists no stored images, another vendor
        DeviceModemFirmware.objects.filter(pk=modem.pk).update(carrier_images=[])
        modem.refresh_from_db()
        with self.assertRaisesMessage(Exception, "no stored carrier images"):
            start_carrier_switch(modem, "ATT")
        DeviceModemFirmware.objects.filter(pk=modem.pk).update(
            carrier_images=[{"index": "1", "name": "ATT", "version": "x"}],
            modem_model="EM12GPA",
        )
        modem.refresh_from_db()
        with self.assertRaisesMessage(Exception, "EM12GPA modems select"):
            start_carrier_switch(modem, "ATT")
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        at = [e for e in router.modem_state()["events"] if e[0] == "activefw"]
        self.assertEqual(at, [])

    def test_modem_changed_since_the_reading_refused_on_the_router(self):
        router, device, modem = self.mismatched_router()
        operation = start_carrier_switch(modem)
        # the modem lost its multi-carrier answers since the last reading
        router.set_modem(carrier_commands=False)
        operation = self.run_switch(operation)
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("refused on the router, nothing changed", operation.log)
        self.assertIn("lists no stored carrier image", operation.log)
        state = router.modem_state()
        self.assertEqual(
            (state["active_carrier_image"], state["carrier_selection"]), (1, "manual")
        )

    def test_failure_knobs_fail_with_the_truth(self):
        router, device, modem = self.mismatched_router()
        router.set_modem(carrier_switch_fault="refused")
        # the organization's manager is notified (settings made on commit)
        with self.captureOnCommitCallbacks(execute=True):
            manager = self._create_administrator(organizations=[self._get_org()])
        operation = start_carrier_switch(modem)
        with self.captureOnCommitCallbacks(execute=True):
            operation = self.run_switch(operation)
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("carrier image not switched (refused)", operation.log)
        self.assertIn("AT#ACTIVEFW=1,2 answered ERROR", operation.log)
        notification = Notification.objects.get(type="modem_upgrade_failed")
        self.assertEqual(notification.recipient, manager)
        self.assertIn("carrier image switch", notification.message)
        self.assertEqual(len(carrier_image_mismatches()), 1)

    def test_modem_not_back(self):
        from unittest import mock

        from .. import carrier_switch

        router, device, modem = self.mismatched_router()
        router.set_modem(carrier_switch_fault="no-return")
        with mock.patch.object(carrier_switch, "MODEM_WAIT", 3):
            operation = self.run_switch(start_carrier_switch(modem))
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn("carrier image not switched (not-back)", operation.log)
        self.assertIn("did not answer again within 3s", operation.log)
        self.assertTrue(operation.flash_started)

    def test_session_lost_with_the_reboot_decided_by_a_new_reading(self):
        """The modem is the router's uplink: the SSH session of the switch
        drops with its reboot; the server reads the modems again."""
        from unittest import mock

        from ..exceptions import RecoverableModemFailure
        from ..ssh import RouterShell

        router, device, modem = self.mismatched_router()
        run_script = RouterShell.run_script

        def dropped(shell, script, **kwargs):
            output = run_script(shell, script, **kwargs)
            if "CARRIER_SELECT_BUNDLED=1" in script:
                # the switch happened; its answer never reached the server
                raise RecoverableModemFailure("SSH command failed: connection reset")
            return output

        with mock.patch.object(RouterShell, "run_script", dropped):
            operation = self.run_switch(start_carrier_switch(modem))
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("the SSH session ended during the switch", operation.log)
        self.assertIn("read again after the session ended", operation.log)
        modem.refresh_from_db()
        self.assertEqual(modem.carrier_image, "ATT")

    def test_router_away_after_the_lost_session_read_by_follow_ups(self):
        """The session drops and the router stays away a while (its uplink
        reboots): the follow-ups read it again until the outcome deadline."""
        from unittest import mock

        from .. import carrier_switch
        from ..detection import read_router_modems
        from ..exceptions import RecoverableModemFailure
        from ..ssh import RouterShell
        from ..statuses import DetectionStatus

        router, device, modem = self.mismatched_router()
        run_script = RouterShell.run_script

        def dropped(shell, script, **kwargs):
            run_script(shell, script, **kwargs)
            raise RecoverableModemFailure("SSH command failed: connection reset")

        away = (DetectionStatus.UNREACHABLE, "no route to host", None)
        with mock.patch.object(RouterShell, "run_script", dropped), mock.patch.object(
            carrier_switch, "read_router_modems", return_value=away
        ):
            operation = self.run_switch(start_carrier_switch(modem))
            self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
            self.assertEqual(operation.follow_state, {"session_lost": True})
            self.assertIn("reading it again later", operation.log)
            engine.follow_operation(str(operation.pk))  # still away
            operation.refresh_from_db()
            self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        with mock.patch.object(
            carrier_switch, "read_router_modems", side_effect=read_router_modems
        ):
            engine.follow_operation(str(operation.pk))  # back
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        modem.refresh_from_db()
        self.assertEqual(modem.carrier_image, "ATT")

    def test_worker_lost_after_the_switch_fails_past_the_deadline(self):
        from datetime import timedelta

        from django.utils import timezone

        from ..upgrade import mark_flash_started, mark_in_progress

        router, device, modem = self.mismatched_router()
        operation = start_carrier_switch(modem)
        mark_in_progress(operation.pk)
        mark_flash_started(operation.pk, 600)
        engine.follow_operation(str(operation.pk))
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        ModemUpgradeOperation.objects.filter(pk=operation.pk).update(
            outcome_deadline=timezone.now() - timedelta(seconds=1)
        )
        engine.follow_operation(str(operation.pk))
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.FAILED)
        self.assertIn(
            "the worker stopped during the carrier image switch", operation.log
        )

    def test_one_operation_per_device(self):
        router, device, modem = self.mismatched_router()
        start_carrier_switch(modem)
        with self.assertRaisesMessage(Exception, "already running"):
            start_carrier_switch(modem)


class TestCarrierSwitchFaces(CarrierSwitchMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.router, self.device, self.modem = self.mismatched_router()
        self.url = reverse(
            "modem_upgrader:api_device_select_carrier_image", args=[self.device.pk]
        )

    def administrator(self, organization=None, **kwargs):
        user = self._create_administrator(
            organizations=[organization or self._get_org()], **kwargs
        )
        self.client.force_login(user)
        return user

    def test_rest_starts_the_sim_image(self):
        self.administrator()
        response = self.client.post(self.url, {}, content_type="application/json")
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual((body["target_carrier_image"], body["image"]), ("ATT", None))
        operation = self.run_switch(ModemUpgradeOperation.objects.get(pk=body["id"]))
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        mismatches = reverse("modem_upgrader:api_carrier_image_mismatch")
        self.assertEqual(self.client.get(mismatches).json(), [])

    def test_rest_permissions_and_isolation(self):
        # a manager of the organization without the permission to add
        # operations (the admin's rule: permissions.ACTION_PERMISSIONS)
        staff = self._create_user(
            username="staff", email="staff@test.com", is_staff=True
        )
        self._create_org_user(user=staff, organization=self._get_org(), is_admin=True)
        self.client.force_login(staff)
        response = self.client.post(self.url, {}, content_type="application/json")
        self.assertEqual(response.status_code, 403)
        other = self._create_org(name="other", slug="other")
        self.administrator(organization=other, username="other", email="o@o.org")
        response = self.client.post(self.url, {}, content_type="application/json")
        self.assertEqual(response.status_code, 404)
        self.client.logout()
        response = self.client.post(self.url, {}, content_type="application/json")
        self.assertIn(response.status_code, (401, 403))
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def test_rest_malformed_input_is_a_400(self):
        self.administrator()
        for body in (
            {"image": "ATT$(reboot)"},
            {"image": "ATT\n"},
            {"image": "x" * 40},
            {"image": ["ATT"]},
            {"usb_path": "../../etc"},
            {"usb_path": "9-9"},
            {"image": "VERIZON"},
            {"image": "GENERIC"},
            [],
            "ATT",
        ):
            with self.subTest(body=body):
                response = self.client.post(
                    self.url, body, content_type="application/json"
                )
                self.assertEqual(response.status_code, 400, response.content)
        response = self.client.post(
            self.url, "{not json", content_type="application/json"
        )
        self.assertEqual(response.status_code, 400)
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def admin_select_url(self, device):
        return reverse("admin:config_device_select_carrier_image", args=[device.pk])

    def test_admin_from_the_mismatch_report(self):
        self.administrator()
        opts = ModemBuild._meta
        compliance = reverse(f"admin:{opts.app_label}_{opts.model_name}_compliance")
        page = self.client.get(compliance)
        self.assertContains(page, "s carrier image (ATT)")
        response = self.client.post(
            f"{self.admin_select_url(self.device)}?next={compliance}",
            {"carrier_modem": str(self.modem.pk), "carrier_image": "ATT"},
        )
        self.assertRedirects(response, compliance, fetch_redirect_response=False)
        operation = ModemUpgradeOperation.objects.get()
        self.assertEqual(operation.target_carrier_image, "ATT")
        self.run_switch(operation)
        opts = ModemUpgradeOperation._meta
        page = self.client.get(
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change", args=[operation.pk]
            )
        )
        self.assertContains(page, "Carrier image to activate:")
        self.assertContains(page, "carrier image ATT active")
        self.assertNotContains(page, 'class="modem-stage ')
        # the device page's recent operations name it (it has no image)
        page = self.client.get(
            reverse("admin:config_device_change", args=[self.device.pk])
        )
        self.assertContains(page, "carrier image ATT</a>")
        self.assertNotContains(page, "deleted image")
        page = self.client.get(compliance)
        self.assertNotContains(page, "s carrier image (ATT)")
        self.assertNotContains(page, 'class="modem-carrier-mismatch"')

    def test_admin_device_page_and_refusals(self):
        self.administrator()
        device_page = reverse("admin:config_device_change", args=[self.device.pk])
        page = self.client.get(device_page)
        self.assertContains(page, f'name="carrier_image_{self.modem.pk}"')
        self.assertContains(page, "Make it active")
        response = self.client.post(
            self.admin_select_url(self.device),
            {
                "carrier_modem": str(self.modem.pk),
                f"carrier_image_{self.modem.pk}": "VZW",
            },
            follow=True,
        )
        self.assertContains(response, "stores no carrier image named VZW")
        for data in ({"carrier_modem": "nope"}, {}):
            response = self.client.post(
                self.admin_select_url(self.device), data, follow=True
            )
            self.assertContains(response, "This device has no such modem.")
        self.assertEqual(
            self.client.get(self.admin_select_url(self.device)).status_code, 403
        )
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        # another organization's device: 404, nothing started
        other = self._create_org(name="other", slug="other")
        self.administrator(organization=other, username="other", email="o@o.org")
        response = self.client.post(
            self.admin_select_url(self.device),
            {"carrier_modem": str(self.modem.pk), "carrier_image": "ATT"},
        )
        self.assertEqual(response.status_code, 404)
        self.assertFalse(ModemUpgradeOperation.objects.exists())
