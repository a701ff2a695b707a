"""Mass upgrades: the build action, the preview page and the batch page."""

import json
from unittest import mock

import swapper
from django.template.defaultfilters import filesizeformat
from django.test import TestCase
from django.urls import reverse

from openwisp_users.tests.utils import TestMultitenantAdminMixin

from ..base.models import OperationStatus
from ..upgrade import add_bytes_sent, mark_flash_started, mark_in_progress
from . import (
    NEW_VERSION,
    OLD_VERSION,
    ModemBatchUpgradeOperation,
    ModemBuild,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)
from .test_admin import admin_url

DeviceGroup = swapper.load_model("config", "DeviceGroup")
Location = swapper.load_model("geo", "Location")
DeviceLocation = swapper.load_model("geo", "DeviceLocation")


def options(**values):
    """The form data the options editor sends."""
    return {"upgrade_options": json.dumps(values)}


class MassUpgradeMixin(TestModemUpgraderMixin, TestMultitenantAdminMixin):
    def setUp(self):
        super().setUp()
        self.org = self._get_org()
        self.image = self._create_image()
        self.build = self.image.build
        self.client.force_login(self._get_admin())

    def _devices(self, count, start=0, **kwargs):
        return [
            self._create_modem_device(
                name=f"dev-{i:03}",
                mac_address=f"00:11:22:33:{i // 256:02x}:{i % 256:02x}",
                **kwargs,
            )
            for i in range(start, start + count)
        ]

    def preview_url(self, build=None):
        return reverse(
            "admin:modem_upgrader_mass_upgrade", args=[(build or self.build).pk]
        )


@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestMassUpgradePreview(MassUpgradeMixin, TestCase):
    def test_action_redirects_to_preview(self, delay):
        response = self.client.post(
            admin_url(ModemBuild, "changelist"),
            {"action": "mass_upgrade", "_selected_action": [str(self.build.pk)]},
        )
        self.assertRedirects(
            response, self.preview_url(), fetch_redirect_response=False
        )

    def test_action_needs_exactly_one_build(self, delay):
        other = self._create_build(version="M0R.OTHER", category=self.build.category)
        response = self.client.post(
            admin_url(ModemBuild, "changelist"),
            {
                "action": "mass_upgrade",
                "_selected_action": [str(self.build.pk), str(other.pk)],
            },
            follow=True,
        )
        self.assertContains(response, "Select exactly one build")

    def test_preview_lists_eligible_and_excluded_with_reasons(self, delay):
        eligible = self._devices(2)
        other_model = self._create_modem_device(
            name="other-model", mac_address="00:aa:00:00:00:01", modem_model="FN990A40"
        )
        current = self._create_modem_device(
            name="up-to-date", mac_address="00:aa:00:00:00:02", version=NEW_VERSION
        )
        running = self._create_modem_device(
            name="running", mac_address="00:aa:00:00:00:03"
        )
        ModemUpgradeOperation.objects.create(device=running, image=self.image)
        no_connection = self._create_modem_device(
            name="no-connection", mac_address="00:aa:00:00:00:04"
        )
        no_connection.deviceconnection_set.update(enabled=False)
        response = self.client.get(self.preview_url(), {"organization": self.org.pk})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "2 devices will be upgraded")
        for device in eligible:
            self.assertContains(response, device.name)
        for device, label in (
            (other_model, "the modem is another model"),
            (current, "already on this version"),
            (running, "an upgrade is already running"),
            (no_connection, "no enabled SSH connection"),
        ):
            self.assertContains(response, device.name)
            self.assertContains(response, label)
        self.assertContains(response, "4 devices excluded")
        self.assertContains(response, "Confirm mass upgrade")

    def test_filters(self, delay):
        devices = self._devices(3)
        group = DeviceGroup.objects.create(name="g", organization=self.org)
        devices[0].group = group
        devices[0].full_clean()
        devices[0].save()
        response = self.client.get(
            self.preview_url(), {"organization": self.org.pk, "group": group.pk}
        )
        self.assertContains(response, "1 device will be upgraded")
        response = self.client.get(
            self.preview_url(),
            {"organization": self.org.pk, "from_version": "M0R.NONE"},
        )
        self.assertContains(response, "0 devices will be upgraded")
        self.assertNotContains(response, "Confirm mass upgrade")
        location = Location.objects.create(
            name="site", address="x", type="outdoor", organization=self.org
        )
        DeviceLocation.objects.create(content_object=devices[1], location=location)
        response = self.client.get(
            self.preview_url(),
            {
                "organization": self.org.pk,
                "location": location.pk,
                "from_version": OLD_VERSION,
            },
        )
        self.assertContains(response, "1 device will be upgraded")
        self.assertContains(response, devices[1].name)

    def _confirm(self, **extra):
        data = {"organization": self.org.pk, "confirm": "1"}
        data.update(extra)
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(self.preview_url(), data)

    def test_confirm_creates_batch_and_redirects(self, delay):
        self._devices(3)
        response = self._confirm(
            upgrade_options=json.dumps(
                {"upgrade_timeout": 300, "verify_checksum": True}
            )
        )
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertRedirects(
            response,
            admin_url(ModemBatchUpgradeOperation, "change", batch.pk),
            fetch_redirect_response=False,
        )
        # the default the editor filled in is not stored
        self.assertEqual(batch.upgrade_options, {"upgrade_timeout": 300})
        self.assertEqual(batch.operations.count(), 3)
        self.assertEqual(delay.call_count, 3)

    def test_validation_errors(self, delay):
        self._devices(1)
        other_org = self._create_org(name="other", slug="other")
        foreign_group = DeviceGroup.objects.create(name="g", organization=other_org)
        cases = [
            (options(upgrade_timeout=5), "is less than the minimum of 60"),
            (options(tool_path="x;reboot"), "is not a command name such as uxfp"),
            ({"upgrade_options": "{"}, "Enter a valid JSON"),
            ({"upgrade_options": "[1]"}, "must be a JSON object"),
            ({"from_version": "bad version!"}, "Letters, digits"),
            ({"group": foreign_group.pk}, "Select a valid choice"),
            ({"organization": ""}, "This field is required"),
            ({"from_version": "M0R.NONE"}, "No device can be upgraded"),
        ]
        for extra, message in cases:
            with self.subTest(extra=extra):
                response = self._confirm(**extra)
                self.assertEqual(response.status_code, 200)
                self.assertContains(response, message)
                self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        delay.assert_not_called()

    def test_refused_confirm_keeps_the_preview_and_its_button(self, delay):
        from django.core.exceptions import ValidationError

        self._devices(2)
        with mock.patch(
            "openwisp_modem_upgrader.admin.mass_upgrade.create_batch",
            side_effect=ValidationError({"deadline": "changed meanwhile"}),
        ):
            response = self._confirm()
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "changed meanwhile")
        self.assertContains(response, 'name="confirm"')
        self.assertContains(response, 'id="modem-preview-devices"')
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_organization_isolation(self, delay):
        other_org = self._create_org(name="other", slug="other")
        other_build = self._create_build(
            version="M0R.OTHER",
            category=self._create_category(name="o", organization=other_org),
        )
        manager = self._create_administrator(organizations=[self.org])
        self.client.force_login(manager)
        self.assertEqual(self.client.get(self.preview_url()).status_code, 200)
        self.assertEqual(
            self.client.get(self.preview_url(other_build)).status_code, 404
        )
        # a shared build: the manager can only target its own organization
        shared = self._create_build(
            version="M0R.SHARED",
            category=self._create_category(name="s", organization=None),
        )
        self._create_image(build=shared)
        response = self._confirm_for(shared, other_org)
        self.assertContains(response, "Select a valid choice")
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def _confirm_for(self, build, organization):
        return self.client.post(
            self.preview_url(build), {"organization": organization.pk, "confirm": "1"}
        )

    def test_operator_refused(self, delay):
        self.client.force_login(self._create_operator(organizations=[self.org]))
        self.assertEqual(self.client.get(self.preview_url()).status_code, 403)


class TestBatchPage(MassUpgradeMixin, TestCase):
    def _batch(self, devices):
        batch = ModemBatchUpgradeOperation.objects.create(
            build=self.build,
            organization=self.org,
            status=OperationStatus.IN_PROGRESS,
        )
        ModemUpgradeOperation.objects.bulk_create(
            [
                ModemUpgradeOperation(device=device, image=self.image, batch=batch)
                for device in devices
            ]
        )
        return batch

    def test_counts_rates_and_operations(self):
        batch = self._batch(self._devices(4))
        ops = list(batch.operations.order_by("device__name"))
        ModemUpgradeOperation.objects.filter(pk=ops[0].pk).update(
            status="success", progress=100
        )
        ModemUpgradeOperation.objects.filter(pk=ops[1].pk).update(status="failed")
        response = self.client.get(
            admin_url(ModemBatchUpgradeOperation, "change", batch.pk)
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, '<span class="modem-batch-done">2</span>')
        self.assertContains(response, "25.0%", count=2)
        self.assertContains(response, 'aria-valuenow="50"')
        self.assertContains(response, 'class="modem-operation"', count=4)
        self.assertContains(
            response, f'data-modem-websocket="/ws/modem-upgrader/batch/{batch.pk}/"'
        )
        response = self.client.get(
            admin_url(ModemBatchUpgradeOperation, "change", batch.pk),
            {"status": "failed"},
        )
        self.assertContains(response, 'class="modem-operation"', count=1)
        self.assertContains(response, "dev-001")

    def test_data_sent_shown(self):
        batch = self._batch(self._devices(2))
        first, second = batch.operations.order_by("device__name")
        add_bytes_sent(first.pk, 3 * 1024 * 1024)
        add_bytes_sent(second.pk, 1024 * 1024)
        add_bytes_sent(second.pk, 0)  # nothing sent: nothing counted
        response = self.client.get(
            admin_url(ModemBatchUpgradeOperation, "change", batch.pk)
        )
        self.assertContains(
            response,
            '<span class="modem-batch-bytes-sent" title="4194304 bytes">'
            "4.0\xa0MB</span>",
        )
        response = self.client.get(admin_url(ModemUpgradeOperation, "changelist"))
        self.assertContains(response, "3.0\xa0MB")
        response = self.client.get(
            admin_url(ModemUpgradeOperation, "change", second.pk)
        )
        self.assertContains(response, "1048576")

    def test_pagination(self):
        batch = self._batch(self._devices(55))
        url = admin_url(ModemBatchUpgradeOperation, "change", batch.pk)
        response = self.client.get(url)
        self.assertContains(response, 'class="modem-operation"', count=50)
        self.assertContains(response, "page 1 of 2")
        response = self.client.get(url, {"p": 2})
        self.assertContains(response, 'class="modem-operation"', count=5)

    def test_query_count_constant(self):
        small = self._batch(self._devices(3))
        url = admin_url(ModemBatchUpgradeOperation, "change", small.pk)
        self.client.get(url)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as few:
            self.client.get(url)
        large = self._batch(self._devices(40, start=3))
        url = admin_url(ModemBatchUpgradeOperation, "change", large.pk)
        with CaptureQueriesContext(connection) as many:
            self.client.get(url)
        self.assertEqual(len(few), len(many))
        self.batch_queries = len(many)

    def test_cancel_remaining(self):
        batch = self._batch(self._devices(3))
        ops = list(batch.operations.order_by("device__name"))
        mark_in_progress(ops[0].pk)
        mark_flash_started(ops[0].pk)
        ModemUpgradeOperation.objects.filter(pk=ops[1].pk).update(status="success")
        url = reverse("admin:modem_upgrader_cancel_batch", args=[batch.pk])
        page = self.client.get(
            admin_url(ModemBatchUpgradeOperation, "change", batch.pk)
        )
        # one click on the page asks first (modem-upgrade-progress.js)
        self.assertContains(page, 'data-modem-confirm="Cancel every upgrade')
        response = self.client.post(url, follow=True)
        self.assertContains(response, "1 modem upgrade cancelled.")
        self.assertContains(response, "already being flashed")
        statuses = dict(batch.operations.values_list("pk", "status"))
        self.assertEqual(statuses[ops[0].pk], OperationStatus.IN_PROGRESS)
        self.assertEqual(statuses[ops[2].pk], OperationStatus.CANCELLED)

    def test_cancel_isolation_and_permission(self):
        batch = self._batch(self._devices(1))
        url = reverse("admin:modem_upgrader_cancel_batch", args=[batch.pk])
        other = self._create_org(name="other", slug="other")
        self.client.force_login(self._create_administrator(organizations=[other]))
        self.assertEqual(self.client.post(url).status_code, 404)
        self.client.force_login(self._create_operator(organizations=[self.org]))
        self.assertEqual(self.client.post(url).status_code, 403)
        self.assertFalse(batch.operations.filter(status="cancelled").exists())

    def test_other_organization_batch_hidden(self):
        batch = self._batch(self._devices(1))
        other = self._create_org(name="other", slug="other")
        self.client.force_login(self._create_administrator(organizations=[other]))
        url = admin_url(ModemBatchUpgradeOperation, "change", batch.pk)
        self.assertNotEqual(self.client.get(url).status_code, 200)
        response = self.client.get(admin_url(ModemBatchUpgradeOperation, "changelist"))
        self.assertNotContains(response, str(batch))


class TestChangelistQueryCounts(MassUpgradeMixin, TestCase):
    def _count(self, url):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        self.client.get(url)  # warm caches (menu, content types, sessions)
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(self.client.get(url).status_code, 200)
        return len(queries)

    def test_build_changelist_constant(self):
        url = admin_url(ModemBuild, "changelist")
        self._devices(3)
        few = self._count(url)
        for i in range(20):
            self._create_image(
                build=self._create_build(
                    version=f"M0R.{i:03}", category=self.build.category
                )
            )
        self._devices(5, start=3, version="M0R.001")
        self.assertEqual(few, self._count(url))

    def test_batch_changelist_constant(self):
        url = admin_url(ModemBatchUpgradeOperation, "changelist")
        ModemBatchUpgradeOperation.objects.create(
            build=self.build, organization=self.org
        )
        few = self._count(url)
        for _ in range(15):
            ModemBatchUpgradeOperation.objects.create(
                build=self.build, organization=self.org
            )
        self.assertEqual(few, self._count(url))

    def test_operation_changelist_constant(self):
        url = admin_url(ModemUpgradeOperation, "changelist")
        devices = self._devices(12)
        ModemUpgradeOperation.objects.create(device=devices[0], image=self.image)
        few = self._count(url)
        for device in devices[1:]:
            ModemUpgradeOperation.objects.create(device=device, image=self.image)
        self.assertEqual(few, self._count(url))

    def test_device_changelist_with_filters_constant(self):
        import swapper as _swapper

        opts = _swapper.load_model("config", "Device")._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        url += f"?modem_firmware_version={OLD_VERSION}"
        self._devices(2)
        few = self._count(url)
        self._devices(15, start=2)
        self.assertEqual(few, self._count(url))

    def test_build_page_shows_changelog_checksum_size_and_running_devices(self):
        self.build.changelog = "# Fixes\n* **faster** <script>x</script>"
        self.build.save()
        self._devices(2, version=NEW_VERSION)
        self._devices(1, start=2)
        response = self.client.get(admin_url(ModemBuild, "change", self.build.pk))
        self.assertContains(response, "<h1>Fixes</h1>")
        self.assertContains(response, "<strong>faster</strong>")
        self.assertNotContains(response, "<script>x</script>")
        self.assertContains(response, self.image.sha256)
        self.assertContains(response, filesizeformat(self.image.size))
        self.assertContains(response, '<div class="readonly">2</div>')
        response = self.client.get(admin_url(ModemBuild, "changelist"))
        self.assertContains(response, '<td class="field-devices_running">2</td>')
