"""The device page: "Modem Firmware" and "Recent Modem Firmware Upgrades"."""

import json
from unittest import mock

from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from openwisp_users.tests.utils import TestMultitenantAdminMixin

from ..base.models import OperationStatus
from ..display import local_log
from ..upgrade import mark_flash_started, mark_in_progress
from ..upgraders import get_upgrader_class
from . import (
    FN990A28,
    NEW_VERSION,
    OLD_VERSION,
    Device,
    DeviceModemFirmware,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)
from .test_admin import admin_url

DMF_PREFIX = "modems"


def device_url(device):
    opts = Device._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[device.pk])


def form_data(response):
    """POST data re-submitting the device page as it was rendered."""
    data = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name, field in management.fields.items():
            data[management.add_prefix(name)] = management[name].value()
        forms.extend(formset.forms)
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                data[form.add_prefix(name)] = [str(v) for v in value]
            elif isinstance(value, bool):
                if value:
                    data[form.add_prefix(name)] = "on"
            else:
                data[form.add_prefix(name)] = value
    return data


class DeviceAdminMixin(TestModemUpgraderMixin, TestMultitenantAdminMixin):
    def setUp(self):
        super().setUp()
        self.org = self._get_org()
        self.device = self._create_modem_device(model="TestRouter")
        self.image = self._create_image()
        self.admin = self._get_admin()
        self.client.force_login(self.admin)

    def _dmf_prefix(self, response):
        for inline in response.context["inline_admin_formsets"]:
            if inline.formset.model is DeviceModemFirmware:
                return inline.formset.forms[0].prefix
        self.fail("no Modem Firmware inline")

    def _submit(self, image=None, raw_options=None, **options):
        """Posts the device page; the options as the JSON editor sends them
        (``raw_options``: the textarea's text as is)."""
        response = self.client.get(device_url(self.device))
        data = form_data(response)
        prefix = self._dmf_prefix(response)
        if image is not None:
            data[f"{prefix}-upgrade_to"] = str(image.pk)
        if raw_options is None:
            raw_options = json.dumps(options)
        data[f"{prefix}-upgrade_options"] = raw_options
        return self.client.post(device_url(self.device), data)


@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestModemFirmwareInline(DeviceAdminMixin, TestCase):
    def test_shows_detected_modem_and_compatible_images(self, delay):
        DeviceModemFirmware.objects.filter(device=self.device).update(
            modem_imei="351234567890123", modem_revision="45.00.010"
        )
        other_org = self._create_org(name="other", slug="other")
        other_build = self._create_build(
            version="M0R.OTHER-ORG",
            category=self._create_category(name="other", organization=other_org),
        )
        hidden = [
            self._create_image(build=other_build),
            self._create_image(
                build=self._create_build(
                    version="M0R.FN40",
                    modem_model="FN990A40",
                    category=self.image.build.category,
                )
            ),
            self._create_image(
                build=self._create_build(
                    version="M0R.BOARD", category=self.image.build.category
                ),
                boards=["Other"],
            ),
        ]
        shared = self._create_image(
            build=self._create_build(
                version="M0R.SHARED",
                category=self._create_category(name="shared", organization=None),
            ),
            boards=["TestRouter"],
        )
        response = self.client.get(device_url(self.device))
        self.assertContains(response, "Modem Firmware")
        self.assertContains(response, "351234567890123")
        self.assertContains(response, OLD_VERSION)
        choices = response.context["inline_admin_formsets"]
        dmf_form = [
            i.formset.forms[0]
            for i in choices
            if i.formset.model is DeviceModemFirmware
        ][0]
        offered = set(dmf_form.fields["upgrade_to"].queryset)
        self.assertEqual(offered, {self.image, shared})
        for image in hidden:
            self.assertNotIn(image, offered)
        # options generated from the upgrader's schema
        schema = get_upgrader_class(self.image.type).SCHEMA
        self.assertContains(
            response, escape(schema["properties"]["tool_path"]["title"])
        )
        self.assertContains(response, 'data-upgrader-type="telit-fn990a"')

    def test_saving_starts_the_upgrade(self, delay):
        # the editor sends every option, defaults filled in
        schema = get_upgrader_class(self.image.type).SCHEMA["properties"]
        options = {name: spec["default"] for name, spec in schema.items()}
        options["upgrade_timeout"] = 120
        with self.captureOnCommitCallbacks(execute=True):
            response = self._submit(self.image, **options)
        self.assertEqual(response.status_code, 302, self._errors(response))
        operation = ModemUpgradeOperation.objects.get(device=self.device)
        self.assertEqual(operation.image, self.image)
        self.assertEqual(operation.status, OperationStatus.IDLE)
        # defaults are not stored: the upgrader fills them in
        self.assertEqual(operation.upgrade_options, {"upgrade_timeout": 120})
        delay.assert_called_once_with(
            str(operation.pk), time_limit=mock.ANY, dispatched_at=mock.ANY
        )
        self.assertEqual(
            DeviceModemFirmware.objects.get(device=self.device).image, self.image
        )

    def test_saving_without_image_starts_nothing(self, delay):
        response = self._submit(upgrade_timeout=120)
        self.assertEqual(response.status_code, 302, self._errors(response))
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        delay.assert_not_called()

    def _errors(self, response):
        if response.status_code != 200:
            return ""
        errors = [str(response.context["adminform"].form.errors)]
        for inline in response.context["inline_admin_formsets"]:
            errors.append(str(inline.formset.errors))
            errors.append(str(inline.formset.non_form_errors()))
        return "\n".join(errors)

    def assert_refused(self, response, message, delay):
        self.assertEqual(response.status_code, 200)
        self.assertIn(message, self._errors(response))
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        delay.assert_not_called()

    def test_invalid_options_are_form_errors(self, delay):
        cases = {
            "upgrade_timeout": (5, "upgrade_timeout: 5 is less than the minimum"),
            "tool_path": (
                "/usr/bin/uxfp;reboot",
                "is not a command name such as uxfp, or its absolute path",
            ),
            "tool_args": ("--x; reboot", "separated by single spaces"),
            "remote_dir": ("/etc", "not a system directory (/bin, /boot"),
            "transfer_timeout": ("abc", "'abc' is not of type"),
            "unknown": (1, "Additional properties are not allowed"),
        }
        for name, (value, message) in cases.items():
            with self.subTest(option=name):
                response = self._submit(self.image, **{name: value})
                self.assert_refused(response, message, delay)
                # the allowed shape in words, never the regular expression
                self.assertNotIn("(?", self._errors(response))

    def test_malformed_options_are_form_errors(self, delay):
        deep = "[" * 100000 + "]" * 100000
        cases = {
            "{not json": "Enter a valid JSON",
            '["upgrade_timeout"]': "must be a JSON object",
            "42": "must be a JSON object",
            deep: "too long",
            "[" * 9000 + "]" * 9000: "Enter a valid JSON",
            json.dumps({"x": "y" * 30000}): "too long",
        }
        for raw, message in cases.items():
            with self.subTest(raw=raw[:20]):
                response = self._submit(self.image, raw_options=raw)
                self.assert_refused(response, message, delay)

    def test_required_option_error(self, delay):
        generic = self._create_image(build=self.image.build, type="generic")
        response = self.client.get(device_url(self.device))
        data = form_data(response)
        prefix = self._dmf_prefix(response)
        data[f"{prefix}-upgrade_to"] = str(generic.pk)
        data[f"{prefix}-upgrade_options"] = "{}"
        response = self.client.post(device_url(self.device), data)
        self.assert_refused(response, "tool_path", delay)

    def test_incompatible_image_refused(self, delay):
        other = self._create_image(
            build=self._create_build(
                version="M0R.FN40",
                modem_model="FN990A40",
                category=self.image.build.category,
            )
        )
        response = self._submit(other)
        self.assert_refused(response, "Select a valid choice", delay)

    def test_upgrade_already_running_refused(self, delay):
        ModemUpgradeOperation.objects.create(device=self.device, image=self.image)
        response = self._submit(self.image)
        self.assertEqual(response.status_code, 200)
        self.assertIn("already running", self._errors(response))
        self.assertEqual(ModemUpgradeOperation.objects.count(), 1)

    def test_device_errors_save_nothing(self, delay):
        response = self.client.get(device_url(self.device))
        data = form_data(response)
        data[f"{self._dmf_prefix(response)}-upgrade_to"] = str(self.image.pk)
        data["name"] = ""
        response = self.client.post(device_url(self.device), data)
        self.assertEqual(response.status_code, 200)
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        delay.assert_not_called()

    def test_race_after_validation_becomes_a_message(self, delay):
        from django.core.exceptions import ValidationError

        with mock.patch(
            "openwisp_modem_upgrader.admin.device.start_upgrade",
            side_effect=ValidationError("Another modem upgrade is already running"),
        ):
            response = self._submit(self.image)
        self.assertEqual(response.status_code, 302)
        response = self.client.get(response.url)
        self.assertContains(response, "Another modem upgrade is already running")

    def test_no_upgrade_offered_where_it_would_be_refused(self, delay):
        """A router without an enabled connection, or whose modem was never
        detected, is offered no image: the page says why instead."""
        from ..swapper import load_model

        device = self._create_device(
            name="undetected", mac_address="00:11:22:33:44:66", model="TestRouter"
        )
        self._create_config(device=device)
        self.device = device
        response = self.client.get(device_url(device))
        self.assertContains(response, "the router has no enabled SSH connection")
        self.assertNotContains(response, '<select name="modems-0-upgrade_to"')
        connection = self._create_device_connection(
            device=device, credentials=self._get_credentials(organization=self.org)
        )
        response = self.client.get(device_url(device))
        self.assertContains(response, "the modem of this router has not been detected")
        self.assertNotContains(response, '<select name="modems-0-upgrade_to"')
        # never reachable: the detection's own words, in the one vocabulary
        load_model("DeviceModemDetection").objects.create(
            device=device,
            status="unreachable",
            reason="Unable to connect to port 22",
            attempted_at=timezone.now(),
        )
        response = self.client.get(device_url(device))
        self.assertContains(response, "the server cannot reach this router")
        self.assertContains(response, "Unable to connect to port 22")
        # a submitted image is ignored: nothing is offered, nothing starts
        self.client.post(device_url(device), form_data(response))
        self.assertFalse(ModemUpgradeOperation.objects.filter(device=device).exists())
        DeviceModemFirmware.objects.create(device=device, usb_path="2-1")
        response = self._submit(self.image)
        self.assertEqual(response.status_code, 302, self._errors(response))
        self.assertTrue(ModemUpgradeOperation.objects.filter(device=device).exists())
        self.assertEqual(connection.device_id, device.pk)

    def test_upgrade_started_message_links_the_operation(self, delay):
        response = self._submit(self.image)
        self.assertEqual(response.status_code, 302, self._errors(response))
        operation = ModemUpgradeOperation.objects.get(device=self.device)
        response = self.client.get(response.url)
        self.assertContains(response, "Modem upgrade started")
        self.assertContains(
            response, admin_url(ModemUpgradeOperation, "change", operation.pk)
        )

    def test_connection_disabled_in_the_same_save_refuses_at_once(self, delay):
        from openwisp_controller.connection.models import DeviceConnection

        response = self.client.get(device_url(self.device))
        data = form_data(response)
        prefix = self._dmf_prefix(response)
        data[f"{prefix}-upgrade_to"] = str(self.image.pk)
        data[f"{prefix}-upgrade_options"] = "{}"
        [enabled] = [
            name
            for name in data
            if "connection" in name and name.endswith("-0-enabled")
        ]
        del data[enabled]  # the checkbox unticked
        response = self.client.post(device_url(self.device), data)
        self.assertEqual(response.status_code, 302, self._errors(response))
        self.assertFalse(
            DeviceConnection.objects.get(device=self.device).enabled,
            "the connection inline was not saved first",
        )
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        response = self.client.get(response.url)
        self.assertContains(response, "No upgrade started: the router has no enabled")

    def test_operator_cannot_start(self, delay):
        operator = self._create_operator(organizations=[self.org])
        self.client.force_login(operator)
        self.assertFalse(
            operator.has_perm("modem_upgrader.add_modemupgradeoperation"),
            list(operator.get_all_permissions()),
        )
        response = self.client.get(device_url(self.device))
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, "upgrade_to")

    def test_other_organization_device_not_reachable(self, delay):
        other = self._create_org(name="other", slug="other")
        manager = self._create_administrator(organizations=[other])
        self.client.force_login(manager)
        response = self.client.get(device_url(self.device))
        self.assertNotEqual(response.status_code, 200)


class TestRecentUpgradesInline(DeviceAdminMixin, TestCase):
    def _operation(self, **kwargs):
        return ModemUpgradeOperation.objects.create(
            device=self.device, image=self.image, **kwargs
        )

    def test_shows_status_progress_log_and_cancel(self):
        operation = self._operation(progress=42, log="transfer started\n")
        mark_in_progress(operation.pk)
        response = self.client.get(device_url(self.device))
        self.assertContains(response, "Recent Modem Firmware Upgrades")
        self.assertContains(response, 'aria-valuenow="42"')
        self.assertContains(response, "transfer started")
        self.assertContains(response, "modem-cancel")
        self.assertContains(
            response,
            f'data-modem-websocket="/ws/modem-upgrader/device/{self.device.pk}/"',
        )

    def test_log_times_in_the_local_time_zone(self):
        """The UTC times the server writes in a log are shown in the local
        zone (TIME_ZONE, Europe/Rome here), the zone named; the stored log
        keeps UTC. Device page, operation page and websocket alike."""
        log = (
            "router offline, trying again in 60s "
            "(waiting until 2026-12-03 05:40 UTC)\n"
            "the router stayed offline until the deadline (2026-07-01 22:15 UTC)\n"
        )
        operation = self._operation(status="failed", log=log)
        shown = (
            "router offline, trying again in 60s "
            "(waiting until 2026-12-03 06:40 CET)\n"
            "the router stayed offline until the deadline (2026-07-02 00:15 CEST)\n"
        )
        for url in (
            device_url(self.device),
            admin_url(ModemUpgradeOperation, "change", operation.pk),
        ):
            with self.subTest(url=url):
                response = self.client.get(url)
                self.assertContains(response, shown)
                self.assertNotContains(response, "05:40 UTC")
        with timezone.override("Asia/Tokyo"):
            self.assertIn("2026-12-03 14:40 JST", local_log(log))
        self.assertEqual(local_log("no time here\n"), "no time here\n")
        operation.refresh_from_db()
        self.assertEqual(operation.log, log)

    def test_only_recent_five(self):
        for status in [
            "success",
            "failed",
            "cancelled",
            "failed",
            "success",
            "aborted",
        ]:
            self._operation(status=status)
        response = self.client.get(device_url(self.device))
        self.assertContains(response, 'class="modem-operation"', count=5)

    def test_log_is_escaped(self):
        self._operation(status="failed", log="<script>alert(1)</script>")
        response = self.client.get(device_url(self.device))
        self.assertNotContains(response, "<script>alert(1)</script>")
        self.assertContains(response, "&lt;script&gt;alert(1)&lt;/script&gt;")

    def test_no_cancel_once_flashing_or_finished(self):
        operation = self._operation()
        mark_in_progress(operation.pk)
        mark_flash_started(operation.pk)
        response = self.client.get(device_url(self.device))
        self.assertNotContains(response, "modem-cancel")

    def _cancel(self, operation):
        url = reverse("admin:modem_upgrader_cancel_operation", args=[operation.pk])
        return self.client.post(f"{url}?next={device_url(self.device)}")

    def test_cancel(self):
        operation = self._operation()
        response = self._cancel(operation)
        self.assertRedirects(
            response, device_url(self.device), fetch_redirect_response=False
        )
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.CANCELLED)
        response = self.client.get(device_url(self.device))
        self.assertContains(response, "was cancelled")

    def test_cancel_refused_while_flashing(self):
        operation = self._operation()
        mark_in_progress(operation.pk)
        mark_flash_started(operation.pk)
        response = self.client.get(self._cancel(operation).url)
        self.assertContains(response, "cancelling now could brick it")
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)

    def test_cancel_refused_when_finished(self):
        operation = self._operation(status="success")
        response = self.client.get(self._cancel(operation).url)
        self.assertContains(response, "already finished")

    def test_cancel_requires_post_permission_and_organization(self):
        operation = self._operation()
        url = reverse("admin:modem_upgrader_cancel_operation", args=[operation.pk])
        self.assertEqual(self.client.get(url).status_code, 405)
        operator = self._create_operator(organizations=[self.org])
        self.client.force_login(operator)
        self.assertEqual(self.client.post(url).status_code, 403)
        other = self._create_org(name="other", slug="other")
        self.client.force_login(self._create_administrator(organizations=[other]))
        self.assertEqual(self.client.post(url).status_code, 404)
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.IDLE)

    def test_open_redirect_refused(self):
        operation = self._operation()
        url = reverse("admin:modem_upgrader_cancel_operation", args=[operation.pk])
        response = self.client.post(f"{url}?next=https://evil.example/")
        self.assertNotIn("evil", response.url)


class TestDeviceListFilters(DeviceAdminMixin, TestCase):
    def test_filter_by_modem_model_and_version(self):
        other = self._create_modem_device(
            name="other-dev",
            mac_address="00:11:22:33:44:77",
            modem_model="FN990A40",
            version=NEW_VERSION,
        )
        opts = Device._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = self.client.get(url, {"modem_model": FN990A28})
        self.assertContains(response, self.device.name)
        self.assertNotContains(response, other.name)
        response = self.client.get(url, {"modem_firmware_version": NEW_VERSION})
        self.assertContains(response, other.name)
        self.assertNotContains(response, f">{self.device.name}<")
        response = self.client.get(url)
        self.assertContains(response, "modem model")
        self.assertContains(response, "modem firmware version")
