from unittest import mock

from django.test import TestCase
from django.urls import reverse

from openwisp_users.tests.utils import TestMultitenantAdminMixin

from .. import settings as app_settings
from . import (
    FIRMWARE_CONTENT,
    FN990A28,
    ModemBatchUpgradeOperation,
    ModemBuild,
    ModemFirmwareImage,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)


def admin_url(model, view, *args):
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


class TestCatalogueAdmin(TestModemUpgraderMixin, TestMultitenantAdminMixin, TestCase):
    def setUp(self):
        self.org_a = self._get_org()
        self.org_b = self._create_org(name="org b", slug="org-b")
        self.shared = self._create_category(name="shared", organization=None)
        self.cat_a = self._create_category(name="cat a", organization=self.org_a)
        self.cat_b = self._create_category(name="cat b", organization=self.org_b)

    def _manager(self):
        user = self._create_administrator(organizations=[self.org_a])
        self.client.force_login(user)
        return user

    def _build_form(self, category, file, **extra):
        data = {
            "category": str(category.pk),
            "modem_model": FN990A28,
            "version": "M0R.020000-B001",
            "changelog": "* fixes",
            "images-TOTAL_FORMS": "1",
            "images-INITIAL_FORMS": "0",
            "images-MIN_NUM_FORMS": "0",
            "images-MAX_NUM_FORMS": "1000",
            "images-0-file": file,
            "images-0-type": "telit-fn990a",
            "images-0-boards": "[]",
        }
        data.update(extra)
        return data

    def test_superuser_pages(self):
        self.client.force_login(self._get_admin())
        image = self._create_image(build=self._create_build(category=self.cat_a))
        pages = [
            admin_url(type(self.cat_a), "changelist"),
            admin_url(ModemBuild, "changelist"),
            admin_url(ModemBuild, "add"),
            admin_url(ModemBuild, "change", image.build.pk),
            admin_url(ModemFirmwareImage, "changelist"),
            admin_url(ModemFirmwareImage, "change", image.pk),
            admin_url(ModemUpgradeOperation, "changelist"),
            admin_url(ModemBatchUpgradeOperation, "changelist"),
        ]
        for url in pages:
            with self.subTest(url=url):
                self.assertEqual(self.client.get(url).status_code, 200)
        response = self.client.get(admin_url(ModemBuild, "change", image.build.pk))
        self.assertContains(response, image.sha256)

    def test_add_build_with_image_upload(self):
        self.client.force_login(self._get_admin())
        response = self.client.post(
            admin_url(ModemBuild, "add"),
            self._build_form(self.cat_a, self._upload()),
        )
        self.assertEqual(response.status_code, 302, response.content[:3000])
        image = ModemFirmwareImage.objects.get(build__version="M0R.020000-B001")
        self.assertEqual(image.sha256, self._sha256())
        self.assertEqual(image.size, len(FIRMWARE_CONTENT))
        with image.file.open("rb") as stored:
            self.assertEqual(stored.read(), FIRMWARE_CONTENT)

    def test_oversized_upload_shows_error_and_saves_nothing(self):
        self.client.force_login(self._get_admin())
        with mock.patch.object(app_settings, "MAX_FILE_SIZE", 64):
            response = self.client.post(
                admin_url(ModemBuild, "add"),
                self._build_form(self.cat_a, self._upload()),
            )
        self.assertContains(response, "may not be larger than 64")
        self.assertFalse(ModemBuild.objects.filter(version="M0R.020000-B001").exists())
        self.assertEqual(ModemFirmwareImage.objects.count(), 0)

    def test_empty_upload_shows_error(self):
        self.client.force_login(self._get_admin())
        response = self.client.post(
            admin_url(ModemBuild, "add"),
            self._build_form(self.cat_a, self._upload(b"", "empty.bin")),
        )
        self.assertContains(response, "empty")
        self.assertEqual(ModemFirmwareImage.objects.count(), 0)

    def test_duplicate_version_shows_error(self):
        self.client.force_login(self._get_admin())
        self._create_build(category=self.cat_a, version="M0R.020000-B001")
        response = self.client.post(
            admin_url(ModemBuild, "add"), self._build_form(self.cat_a, self._upload())
        )
        self.assertContains(response, "already exists")
        self.assertEqual(ModemBuild.objects.count(), 1)

    def test_manager_sees_own_and_shared_only(self):
        self._manager()
        response = self.client.get(admin_url(type(self.cat_a), "changelist"))
        self.assertContains(response, "cat a")
        self.assertContains(response, "shared")
        self.assertNotContains(response, "cat b")
        build_b = self._create_build(category=self.cat_b)
        response = self.client.get(admin_url(ModemBuild, "change", build_b.pk))
        self.assertNotEqual(response.status_code, 200)

    def test_manager_cannot_use_other_organization_category(self):
        self._manager()
        response = self.client.post(
            admin_url(ModemBuild, "add"), self._build_form(self.cat_b, self._upload())
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Select a valid choice")
        self.assertFalse(ModemBuild.objects.exists())

    def test_manager_image_add_form_offers_own_builds_only(self):
        # was a server error: the build field was narrowed as if builds had
        # an organization of their own
        self._manager()
        build_a = self._create_build(category=self.cat_a, version="M0R.A")
        build_b = self._create_build(category=self.cat_b, version="M0R.B")
        shared = self._create_build(category=self.shared, version="M0R.SHARED")
        response = self.client.get(admin_url(ModemFirmwareImage, "add"))
        self.assertEqual(response.status_code, 200)
        builds = set(response.context["adminform"].form.fields["build"].queryset)
        self.assertEqual(builds, {build_a})
        self.assertNotIn(build_b, builds)
        self.assertNotIn(shared, builds)

    def test_manager_cannot_edit_shared_category(self):
        self._manager()
        url = admin_url(type(self.shared), "change", self.shared.pk)
        response = self.client.post(url, {"name": "renamed", "description": ""})
        self.assertEqual(response.status_code, 403)
        self.shared.refresh_from_db()
        self.assertEqual(self.shared.name, "shared")

    def test_operations_are_read_only(self):
        self.client.force_login(self._get_admin())
        for model in (ModemUpgradeOperation, ModemBatchUpgradeOperation):
            with self.subTest(model=model):
                response = self.client.get(admin_url(model, "add"))
                self.assertEqual(response.status_code, 403)

    def test_operation_list_isolated_per_organization(self):
        image = self._create_image(build=self._create_build(category=self.shared))
        device_a = self._create_modem_device(name="dev-a", organization=self.org_a)
        device_b = self._create_modem_device(
            name="dev-b", organization=self.org_b, mac_address="00:11:22:33:44:99"
        )
        for device in (device_a, device_b):
            ModemUpgradeOperation.objects.create(device=device, image=image)
        self._manager()
        response = self.client.get(admin_url(ModemUpgradeOperation, "changelist"))
        self.assertContains(response, "dev-a")
        self.assertNotContains(response, "dev-b")


class TestImageDownload(TestModemUpgraderMixin, TestMultitenantAdminMixin, TestCase):
    def setUp(self):
        self.org_b = self._create_org(name="org b", slug="org-b")
        self.image = self._create_image()

    def test_anonymous_gets_401(self):
        response = self.client.get(self.image.file.url)
        self.assertEqual(response.status_code, 401)

    def test_superuser_downloads_stream(self):
        self.client.force_login(self._get_admin())
        response = self.client.get(self.image.file.url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(b"".join(response.streaming_content), FIRMWARE_CONTENT)

    def test_manager_of_organization_downloads(self):
        user = self._create_administrator(organizations=[self._get_org()])
        self.client.force_login(user)
        self.assertEqual(self.client.get(self.image.file.url).status_code, 200)

    def test_manager_of_other_organization_refused(self):
        user = self._create_administrator(organizations=[self.org_b])
        self.client.force_login(user)
        self.assertEqual(self.client.get(self.image.file.url).status_code, 403)

    def test_guessed_path_refused(self):
        self.client.force_login(self._get_admin())
        response = self.client.get("/modem-firmware/../../settings.py")
        self.assertIn(response.status_code, (400, 403, 404))
        response = self.client.get(f"/modem-firmware/{self.image.build.pk}/other.bin")
        self.assertEqual(response.status_code, 404)

    def test_shared_image_for_any_organization_staff(self):
        build = self._create_build(
            category=self._create_category(name="shared", organization=None)
        )
        image = self._create_image(build=build)
        user = self._create_administrator(organizations=[self.org_b])
        self.client.force_login(user)
        self.assertEqual(self.client.get(image.file.url).status_code, 200)
