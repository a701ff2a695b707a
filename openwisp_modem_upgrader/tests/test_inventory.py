"""The inventory seen by operators: compliance, device list, device tab,
on-demand detection, history and acknowledging, in the admin and the API."""

import json
from datetime import timedelta
from unittest import mock

from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import RequestFactory, TestCase
from django.urls import resolve, reverse
from django.utils import timezone

from openwisp_controller.config.admin import DeviceAdmin
from openwisp_users.tests.utils import TestMultitenantAdminMixin
from openwisp_utils.admin_theme.dashboard import get_dashboard_context

from ..admin import inventory as inventory_admin
from ..base.models import DetectionStatus, ModemChangeSource
from ..inventory import (
    ComplianceState,
    behind_device_groups,
    compliance_state,
    compliance_table,
)
from ..swapper import load_model
from . import (
    FN990A28,
    NEW_VERSION,
    OLD_VERSION,
    Device,
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
    TestModemUpgraderMixin,
)

DeviceModemDetection = load_model("DeviceModemDetection")
ModemHistory = load_model("ModemHistory")
QUEUE_DETECTION = "openwisp_modem_upgrader.tasks.detect_modems.delay"
API = "modem_upgrader:{}"


def admin_url(model, name, *args):
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=args)


class FleetMixin(TestModemUpgraderMixin, TestMultitenantAdminMixin):
    """org "default": behind, current, unreachable (behind), never detected,
    unreachable and never detected, FN990A40 without builds; org b: one
    FN990A28 device with no build of its own (org a's builds are not its)."""

    def setUp(self):
        super().setUp()
        self.org = self._get_org()
        self.org_b = self._create_org(name="org b", slug="org-b")
        category = self._create_category()
        self.old_build = self._create_build(category=category, version=OLD_VERSION)
        self.new_build = self._create_build(category=category, version=NEW_VERSION)
        self.behind = self._modem_device("behind", OLD_VERSION)
        self.current = self._modem_device("current", NEW_VERSION)
        self.unreachable = self._modem_device("unreachable", OLD_VERSION)
        self._detection(self.unreachable, DetectionStatus.UNREACHABLE, ok=False)
        self.never = self._device("never")
        self.never_unreachable = self._device("never-unreachable")
        self._detection(self.never_unreachable, DetectionStatus.UNREACHABLE, ok=False)
        self.fn990a40 = self._modem_device("fn990a40", "X1", modem_model="FN990A40")
        self.foreign = self._modem_device(
            "foreign", OLD_VERSION, organization=self.org_b
        )

    def _device(self, name, organization=None):
        number = Device.objects.count() + 1
        return self._create_device(
            name=name,
            organization=organization or self.org,
            mac_address=f"00:11:22:33:44:{number:02x}",
        )

    def _modem_device(self, name, version, modem_model=FN990A28, organization=None):
        device = self._device(name, organization)
        DeviceModemFirmware.objects.create(
            device=device,
            usb_path="1-1",
            modem_manufacturer="Telit",
            modem_model=modem_model,
            modem_firmware_version=version,
            modem_detected_at=timezone.now(),
            detection_status=DetectionStatus.OK,
        )
        self._detection(device, DetectionStatus.OK)
        return device

    def _connect(self, device):
        self._create_config(device=device)
        self._create_device_connection(
            device=device,
            credentials=self._get_credentials(organization=device.organization),
        )

    def _detection(self, device, status, ok=True):
        now = timezone.now()
        DeviceModemDetection.objects.update_or_create(
            device=device,
            defaults={
                "attempted_at": now,
                "succeeded_at": now if ok else None,
                "status": status,
            },
        )


class TestCompliance(FleetMixin, TestCase):
    def test_compliance_states(self):
        states = dict(
            Device.objects.annotate(state=compliance_state()).values_list(
                "name", "state"
            )
        )
        self.assertEqual(
            states,
            {
                "behind": ComplianceState.BEHIND,
                "current": ComplianceState.UP_TO_DATE,
                "unreachable": ComplianceState.UNREACHABLE,
                "never": ComplianceState.NOT_DETECTED,
                # one vocabulary: the router the server cannot reach
                "never-unreachable": ComplianceState.UNREACHABLE,
                "fn990a40": ComplianceState.UNKNOWN,
                "foreign": ComplianceState.UNKNOWN,
            },
        )

    def test_compliance_table(self):
        with self.assertNumQueries(4):
            rows = compliance_table([self.org.pk])
        by_model = {row["modem_model"]: row for row in rows}
        self.assertEqual(set(by_model), {FN990A28, "FN990A40", ""})
        fn990a28 = by_model[FN990A28]
        self.assertEqual(fn990a28["devices"], 3)
        self.assertEqual(fn990a28["versions"], {NEW_VERSION: 1, OLD_VERSION: 2})
        self.assertEqual(fn990a28["newest_versions"], [NEW_VERSION])
        self.assertEqual(fn990a28["behind"], 2)
        self.assertEqual(fn990a28["unreachable"], 1)
        self.assertEqual(fn990a28["never_detected"], 0)
        self.assertEqual(by_model["FN990A40"]["behind"], 0)
        self.assertEqual(by_model["FN990A40"]["newest_versions"], [])
        unknown = by_model[""]
        self.assertEqual(
            (unknown["devices"], unknown["never_detected"], unknown["unreachable"]),
            (2, 1, 1),
        )
        # org b sees its device, never behind builds of org a
        (foreign,) = compliance_table([self.org_b.pk])
        self.assertEqual((foreign["devices"], foreign["behind"]), (1, 0))
        self.assertEqual(len(compliance_table()), 4)

    def test_shared_build_and_image_category(self):
        shared = self._create_category(name="shared", organization=None)
        newest = self._create_build(category=shared, version="M0R.020000-B030")
        (foreign,) = compliance_table([self.org_b.pk])
        self.assertEqual(foreign["behind"], 1)
        self.assertEqual(foreign["newest_versions"], [newest.version])
        # a modem running an image of org a's category compares with that
        # category's newest build, not with the newer shared one
        image = self._create_image(build=self.new_build)
        DeviceModemFirmware.objects.filter(device=self.current).update(image=image)
        groups = behind_device_groups([self.org.pk])
        current_builds = [
            build
            for build, ids in groups[(self.org.pk, FN990A28)].items()
            if str(self.current.pk) in ids
        ]
        self.assertEqual(current_builds, [])
        self.assertEqual(set(groups[(self.org.pk, FN990A28)]), {newest.pk})


class TestDeviceList(FleetMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.client.force_login(self._get_admin())

    def test_columns(self):
        response = self.client.get(admin_url(Device, "changelist"))
        self.assertEqual(response.status_code, 200)
        rows = {d.name: d for d in response.context["cl"].result_list}
        self.assertEqual(rows["behind"].inventory_modem_model, FN990A28)
        self.assertEqual(rows["behind"].inventory_firmware_version, OLD_VERSION)
        self.assertTrue(rows["behind"].inventory_behind)
        self.assertFalse(rows["current"].inventory_behind)
        self.assertIsNone(rows["never"].inventory_detected_at)
        self.assertIsNotNone(rows["current"].inventory_detected_at)
        self.assertContains(response, "modem-detection-unreachable")
        self.assertContains(response, "Detect modems")
        # "behind" is a warning on the devices behind, nothing elsewhere
        # (no green tick for behind, no red cross for up to date)
        self.assertContains(response, '<span class="modem-behind"', count=2)
        self.assertNotContains(response, "icon-yes.svg")
        self.assertNotContains(response, "icon-no.svg")

    def test_filters(self):
        url = admin_url(Device, "changelist")
        cases = {
            "modem_compliance=behind": {"behind"},
            "modem_compliance=not-detected": {"never"},
            "modem_compliance=unreachable": {"unreachable", "never-unreachable"},
            "modem_compliance=up-to-date": {"current"},
            "modem_detected=never": {"never"},
            f"modem_model={FN990A28}": {"behind", "current", "unreachable", "foreign"},
            f"modem_firmware_version={NEW_VERSION}": {"current"},
        }
        for query, names in cases.items():
            with self.subTest(query=query):
                response = self.client.get(f"{url}?{query}")
                self.assertEqual(
                    {d.name for d in response.context["cl"].result_list}, names
                )

    def test_device_admin_that_copied_the_lists_before_this_module(self):
        """openwisp-monitoring's device admin copies the controller's
        ``list_display`` and ``list_filter`` when it is loaded: before this
        module, the copies had no modem column or filter, and the dashboard
        chart's ``?modem_compliance=behind`` ended on ``?e=1``."""
        modem_columns = set(inventory_admin.MODEM_COLUMNS)
        modem_filters = set(inventory_admin.MODEM_FILTERS)

        class CopiedListsDeviceAdmin(DeviceAdmin):
            list_display = [
                column
                for column in DeviceAdmin.list_display
                if column not in modem_columns
            ] + ["health_status_changelist"]
            list_filter = [
                item for item in DeviceAdmin.list_filter if item not in modem_filters
            ]

            @admin.display(description="health")
            def health_status_changelist(self, obj):
                return "ok"

        model_admin = CopiedListsDeviceAdmin(Device, admin.site)
        url = admin_url(Device, "changelist")
        request = RequestFactory().get(url, {"modem_compliance": "behind"})
        request.user = self._get_admin()
        request.resolver_match = resolve(url)
        # raises IncorrectLookupParameters (the ?e=1 redirect) for a
        # parameter no filter of the list takes
        changelist = model_admin.get_changelist_instance(request)
        self.assertEqual(
            changelist.list_display[-2:], list(inventory_admin.MODEM_COLUMNS)
        )
        self.assertIn("health_status_changelist", changelist.list_display)
        shown = [type(spec) for spec in changelist.filter_specs]
        for modem_filter in inventory_admin.MODEM_FILTERS:
            self.assertIn(modem_filter, shown)
        self.assertEqual({d.name for d in changelist.result_list}, {"behind"})
        self.assertTrue(changelist.result_list[0].inventory_behind)

    def test_constant_queries(self):
        url = admin_url(Device, "changelist")
        self.client.get(url)

        def count_queries():
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as context:
                response = self.client.get(url)
            self.assertEqual(response.status_code, 200)
            return len(context.captured_queries), len(
                response.context["cl"].result_list
            )

        first, shown = count_queries()
        for name in range(shown):
            self._modem_device(f"extra-{name}", OLD_VERSION)
        second, shown_after = count_queries()
        self.assertEqual(shown_after, 2 * shown)
        self.assertEqual(first, second)


class TestDetectionAdmin(FleetMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.admin = self._get_admin()
        self.client.force_login(self.admin)

    def test_detect_action(self):
        with mock.patch(QUEUE_DETECTION) as queued:
            with self.captureOnCommitCallbacks(execute=True):
                response = self.client.post(
                    admin_url(Device, "changelist"),
                    {
                        "action": "detect_modems",
                        "_selected_action": [self.never.pk, self.behind.pk],
                    },
                    follow=True,
                )
        self.assertContains(response, "Modem detection queued for 2 devices.")
        (ids,) = queued.call_args.args
        self.assertEqual(set(ids), {str(self.never.pk), str(self.behind.pk)})

    def test_detect_action_needs_permission(self):
        operator = self._create_operator(organizations=[self.org])
        operator.user_permissions.add(
            *Permission.objects.filter(codename__in=["view_device", "change_device"])
        )
        self.client.force_login(operator)
        response = self.client.get(admin_url(Device, "changelist"))
        self.assertNotContains(response, 'value="detect_modems"')

    def test_device_tab_detect_button_runs_detection(self):
        response = self.client.get(admin_url(Device, "change", self.never.pk))
        self.assertContains(response, "modem-detect-button")
        self.assertContains(response, "never been detected")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(
                admin_url(Device, "detect_modems", self.never.pk), follow=True
            )
        self.assertContains(response, "Modem detection queued for 1 device.")
        # really detected (eager Celery): no SSH connection, recorded so
        detection = DeviceModemDetection.objects.get(device=self.never)
        self.assertEqual(detection.status, DetectionStatus.UNREACHABLE)
        response = self.client.get(admin_url(Device, "change", self.never.pk))
        self.assertContains(response, 'data-status="unreachable"')

    def test_detect_foreign_device_404(self):
        manager = self._create_administrator(organizations=[self.org])
        self.client.force_login(manager)
        with mock.patch(QUEUE_DETECTION) as queued:
            with self.captureOnCommitCallbacks(execute=True):
                response = self.client.post(
                    admin_url(Device, "detect_modems", self.foreign.pk)
                )
        self.assertEqual(response.status_code, 404)
        queued.assert_not_called()

    def test_history_and_acknowledge(self):
        modem = DeviceModemFirmware.objects.get(device=self.behind)
        modem.unexplained_change = True
        modem.unexplained_change_at = timezone.now()
        modem.save()
        ModemHistory.objects.create(
            device=self.behind,
            modem=modem,
            usb_path="1-1",
            detected_at=timezone.now(),
            model=FN990A28,
            firmware_version="M0R.999999-B999",
            source=ModemChangeSource.DETECTION,
            unexplained=True,
        )
        response = self.client.get(admin_url(Device, "change", self.behind.pk))
        self.assertContains(response, "modem-history-unexplained")
        self.assertContains(response, "M0R.999999-B999")
        self.assertContains(response, "modem-acknowledge-button")
        url = admin_url(Device, "acknowledge_modem_change", self.behind.pk)
        response = self.client.post(url, {"acknowledge_modem": "garbage"}, follow=True)
        self.assertContains(response, "No unexplained change to acknowledge.")
        response = self.client.post(url, {"acknowledge_modem": str(modem.pk)})
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response.url.endswith("#modems-group"))
        modem.refresh_from_db()
        self.assertFalse(modem.unexplained_change)
        self.assertTrue(ModemHistory.objects.get(modem=modem).unexplained)

    def test_mass_upgrade_preview_detects_never_detected(self):
        self._create_image(build=self.new_build)
        url = reverse("admin:modem_upgrader_mass_upgrade", args=[self.new_build.pk])
        response = self.client.get(url, {"organization": self.org.pk})
        self.assertContains(response, "modem not detected yet")
        # the router never reached says so, in the one vocabulary
        self.assertContains(response, "router unreachable")
        self.assertContains(response, 'data-reason="router-unreachable"')
        self.assertContains(response, "Detect these devices")
        with mock.patch(QUEUE_DETECTION) as queued:
            with self.captureOnCommitCallbacks(execute=True):
                response = self.client.post(
                    url, {"organization": self.org.pk, "detect": "1"}, follow=True
                )
        self.assertContains(response, "Modem detection queued for 2 devices.")
        (ids,) = queued.call_args.args
        self.assertEqual(set(ids), {str(self.never.pk), str(self.never_unreachable.pk)})


class TestComplianceAdmin(FleetMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.client.force_login(self._get_admin())

    def test_page_and_upgrade_these_devices(self):
        self._create_image(build=self.new_build)
        self._connect(self.behind)
        build_model = load_model("ModemBuild")
        response = self.client.get(
            admin_url(build_model, "compliance"), {"organization": self.org.pk}
        )
        self.assertEqual(response.status_code, 200)
        rows = {r["modem_model"]: r for r in response.context["rows"]}
        self.assertEqual(rows[FN990A28]["behind"], 2)
        (upgrade,) = rows[FN990A28]["upgrades"]
        self.assertEqual(upgrade["build"], self.new_build)
        self.assertEqual(
            set(upgrade["device_ids"]), {str(self.behind.pk), str(self.unreachable.pk)}
        )
        self.assertContains(response, "Upgrade these 2 devices to")
        # the row's form opens the preview for exactly those devices
        url = reverse("admin:modem_upgrader_mass_upgrade", args=[self.new_build.pk])
        data = {
            "organization": self.org.pk,
            "device_ids": upgrade["device_ids"],
            "preview": "1",
        }
        response = self.client.post(url, data)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.context["devices_count"], 1)
        self.assertEqual(response.context["excluded_count"], 1)
        self.assertEqual(response.context["chosen_devices_count"], 2)
        mock_path = "openwisp_modem_upgrader.tasks.fan_out_batch.delay"
        with mock.patch(mock_path):
            response = self.client.post(url, dict(data, confirm="1"))
        self.assertEqual(response.status_code, 302)
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertEqual(
            set(batch.device_ids), {str(self.behind.pk), str(self.unreachable.pk)}
        )

    def test_foreign_devices_refused(self):
        url = reverse("admin:modem_upgrader_mass_upgrade", args=[self.new_build.pk])
        manager = self._create_administrator(organizations=[self.org])
        self.client.force_login(manager)
        response = self.client.post(
            url,
            {
                "organization": self.org.pk,
                "device_ids": [str(self.foreign.pk)],
                "confirm": "1",
            },
        )
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.context["form"].errors)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_dashboard_chart(self):
        request = mock.Mock(user=self._get_admin())
        charts = get_dashboard_context(request)["dashboard_charts"]
        (chart,) = [
            c for c in charts.values() if c["name"] == "Modem firmware compliance"
        ]
        values = dict(zip(chart["filters"], chart["query_params"]["values"]))
        self.assertEqual(
            values,
            {
                ComplianceState.UP_TO_DATE: 1,
                ComplianceState.BEHIND: 1,
                ComplianceState.UNREACHABLE: 2,
                ComplianceState.NOT_DETECTED: 1,
            },
        )
        self.assertEqual(
            chart["target_link"], "/admin/config/device/?modem_compliance="
        )


class TestInventoryApi(FleetMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.manager = self._create_administrator(organizations=[self.org])
        self.client.force_login(self.manager)

    def _post(self, name, data=None, *args):
        return self.client.post(
            reverse(API.format(name), args=args),
            json.dumps(data or {}),
            content_type="application/json",
        )

    def test_detect_one_device(self):
        with self.captureOnCommitCallbacks(execute=True):
            response = self._post("api_device_detect_modems", None, self.never.pk)
        self.assertEqual(response.status_code, 202)
        self.assertEqual(response.data, {"queued": 1, "devices": [str(self.never.pk)]})
        self.assertEqual(
            DeviceModemDetection.objects.get(device=self.never).status,
            DetectionStatus.UNREACHABLE,
        )

    def test_detect_foreign_or_unknown_device(self):
        with mock.patch(QUEUE_DETECTION) as queued:
            for pk in (self.foreign.pk, "00000000-0000-0000-0000-000000000000"):
                with self.subTest(pk=pk):
                    with self.captureOnCommitCallbacks(execute=True):
                        response = self._post("api_device_detect_modems", None, pk)
                    self.assertEqual(response.status_code, 404)
        queued.assert_not_called()

    def test_detect_filtered_set(self):
        with mock.patch(QUEUE_DETECTION) as queued:
            with self.captureOnCommitCallbacks(execute=True):
                response = self._post("api_detect_modems", {"never_detected": True})
        self.assertEqual(response.status_code, 202)
        self.assertEqual(set(response.data["devices"]), {str(self.never.pk)})
        self.assertEqual(queued.call_args.args[0], [str(self.never.pk)])
        with mock.patch(QUEUE_DETECTION):
            response = self._post("api_detect_modems", {"modem_model": FN990A28})
        self.assertEqual(response.data["queued"], 3)  # org b's is not theirs

    def test_detect_bad_input(self):
        cases = [
            {},
            {"devices": [str(self.foreign.pk)]},
            {"devices": ["nope"]},
            {"devices": "text"},
            {"never_detected": "maybe"},
            {"modem_model": "x" * 100},
        ]
        with mock.patch(QUEUE_DETECTION) as queued:
            for data in cases:
                with self.subTest(data=data):
                    response = self._post("api_detect_modems", data)
                    self.assertEqual(response.status_code, 400)
        queued.assert_not_called()

    def test_detect_needs_permission(self):
        operator = self._create_operator(organizations=[self.org])
        self.client.force_login(operator)
        response = self._post("api_device_detect_modems", None, self.never.pk)
        self.assertEqual(response.status_code, 403)

    def test_history(self):
        for device, version in ((self.behind, "A1"), (self.foreign, "B1")):
            ModemHistory.objects.create(
                device=device,
                detected_at=timezone.now() - timedelta(minutes=1),
                model=FN990A28,
                firmware_version=version,
                source=ModemChangeSource.DETECTION,
            )
        url = reverse(API.format("api_modem_history_list"))
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            [r["firmware_version"] for r in response.data["results"]], ["A1"]
        )
        response = self.client.get(url, {"device": self.current.pk})
        self.assertEqual(response.data["count"], 0)
        self.assertEqual(self.client.get(url, {"device": "x"}).status_code, 400)
        self.assertEqual(self.client.post(url, {}).status_code, 405)

    def test_acknowledge(self):
        DeviceModemFirmware.objects.filter(device=self.behind).update(
            unexplained_change=True, unexplained_change_at=timezone.now()
        )
        name = "api_device_acknowledge_modem_change"
        response = self._post(name, {"usb_path": "1-1;reboot"}, self.behind.pk)
        self.assertEqual(response.status_code, 400)
        response = self._post(name, {"usb_path": "1-1"}, self.behind.pk)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.data, {"acknowledged": ["1-1"]})
        self.assertFalse(
            DeviceModemFirmware.objects.get(device=self.behind).unexplained_change
        )
        self.assertEqual(self._post(name, None, self.behind.pk).status_code, 409)
        self.assertEqual(self._post(name, None, self.foreign.pk).status_code, 404)

    def test_compliance(self):
        url = reverse(API.format("api_compliance"))
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual({r["organization"] for r in response.data}, {str(self.org.pk)})
        row = [r for r in response.data if r["modem_model"] == FN990A28][0]
        self.assertEqual((row["behind"], row["unreachable"]), (2, 1))
        self.assertEqual(row["versions"], {NEW_VERSION: 1, OLD_VERSION: 2})
        response = self.client.get(url, {"organization": self.org_b.pk})
        self.assertEqual(response.status_code, 400)
        response = self.client.get(url, {"organization": "bad"})
        self.assertEqual(response.status_code, 400)

    def test_preview_lists_never_detected_and_device_ids(self):
        self._create_image(build=self.new_build)
        self._connect(self.behind)
        url = reverse(API.format("api_build_upgrade"), args=[self.new_build.pk])
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        reasons = {d["name"]: d["reason"] for d in response.data["excluded"]}
        self.assertEqual(reasons["never"], "not-detected")
        self.assertEqual(reasons["never-unreachable"], "router-unreachable")
        response = self.client.get(url, {"device_ids": [str(self.behind.pk)]})
        self.assertEqual(response.data["devices_count"], 1)
        self.assertEqual(response.data["excluded_count"], 0)
        response = self.client.get(url, {"device_ids": [str(self.foreign.pk)]})
        self.assertEqual(response.status_code, 400)
