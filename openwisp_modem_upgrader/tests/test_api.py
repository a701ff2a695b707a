"""Operator REST API: catalogue, uploads, downloads, upgrades and cancels."""

import json
import re
from unittest import mock

from django.db import connection, transaction
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import include
from django.urls import path as url_path
from django.urls import reverse
from django.utils import timezone
from drf_yasg import openapi
from drf_yasg.generators import OpenAPISchemaGenerator
from rest_framework import generics
from rest_framework import serializers as rest_serializers
from rest_framework.authtoken.models import Token

from openwisp_controller.config.tests.utils import CreateDeviceGroupMixin

from .. import settings as app_settings
from .. import shell_values
from ..api import device as api_device
from ..api import inventory as api_inventory
from ..api import serializers as api_serializers
from ..api.urls import API_PREFIX, operator_urlpatterns
from ..base.models import DetectionStatus, OperationStatus
from ..batch import ExclusionReason, create_batch
from ..swapper import load_model
from ..upgrade import (
    add_bytes_sent,
    mark_flash_started,
    mark_in_progress,
    start_upgrade,
)
from . import (
    FIRMWARE_CONTENT,
    FN990A28,
    NEW_VERSION,
    OLD_VERSION,
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
    ModemBuild,
    ModemCategory,
    ModemFirmwareImage,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)

QUEUE_UPGRADE = "openwisp_modem_upgrader.scheduler.publish_upgrade"


def api_url(name, *args):
    return reverse(f"modem_upgrader:api_{name}", args=args)


class ApiTestMixin(TestModemUpgraderMixin, CreateDeviceGroupMixin):
    def setUp(self):
        super().setUp()
        patcher = mock.patch(QUEUE_UPGRADE)
        self.queued = patcher.start()
        self.addCleanup(patcher.stop)
        self.org_a = self._get_org()
        self.org_b = self._create_org(name="org b", slug="org-b")

    def _manager(self, org=None, username="manager", **kwargs):
        return self._create_administrator(
            organizations=[org or self.org_a],
            username=username,
            email=f"{username}@test.com",
            **kwargs,
        )

    def _login(self, user):
        self.client.force_login(user)
        return user

    def _json(self, method, url, data=None, **kwargs):
        return getattr(self.client, method)(
            url, json.dumps(data or {}), content_type="application/json", **kwargs
        )

    def _start(self, device, image, batch=None):
        return start_upgrade(device, image, batch=batch)

    def _batch(self, build, org=None, **filters):
        return create_batch(build, org or self.org_a, **filters)


class TestPermissionMatrix(ApiTestMixin, TestCase):
    """Every endpoint and method against six kinds of user.

    The objects belong to org_a. ``ok`` is the superuser's and org_a
    manager's code; the manager of org_b gets 404 on org_a's objects (they
    do not exist for them) and 400 when creating with org_a's references; the
    view-only operator reads but may not write (403); a staff user without
    any permission gets 403; anonymous requests 401.
    """

    def setUp(self):
        super().setUp()
        self.category = self._create_category(organization=self.org_a)
        self.build = self._create_build(category=self.category)
        self.image = self._create_image(build=self.build)
        self.spare_image = self._create_image(
            build=self._create_build(category=self.category, version="M0R.3")
        )
        self.busy_device = self._create_modem_device(
            name="busy", mac_address="00:11:22:33:44:01"
        )
        self.free_device = self._create_modem_device(
            name="free", mac_address="00:11:22:33:44:02"
        )
        self.batch = self._batch(self.build)
        self.operation = self._start(self.busy_device, self.image, batch=self.batch)
        self.users = {
            "superuser": self._get_admin(),
            "manager": self._manager(),
            "other_manager": self._manager(self.org_b, username="manager_b"),
            "operator": self._create_operator(organizations=[self.org_a]),
            "no_permission": self._create_user(
                username="staff", email="staff@test.com", is_staff=True
            ),
        }
        self._create_org_user(
            user=self.users["no_permission"], organization=self.org_a, is_admin=True
        )

    def cases(self):
        """(label, method, url, data, ok, kind); kind: read, create or write."""
        category, build, image = self.category, self.build, self.image
        upload = {"type": "generic", "file": self._upload(name="other.bin")}
        return [
            ("category list", "get", api_url("category_list"), None, 200, "list"),
            (
                "category create",
                "post",
                api_url("category_list"),
                {"name": "new", "organization": str(self.org_a.pk)},
                201,
                "create",
            ),
            (
                "category get",
                "get",
                api_url("category_detail", category.pk),
                None,
                200,
                "read",
            ),
            (
                "category patch",
                "patch",
                api_url("category_detail", category.pk),
                {"description": "changed"},
                200,
                "write",
            ),
            (
                "category put",
                "put",
                api_url("category_detail", category.pk),
                {"name": "renamed", "organization": str(self.org_a.pk)},
                200,
                "write",
            ),
            ("build list", "get", api_url("build_list"), None, 200, "list"),
            (
                "build create",
                "post",
                api_url("build_list"),
                {
                    "category": str(category.pk),
                    "version": "M0R.020000-B001",
                    "modem_model": FN990A28,
                },
                201,
                "create",
            ),
            ("build get", "get", api_url("build_detail", build.pk), None, 200, "read"),
            (
                "build patch",
                "patch",
                api_url("build_detail", build.pk),
                {"changelog": "* more"},
                200,
                "write",
            ),
            (
                "image list",
                "get",
                api_url("firmware_image_list", build.pk),
                None,
                200,
                "read",
            ),
            (
                "image upload",
                "multipart",
                api_url("firmware_image_list", build.pk),
                upload,
                201,
                "write",
            ),
            (
                "image get",
                "get",
                api_url("firmware_image_detail", image.pk),
                None,
                200,
                "read",
            ),
            (
                "image download",
                "get",
                api_url("firmware_image_download", image.pk),
                None,
                200,
                "read",
            ),
            ("dry run", "get", api_url("build_upgrade", build.pk), None, 200, "read"),
            (
                "mass upgrade",
                "post",
                api_url("build_upgrade", build.pk),
                {"upgrade_options": {}},
                201,
                "write",
            ),
            (
                "batch list",
                "get",
                api_url("batch_upgrade_operation_list"),
                None,
                200,
                "list",
            ),
            (
                "batch get",
                "get",
                api_url("batch_upgrade_operation_detail", self.batch.pk),
                None,
                200,
                "read",
            ),
            (
                "batch cancel",
                "post",
                api_url("batch_upgrade_operation_cancel", self.batch.pk),
                None,
                200,
                "write",
            ),
            (
                "batch pause",
                "post",
                api_url("batch_upgrade_operation_pause", self.batch.pk),
                None,
                200,
                "write",
            ),
            # running: the request reaches the rollout, which refuses it
            (
                "batch resume",
                "post",
                api_url("batch_upgrade_operation_resume", self.batch.pk),
                None,
                409,
                "write",
            ),
            # no device failed yet
            (
                "batch retry failed",
                "post",
                api_url("batch_upgrade_operation_retry_failed", self.batch.pk),
                None,
                409,
                "write",
            ),
            (
                "operation list",
                "get",
                api_url("upgrade_operation_list"),
                None,
                200,
                "list",
            ),
            (
                "operation get",
                "get",
                api_url("upgrade_operation_detail", self.operation.pk),
                None,
                200,
                "read",
            ),
            (
                "operation cancel",
                "post",
                api_url("upgrade_operation_cancel", self.operation.pk),
                None,
                200,
                "write",
            ),
            (
                "device firmware list",
                "get",
                api_url("device_modem_firmware_list"),
                None,
                200,
                "list",
            ),
            (
                "device modem get",
                "get",
                api_url("device_modem_firmware", self.free_device.pk),
                None,
                200,
                "read",
            ),
            (
                "device modem put",
                "put",
                api_url("device_modem_firmware", self.free_device.pk),
                {"image": str(image.pk)},
                200,
                "write",
            ),
            (
                "device modem patch",
                "patch",
                api_url("device_modem_firmware", self.free_device.pk),
                {"image": str(image.pk)},
                200,
                "write",
            ),
            (
                "device modem post",
                "post",
                api_url("device_modem_firmware", self.free_device.pk),
                {"image": str(image.pk)},
                200,
                "write",
            ),
            (
                "device history",
                "get",
                api_url("device_upgrade_operation_list", self.busy_device.pk),
                None,
                200,
                "read",
            ),
            # deletions last: a deleted file does not come back with the rollback
            (
                "image delete",
                "delete",
                api_url("firmware_image_detail", self.spare_image.pk),
                None,
                204,
                "write",
            ),
            (
                "build delete",
                "delete",
                api_url("build_detail", build.pk),
                None,
                204,
                "write",
            ),
            (
                "category delete",
                "delete",
                api_url("category_detail", category.pk),
                None,
                204,
                "write",
            ),
        ]

    def expected(self, role, ok, kind):
        if role in ("superuser", "manager"):
            return ok
        if role == "anonymous":
            return 401
        if role == "no_permission":
            return 403
        if role == "operator":
            return ok if kind in ("read", "list") else 403
        # manager of another organization
        return {"list": 200, "create": 400}.get(kind, 404)

    def request(self, method, url, data):
        if method == "multipart":
            return self.client.post(url, data)
        if method == "get":
            return self.client.get(url)
        return self._json(method, url, data)

    def _run_matrix(self, role):
        if role == "anonymous":
            self.client.logout()
        else:
            self.client.force_login(self.users[role])
        for label, method, url, data, ok, kind in self.cases():
            with self.subTest(role=role, endpoint=label):
                with transaction.atomic():
                    response = self.request(method, url, data)
                    transaction.set_rollback(True)
                self.assertEqual(
                    response.status_code,
                    self.expected(role, ok, kind),
                    getattr(response, "content", b"")[:500],
                )

    def test_superuser(self):
        self._run_matrix("superuser")

    def test_manager_of_the_organization(self):
        self._run_matrix("manager")

    def test_manager_of_another_organization(self):
        self._run_matrix("other_manager")

    def test_operator_without_write_permissions(self):
        self._run_matrix("operator")

    def test_staff_without_permissions(self):
        self._run_matrix("no_permission")

    def test_anonymous(self):
        self._run_matrix("anonymous")

    def test_other_manager_lists_exclude_foreign_objects(self):
        self._login(self.users["other_manager"])
        for name in (
            "category_list",
            "build_list",
            "batch_upgrade_operation_list",
            "upgrade_operation_list",
            "device_modem_firmware_list",
        ):
            with self.subTest(name=name):
                response = self.client.get(api_url(name))
                self.assertEqual(response.status_code, 200)
                self.assertEqual(response.data["count"], 0)


class TestCatalogueApi(ApiTestMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.shared = self._create_category(name="shared", organization=None)
        self.category = self._create_category(organization=self.org_a)
        self.manager = self._login(self._manager())

    def test_bearer_token_authentication(self):
        self.client.logout()
        token = Token.objects.create(user=self.manager)
        response = self.client.get(
            api_url("category_list"), HTTP_AUTHORIZATION=f"Bearer {token.key}"
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.data["count"], 2)
        response = self.client.get(
            api_url("category_list"), HTTP_AUTHORIZATION="Bearer wrong"
        )
        self.assertEqual(response.status_code, 401)

    def test_throttled_per_user(self):
        from django.core.cache import cache
        from rest_framework.throttling import ScopedRateThrottle

        # sessions live in the cache too: only drop this user's throttle history
        key = f"throttle_modem_upgrader_{self.manager.pk}"
        cache.delete(key)
        self.addCleanup(cache.delete, key)
        # tests run without rates (openwisp-utils); apply a small one here
        with mock.patch.dict(
            ScopedRateThrottle.THROTTLE_RATES, {"modem_upgrader": "3/minute"}
        ):
            codes = [
                self.client.get(api_url("category_list")).status_code for _ in range(4)
            ]
        self.assertEqual(codes, [200, 200, 200, 429])

    def test_category_list_includes_shared_and_filters(self):
        self._create_category(name="foreign", organization=self.org_b)
        response = self.client.get(api_url("category_list"))
        self.assertEqual(
            sorted(c["name"] for c in response.data["results"]),
            ["Telit FN990A", "shared"],
        )
        response = self.client.get(
            api_url("category_list"), {"organization_slug": "test-org"}
        )
        self.assertEqual(
            [c["name"] for c in response.data["results"]], ["Telit FN990A"]
        )
        response = self.client.get(
            api_url("category_list"), {"organization": "not-a-uuid"}
        )
        self.assertEqual(response.status_code, 400)

    def test_shared_category_read_only_for_managers(self):
        url = api_url("category_detail", self.shared.pk)
        self.assertEqual(self.client.get(url).status_code, 200)
        self.assertEqual(self._json("patch", url, {"name": "x"}).status_code, 403)
        self.assertEqual(self.client.delete(url).status_code, 403)
        response = self._json(
            "post", api_url("category_list"), {"name": "mine", "organization": None}
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("organization", response.data)
        self.shared.refresh_from_db()
        self.assertEqual(self.shared.name, "shared")

    def test_superuser_creates_shared_category(self):
        self._login(self._get_admin())
        response = self._json(
            "post", api_url("category_list"), {"name": "all", "organization": None}
        )
        self.assertEqual(response.status_code, 201, response.data)
        self.assertIsNone(ModemCategory.objects.get(name="all").organization)

    def test_duplicate_category_name(self):
        response = self._json(
            "post",
            api_url("category_list"),
            {"name": "Telit FN990A", "organization": str(self.org_a.pk)},
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(ModemCategory.objects.filter(name="Telit FN990A").count(), 1)

    def test_build_create_and_validation(self):
        url = api_url("build_list")
        data = {
            "category": str(self.category.pk),
            "version": "M0R.020000-B001",
            "modem_model": FN990A28,
            "changelog": "* fixes",
        }
        response = self._json("post", url, data)
        self.assertEqual(response.status_code, 201, response.data)
        self.assertEqual(response.data["organization"], str(self.org_a.pk))
        # duplicate version in the category
        response = self._json("post", url, data)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(ModemBuild.objects.count(), 1)
        # invalid version and modem model: field messages
        response = self._json(
            "post", url, {**data, "version": "bad version;", "modem_model": "x y"}
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("version", response.data)
        self.assertIn("modem_model", response.data)
        # a manager cannot put builds in a shared category
        response = self._json("post", url, {**data, "category": str(self.shared.pk)})
        self.assertEqual(response.status_code, 400)
        self.assertIn("category", response.data)
        self.assertEqual(ModemBuild.objects.count(), 1)

    def test_build_filters(self):
        self._create_build(category=self.category)
        self._create_build(
            category=self.category, version="M0R.1", modem_model="FN990A40"
        )
        response = self.client.get(api_url("build_list"), {"modem_model": "FN990A40"})
        self.assertEqual([b["version"] for b in response.data["results"]], ["M0R.1"])
        response = self.client.get(
            api_url("build_list"), {"category": str(self.category.pk)}
        )
        self.assertEqual(response.data["count"], 2)

    def test_shared_build_read_only(self):
        build = self._create_build(category=self.shared)
        self.assertEqual(
            self.client.get(api_url("build_detail", build.pk)).status_code, 200
        )
        response = self._json(
            "patch", api_url("build_detail", build.pk), {"changelog": "x"}
        )
        self.assertEqual(response.status_code, 403)
        response = self.client.post(
            api_url("firmware_image_list", build.pk),
            {"type": "telit-fn990a", "file": self._upload()},
        )
        self.assertEqual(response.status_code, 403)
        self.assertFalse(ModemFirmwareImage.objects.exists())

    def test_image_upload(self):
        build = self._create_build(category=self.category)
        response = self.client.post(
            api_url("firmware_image_list", build.pk),
            {
                "type": "telit-fn990a",
                "boards": ["Router X", "Router Y"],
                "file": self._upload(),
            },
        )
        self.assertEqual(response.status_code, 201, response.data)
        image = ModemFirmwareImage.objects.get()
        self.assertEqual(response.data["sha256"], self._sha256())
        self.assertEqual(response.data["size"], len(FIRMWARE_CONTENT))
        self.assertEqual(image.sha256, self._sha256())
        self.assertEqual(image.boards, ["Router X", "Router Y"])
        self.assertTrue(
            response.data["download_url"].endswith(
                api_url("firmware_image_download", image.pk)
            )
        )
        self.assertNotIn("file", response.data)
        listed = self.client.get(api_url("firmware_image_list", build.pk))
        self.assertEqual(listed.data["count"], 1)

    def _assert_upload_refused(self, build, data, field):
        response = self.client.post(api_url("firmware_image_list", build.pk), data)
        self.assertEqual(response.status_code, 400, response.data)
        self.assertIn(field, response.data)
        return response

    def test_image_upload_refused(self):
        build = self._create_build(category=self.category)
        self._assert_upload_refused(
            build, {"type": "telit-fn990a", "file": self._upload(content=b"")}, "file"
        )
        self._assert_upload_refused(build, {"type": "telit-fn990a"}, "file")
        self._assert_upload_refused(
            build, {"type": "unknown", "file": self._upload()}, "type"
        )
        self._assert_upload_refused(
            build,
            {"type": "telit-fn990a", "boards": ["ok", " "], "file": self._upload()},
            "boards",
        )
        with mock.patch.object(app_settings, "MAX_FILE_SIZE", 10):
            response = self._assert_upload_refused(
                build, {"type": "telit-fn990a", "file": self._upload()}, "file"
            )
        self.assertIn("larger", str(response.data["file"]))
        self.assertFalse(ModemFirmwareImage.objects.exists())
        self._create_image(build=build)
        response = self._assert_upload_refused(
            build, {"type": "telit-fn990a", "file": self._upload()}, "type"
        )
        self.assertIn("already has an image", str(response.data["type"]))
        self.assertEqual(ModemFirmwareImage.objects.count(), 1)

    def test_image_upload_for_another_modem_model_refused(self):
        build = self._create_build(category=self.category, modem_model="RM520N-GL")
        response = self._assert_upload_refused(
            build, {"type": "telit-fn990a", "file": self._upload()}, "type"
        )
        self.assertIn('cannot flash "RM520N-GL" modems', str(response.data["type"]))
        self.assertFalse(ModemFirmwareImage.objects.exists())

    def test_image_upload_to_unknown_build(self):
        response = self.client.post(
            api_url("firmware_image_list", self.org_b.pk),
            {"type": "telit-fn990a", "file": self._upload()},
        )
        self.assertEqual(response.status_code, 404)

    def test_image_delete_removes_file(self):
        image = self._create_image(build=self._create_build(category=self.category))
        storage, name = image.file.storage, image.file.name
        self.assertTrue(storage.exists(name))
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.delete(api_url("firmware_image_detail", image.pk))
        self.assertEqual(response.status_code, 204)
        self.assertFalse(storage.exists(name))

    def test_image_delete_refused_while_upgrading(self):
        image = self._create_image(build=self._create_build(category=self.category))
        self._start(self._create_modem_device(), image)
        response = self.client.delete(api_url("firmware_image_detail", image.pk))
        self.assertEqual(response.status_code, 409)
        self.assertTrue(ModemFirmwareImage.objects.filter(pk=image.pk).exists())

    def test_download(self):
        image = self._create_image(build=self._create_build(category=self.category))
        response = self.client.get(api_url("firmware_image_download", image.pk))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(b"".join(response.streaming_content), FIRMWARE_CONTENT)

    def test_download_shared_image_and_foreign_image(self):
        shared = self._create_image(build=self._create_build(category=self.shared))
        response = self.client.get(api_url("firmware_image_download", shared.pk))
        self.assertEqual(response.status_code, 200)
        foreign_category = self._create_category(name="b", organization=self.org_b)
        foreign = self._create_image(
            build=self._create_build(category=foreign_category, version="M0R.9")
        )
        response = self.client.get(api_url("firmware_image_download", foreign.pk))
        self.assertEqual(response.status_code, 404)


class TestUpgradeApi(ApiTestMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.category = self._create_category(organization=self.org_a)
        self.build = self._create_build(category=self.category)
        self.image = self._create_image(build=self.build)
        self.device = self._create_modem_device(
            name="ok", mac_address="00:11:22:33:44:01"
        )
        self.manager = self._login(self._manager())

    def test_dry_run_says_router_unreachable(self):
        """A router never detected because the server cannot reach it says
        so, with the detection's own reason, as the admin's preview does."""
        DeviceModemDetection = load_model("DeviceModemDetection")
        unreachable = self._create_device(
            organization=self.org_a, name="gone", mac_address="00:11:22:33:44:05"
        )
        DeviceModemDetection.objects.create(
            device=unreachable,
            attempted_at=timezone.now(),
            status=DetectionStatus.TIMEOUT,
            reason="ssh: connect timed out",
        )
        self._create_device(
            organization=self.org_a, name="never", mac_address="00:11:22:33:44:06"
        )
        response = self.client.get(api_url("build_upgrade", self.build.pk))
        self.assertEqual(response.status_code, 200, response.data)
        excluded = {d["name"]: d for d in response.data["excluded"]}
        # one vocabulary with the inventory: the code says it too
        self.assertEqual(excluded["gone"]["reason"], ExclusionReason.UNREACHABLE)
        self.assertEqual(
            excluded["gone"]["reason_label"],
            "router unreachable (ssh: connect timed out)",
        )
        self.assertEqual(excluded["never"]["reason"], ExclusionReason.NOT_DETECTED)
        self.assertEqual(excluded["never"]["reason_label"], "modem not detected yet")

    def test_dry_run(self):
        self._create_modem_device(
            name="other-model", mac_address="00:11:22:33:44:02", modem_model="FN990A40"
        )
        self._create_modem_device(
            name="up-to-date", mac_address="00:11:22:33:44:03", version=NEW_VERSION
        )
        response = self.client.get(api_url("build_upgrade", self.build.pk))
        self.assertEqual(response.status_code, 200, response.data)
        data = response.data
        self.assertEqual(data["organization"], str(self.org_a.pk))
        self.assertEqual(data["devices_count"], 1)
        self.assertEqual(data["devices"][0]["id"], str(self.device.pk))
        self.assertEqual(data["devices"][0]["image"], str(self.image.pk))
        self.assertEqual(
            {d["name"]: d["reason"] for d in data["excluded"]},
            {
                "other-model": ExclusionReason.OTHER_MODEL,
                "up-to-date": ExclusionReason.UP_TO_DATE,
            },
        )
        self.assertTrue(all(d["reason_label"] for d in data["excluded"]))
        capped = self.client.get(api_url("build_upgrade", self.build.pk), {"limit": 1})
        self.assertEqual(capped.data["excluded_count"], 2)
        self.assertEqual(len(capped.data["excluded"]), 1)
        filtered = self.client.get(
            api_url("build_upgrade", self.build.pk), {"from_version": OLD_VERSION}
        )
        self.assertEqual(filtered.data["excluded_count"], 1)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_dry_run_bad_input(self):
        url = api_url("build_upgrade", self.build.pk)
        for params, field in (
            ({"limit": -1}, "limit"),
            ({"from_version": "bad version"}, "from_version"),
            ({"group": "not-a-uuid"}, "group"),
            ({"organization": str(self.org_b.pk)}, "organization"),
        ):
            with self.subTest(params=params):
                response = self.client.get(url, params)
                self.assertEqual(response.status_code, 400)
                self.assertIn(field, response.data)

    def test_mass_upgrade(self):
        url = api_url("build_upgrade", self.build.pk)
        options = {"upgrade_timeout": 600}
        with self.captureOnCommitCallbacks(execute=True):
            response = self._json("post", url, {"upgrade_options": options})
        self.assertEqual(response.status_code, 201, response.data)
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertEqual(response.data["id"], str(batch.pk))
        self.assertEqual(batch.organization, self.org_a)
        self.assertEqual(batch.upgrade_options, options)
        operation = ModemUpgradeOperation.objects.get()
        self.assertEqual(operation.batch, batch)
        self.assertEqual(operation.upgrade_options, options)
        self.queued.assert_called_once_with(
            str(operation.pk), time_limit=mock.ANY, dispatched_at=mock.ANY
        )

    def test_mass_upgrade_bad_input_changes_nothing(self):
        url = api_url("build_upgrade", self.build.pk)
        group = self._create_device_group(organization=self.org_b)
        for data, field in (
            ({"upgrade_options": {"upgrade_timeout": 1}}, "upgrade_options"),
            ({"upgrade_options": ["x"]}, "upgrade_options"),
            ({"organization": str(self.org_b.pk)}, "organization"),
            ({"group": str(group.pk)}, "group"),
            ({"from_version": "M0R.000000-B000"}, "non_field_errors"),
        ):
            with self.subTest(data=data):
                response = self._json("post", url, data)
                self.assertEqual(response.status_code, 400, response.data)
                self.assertIn(field, response.data)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def test_mass_upgrade_to_shared_build(self):
        shared = self._create_category(name="shared", organization=None)
        build = self._create_build(category=shared)
        self._create_image(build=build)
        url = api_url("build_upgrade", build.pk)
        # a manager of one organization: it is implied
        response = self._json("post", url, {})
        self.assertEqual(response.status_code, 201, response.data)
        self.assertEqual(response.data["organization"], self.org_a.pk)
        # another organization is not theirs
        response = self._json("post", url, {"organization": str(self.org_b.pk)})
        self.assertEqual(response.status_code, 400)
        # a superuser must say which organization
        self._login(self._get_admin())
        response = self._json("post", url, {})
        self.assertEqual(response.status_code, 400)
        self.assertIn("organization", response.data)
        self.assertEqual(ModemBatchUpgradeOperation.objects.count(), 1)

    def _running_batch(self):
        second = self._create_modem_device(name="two", mac_address="00:11:22:33:44:09")
        batch = self._batch(self.build)
        flashing = self._start(self.device, self.image, batch=batch)
        idle = self._start(second, self.image, batch=batch)
        mark_in_progress(flashing.pk)
        mark_flash_started(flashing.pk)
        return batch, flashing, idle

    def test_batch_detail_progress(self):
        batch, flashing, idle = self._running_batch()
        response = self.client.get(api_url("batch_upgrade_operation_detail", batch.pk))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.data["status_counts"],
            {
                "total": 2,
                "idle": 1,
                "in_progress": 1,
                "success": 0,
                "failed": 0,
                "aborted": 0,
                "cancelled": 0,
                "no_service": 0,
                "staged": 0,
            },
        )
        self.assertEqual(
            response.data["progress_report"], "0 out of 2 devices completed"
        )
        self.assertEqual(response.data["rates"]["success"], 0)
        self.assertEqual(response.data["bytes_sent"], 0)
        add_bytes_sent(flashing.pk, 5000)
        add_bytes_sent(idle.pk, 700)
        response = self.client.get(api_url("batch_upgrade_operation_detail", batch.pk))
        self.assertEqual(response.data["bytes_sent"], 5700)
        # lists annotate the total: the same figure
        response = self.client.get(api_url("batch_upgrade_operation_list"))
        self.assertEqual(response.data["results"][0]["bytes_sent"], 5700)
        response = self.client.get(api_url("upgrade_operation_detail", flashing.pk))
        self.assertEqual(response.data["bytes_sent"], 5000)

    def test_batch_read_without_annotations_counts_in_one_aggregate(self):
        # the create and action views serialize a batch the list did not
        # annotate: the counts and bytes come from one aggregate, kept on
        # the row as the annotations (the model's methods stay its own)
        batch, flashing, idle = self._running_batch()
        add_bytes_sent(flashing.pk, 5000)
        batch = ModemBatchUpgradeOperation.objects.get(pk=batch.pk)
        with CaptureQueriesContext(connection) as queries:
            data = api_serializers.BatchUpgradeOperationSerializer(batch).data
        aggregates = [
            q["sql"] for q in queries.captured_queries if "SUM(" in q["sql"].upper()
        ]
        self.assertEqual(len(aggregates), 1, aggregates)
        self.assertEqual(
            (data["status_counts"]["total"], data["bytes_sent"]), (2, 5000)
        )
        self.assertEqual(data["progress_report"], "0 out of 2 devices completed")
        self.assertEqual(data["rates"]["success"], 0)
        self.assertNotIn("status_counts", batch.__dict__)
        self.assertEqual(batch.status_counts()[OperationStatus.IN_PROGRESS], 1)

    def test_batch_cancel(self):
        batch, flashing, idle = self._running_batch()
        url = api_url("batch_upgrade_operation_cancel", batch.pk)
        response = self.client.post(url)
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.data["cancelled"], [str(idle.pk)])
        self.assertIn(str(flashing.pk), response.data["refused"])
        idle.refresh_from_db()
        flashing.refresh_from_db()
        self.assertEqual(idle.status, OperationStatus.CANCELLED)
        self.assertEqual(flashing.status, OperationStatus.IN_PROGRESS)
        # only the flashing one is left: nothing can be cancelled
        response = self.client.post(url)
        self.assertEqual(response.status_code, 409)
        self.assertIn("refused", response.data)
        detail = self.client.get(api_url("batch_upgrade_operation_detail", batch.pk))
        self.assertEqual(detail.data["rates"]["cancelled"], 50.0)

    def test_batch_cancel_finished(self):
        batch = self._batch(self.build)
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(
            status=OperationStatus.SUCCESS
        )
        response = self.client.post(api_url("batch_upgrade_operation_cancel", batch.pk))
        self.assertEqual(response.status_code, 409)
        self.assertIn("already finished", response.data["detail"])

    def test_operation_list_filters(self):
        batch, flashing, idle = self._running_batch()
        url = api_url("upgrade_operation_list")
        for params, expected in (
            ({}, {flashing.pk, idle.pk}),
            ({"status": "idle"}, {idle.pk}),
            ({"device": str(self.device.pk)}, {flashing.pk}),
            ({"batch": str(batch.pk)}, {flashing.pk, idle.pk}),
            ({"organization": str(self.org_b.pk)}, set()),
            ({"organization_slug": self.org_a.slug}, {flashing.pk, idle.pk}),
        ):
            with self.subTest(params=params):
                response = self.client.get(url, params)
                self.assertEqual(response.status_code, 200)
                self.assertEqual(
                    {o["id"] for o in response.data["results"]},
                    {str(pk) for pk in expected},
                )
        self.assertEqual(self.client.get(url, {"status": "nope"}).status_code, 400)
        self.assertNotIn("log", response.data["results"][0])

    def test_operation_detail_and_cancel(self):
        operation = self._start(self.device, self.image)
        detail = self.client.get(api_url("upgrade_operation_detail", operation.pk))
        self.assertEqual(detail.status_code, 200)
        self.assertIn("log", detail.data)
        self.assertEqual(detail.data["image"]["version"], NEW_VERSION)
        url = api_url("upgrade_operation_cancel", operation.pk)
        response = self.client.post(url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.data["status"], OperationStatus.CANCELLED)
        response = self.client.post(url)
        self.assertEqual(response.status_code, 409)
        self.assertEqual(response.data["detail"], "This upgrade has already finished.")

    def test_operation_cancel_refused_when_flashing(self):
        operation = self._start(self.device, self.image)
        mark_in_progress(operation.pk)
        mark_flash_started(operation.pk)
        response = self.client.post(api_url("upgrade_operation_cancel", operation.pk))
        self.assertEqual(response.status_code, 409)
        self.assertIn("brick", response.data["detail"])
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)

    def test_device_report_on_operator_url(self):
        operation = self._start(self.device, self.image)
        mark_in_progress(operation.pk)
        url = api_url("upgrade_operation_detail", operation.pk)
        self.client.logout()
        report = {"progress_percent": 40, "status": "in-progress", "log": "flashing"}
        response = self._json("post", f"{url}?key={self.device.key}", report)
        self.assertEqual(response.status_code, 200, response.content)
        response = self._json("patch", f"{url}?key=wrong", report)
        self.assertEqual(response.status_code, 403)
        operation.refresh_from_db()
        self.assertEqual(operation.progress, 40)
        # and no key, no operator data
        self.assertEqual(self.client.get(url).status_code, 401)

    def test_device_modem_firmware_upgrade(self):
        url = api_url("device_modem_firmware", self.device.pk)
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.data["modem_model"], FN990A28)
        self.assertIsNone(response.data["image"])
        options = {"upgrade_timeout": 900}
        response = self._json(
            "put", url, {"image": str(self.image.pk), "upgrade_options": options}
        )
        self.assertEqual(response.status_code, 200, response.data)
        operation = ModemUpgradeOperation.objects.get()
        self.assertEqual(response.data["upgrade_operation"], str(operation.pk))
        self.assertEqual(response.data["image"], self.image.pk)
        self.assertEqual(operation.upgrade_options, options)
        self.assertFalse(DeviceModemFirmware.objects.get(device=self.device).installed)
        # a second upgrade while the first runs
        response = self._json("patch", url, {"image": str(self.image.pk)})
        self.assertEqual(response.status_code, 400)
        # the documented shape: DRF's key, never Django's "__all__"
        self.assertEqual(list(response.data), ["non_field_errors"], response.data)
        self.assertIn("already running", str(response.data))
        history = self.client.get(
            api_url("device_upgrade_operation_list", self.device.pk)
        )
        self.assertEqual(
            [o["id"] for o in history.data["results"]], [str(operation.pk)]
        )

    def test_device_modem_firmware_of_a_two_modem_router(self):
        DeviceModemFirmware.objects.filter(device=self.device).update(usb_path="2-1")
        DeviceModemFirmware.objects.create(
            device=self.device, usb_path="1-1.2", modem_model=FN990A28
        )
        url = api_url("device_modem_firmware", self.device.pk)
        response = self.client.get(url)
        self.assertEqual(response.status_code, 400)
        self.assertIn("usb_path", response.data)
        response = self.client.get(url, {"usb_path": "1-1.2"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.data["usb_path"], "1-1.2")
        for bad in ("1-1.2;reboot", "1-1.2\n", "x"):
            with self.subTest(usb_path=bad):
                response = self.client.get(url, {"usb_path": bad})
                self.assertEqual(response.status_code, 400)
                response = self._json(
                    "put", url, {"image": str(self.image.pk), "usb_path": bad}
                )
                self.assertEqual(response.status_code, 400)
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        with mock.patch(QUEUE_UPGRADE):
            response = self._json("put", url, {"image": str(self.image.pk)})
            self.assertEqual(response.status_code, 400)
            response = self._json(
                "put", url, {"image": str(self.image.pk), "usb_path": "1-1.2"}
            )
        self.assertEqual(response.status_code, 200, response.data)
        self.assertEqual(response.data["usb_path"], "1-1.2")
        self.assertEqual(ModemUpgradeOperation.objects.get().usb_path, "1-1.2")

    def test_device_modem_firmware_created(self):
        device = self._create_device(name="new", mac_address="00:11:22:33:44:0a")
        url = api_url("device_modem_firmware", device.pk)
        self.assertEqual(self.client.get(url).status_code, 404)
        # the preview's rule: a modem never detected is not upgraded blindly
        response = self._json("post", url, {"image": str(self.image.pk)})
        self.assertEqual(response.status_code, 400, response.data)
        self.assertIn("modem not detected yet", str(response.data["image"]))
        self.assertFalse(ModemUpgradeOperation.objects.filter(device=device).exists())
        # detected (model unknown: the router checks it before flashing)
        DeviceModemFirmware.objects.create(device=device, usb_path="2-1")
        response = self._json("post", url, {"image": str(self.image.pk)})
        self.assertEqual(response.status_code, 200, response.data)
        self.assertTrue(ModemUpgradeOperation.objects.filter(device=device).exists())

    def test_device_modem_firmware_bad_input_changes_nothing(self):
        url = api_url("device_modem_firmware", self.device.pk)
        other_model = self._create_build(
            category=self.category, version="M0R.5", modem_model="FN990A40"
        )
        foreign_category = self._create_category(name="b", organization=self.org_b)
        foreign = self._create_image(
            build=self._create_build(category=foreign_category, version="M0R.6")
        )
        for data, field in (
            ({}, "image"),
            ({"image": None}, "image"),
            ({"image": "not-a-uuid"}, "image"),
            ({"image": str(foreign.pk)}, "image"),
            ({"image": str(self._create_image(build=other_model).pk)}, "image"),
            (
                {"image": str(self.image.pk), "upgrade_options": {"x": 1}},
                "upgrade_options",
            ),
            ({"image": str(self.image.pk), "upgrade_options": "x"}, "upgrade_options"),
        ):
            with self.subTest(data=data):
                response = self._json("put", url, data)
                self.assertEqual(response.status_code, 400, response.data)
                self.assertIn(field, response.data)
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        self.assertIsNone(DeviceModemFirmware.objects.get(device=self.device).image)

    def test_deactivated_device(self):
        self.device.deactivate()
        response = self._json(
            "put",
            api_url("device_modem_firmware", self.device.pk),
            {"image": str(self.image.pk)},
        )
        self.assertEqual(response.status_code, 400)
        self.assertFalse(ModemUpgradeOperation.objects.exists())


class TestListQueries(ApiTestMixin, TestCase):
    """List requests cost the same number of queries for 1 or 5 rows."""

    def setUp(self):
        super().setUp()
        self.category = self._create_category(organization=self.org_a)
        self.manager = self._login(self._manager())
        self.count = 0

    def _add_rows(self, number):
        for _ in range(number):
            self.count += 1
            build = self._create_build(
                category=self.category, version=f"M0R.{self.count}"
            )
            image = self._create_image(build=build)
            device = self._create_modem_device(
                name=f"d{self.count}", mac_address=f"00:11:22:33:55:{self.count:02x}"
            )
            batch = self._batch(build)
            self._start(device, image, batch=batch)

    def test_constant_queries(self):
        urls = {
            api_url("category_list"): 5,
            api_url("build_list"): 5,
            api_url("batch_upgrade_operation_list"): 5,
            api_url("upgrade_operation_list"): 5,
            api_url("device_modem_firmware_list"): 5,
        }
        self._add_rows(1)
        self.client.get(api_url("category_list"))  # warm the session
        for rows in (1, 5):
            if rows == 5:
                self._add_rows(4)
            for url, queries in urls.items():
                with self.subTest(url=url, rows=rows):
                    with self.assertNumQueries(queries):
                        response = self.client.get(url)
                    self.assertEqual(response.status_code, 200)
        self.assertEqual(
            self.client.get(api_url("upgrade_operation_list")).data["count"], 5
        )


class TestSchema(ApiTestMixin, TestCase):
    def test_schema_and_docs(self):
        response = self.client.get(api_url("schema"), {"format": "openapi"})
        self.assertEqual(response.status_code, 200)
        schema = json.loads(response.content)
        self.assertEqual(schema["swagger"], "2.0")
        self.assertEqual(schema["basePath"], "/api/v1/modem-upgrader")
        for path in (
            "/category/",
            "/build/{id}/image/",
            "/build/{id}/upgrade/",
            "/firmware-image/{id}/download/",
            "/batch-upgrade-operation/{id}/cancel/",
            "/batch-upgrade-operation/{id}/pause/",
            "/batch-upgrade-operation/{id}/resume/",
            "/batch-upgrade-operation/{id}/retry-failed/",
            "/upgrade-operation/{id}/cancel/",
            "/device-firmware/",
            "/device/{id}/modem-firmware/",
            "/device/{id}/modem-upgrade-operation/",
        ):
            self.assertIn(path, schema["paths"])
        upload = schema["paths"]["/build/{id}/image/"]["post"]
        self.assertIn("multipart/form-data", upload["consumes"])
        docs = self.client.get(api_url("docs"))
        self.assertEqual(docs.status_code, 200)

    def test_definitions_beside_other_modules(self):
        """The deployment-wide schema (openwisp-utils' ``/api/v1/docs/``)
        holds every module's serializers in one namespace, where
        openwisp-firmware-upgrader has an ``UpgradeOperationSerializer``
        too: drf-yasg refuses a name given to two different serializers,
        and the whole schema answered 500."""

        class UpgradeOperationSerializer(rest_serializers.Serializer):
            # another module's serializer of the same name
            log = rest_serializers.CharField()

        class OtherModuleList(generics.ListAPIView):
            serializer_class = UpgradeOperationSerializer
            queryset = ModemUpgradeOperation.objects.none()

        generator = OpenAPISchemaGenerator(
            openapi.Info(title="deployment", default_version="v1"),
            patterns=[
                url_path(API_PREFIX, include((operator_urlpatterns, "modem_upgrader"))),
                url_path(
                    "api/v1/firmware-upgrader/operation/", OtherModuleList.as_view()
                ),
            ],
        )
        definitions = generator.get_schema(request=None, public=True)["definitions"]
        self.assertIn("UpgradeOperation", definitions)
        ours = set(definitions) - {"UpgradeOperation"}
        self.assertIn("ModemUpgraderUpgradeOperation", ours)
        self.assertEqual([n for n in ours if not n.startswith("ModemUpgrader")], [])

    def test_every_serializer_names_its_own_definition(self):
        # a subclass inheriting its parent's Meta shares its ref name: two
        # different serializers under one name, which drf-yasg refuses
        ref_names = {}
        for module in (api_serializers, api_inventory, api_device):
            for cls in vars(module).values():
                if (
                    not isinstance(cls, type)
                    or not issubclass(cls, rest_serializers.BaseSerializer)
                    or cls.__module__ != module.__name__
                    or cls is api_serializers.BaseSerializer
                ):
                    continue
                with self.subTest(serializer=cls.__name__):
                    meta = vars(cls).get("Meta")
                    ref_name = vars(meta).get("ref_name") if meta else None
                    self.assertTrue(ref_name and ref_name.startswith("ModemUpgrader"))
                    self.assertNotIn(ref_name, ref_names)
                    ref_names[ref_name] = cls
        self.assertGreater(len(ref_names), 20)

    def test_read_only_text_may_be_empty_in_the_schema(self):
        # a modem not read yet has no IMEI or USB path: a "minLength" on
        # what the server only writes would make valid answers break it
        schema = self.client.get(api_url("schema"), {"format": "openapi"}).json()
        checked = 0
        for name, definition in schema["definitions"].items():
            for field, spec in definition.get("properties", {}).items():
                if spec.get("readOnly") and spec.get("type") == "string":
                    checked += 1
                    with self.subTest(definition=name, field=field):
                        self.assertNotIn("minLength", spec)
        self.assertGreater(checked, 20)
        modem = schema["definitions"]["ModemUpgraderPreviewModem"]["properties"]
        self.assertNotIn("minLength", modem["imei"])

    def test_list_json_fields_are_arrays_in_the_schema(self):
        # a JSON field holding a list, described as an object, makes every
        # valid answer break the schema (schemathesis found carrier_images)
        schema = self.client.get(api_url("schema"), {"format": "openapi"}).json()
        found = 0
        for name, definition in schema["definitions"].items():
            spec = definition.get("properties", {}).get("carrier_images")
            if spec is not None:
                found += 1
                with self.subTest(definition=name):
                    self.assertEqual(spec["type"], "array")
        self.assertGreaterEqual(found, 1)

    def test_schema_says_what_validation_accepts(self):
        schema = self.client.get(api_url("schema"), {"format": "openapi"}).json()
        definitions, paths = schema["definitions"], schema["paths"]
        build = definitions["ModemUpgraderBuild"]["properties"]
        self.assertEqual(build["version"]["pattern"], shell_values.VERSION)
        self.assertEqual(build["modem_model"]["pattern"], shell_values.MODEM_MODEL)
        name_pattern = definitions["ModemUpgraderCategory"]["properties"]["name"][
            "pattern"
        ]
        description = definitions["ModemUpgraderCategory"]["properties"]["description"]
        for value, valid in (("Telit", True), (" ", False), ("a\x00b", False)):
            self.assertEqual(bool(re.search(name_pattern, value)), valid, value)
        self.assertFalse(re.search(description["pattern"], "a\x00"))
        self.assertTrue(re.search(description["pattern"], ""))
        dry_run = paths["/build/{id}/upgrade/"]["get"]["parameters"]
        device_ids = next(p for p in dry_run if p["name"] == "device_ids")
        # ids in a URL: bounded below the 4 KiB request line servers accept
        self.assertLessEqual(device_ids["maxItems"] * 37, 4094 - 200)
        batch = definitions["ModemUpgraderBatchUpgradeOperation"]["properties"]
        self.assertEqual(batch["device_ids"]["type"], "array")
        modem = definitions["ModemUpgraderDeviceModemFirmwareList"]["properties"]
        self.assertIn("", modem["detection_status"]["enum"])
        operation = definitions["ModemUpgraderUpgradeOperation"]["properties"]
        self.assertNotIn("", operation["status"]["enum"])
        from_version = next(p for p in dry_run if p["name"] == "from_version")
        self.assertTrue(re.search(from_version["pattern"], ""))
        self.assertFalse(re.search(from_version["pattern"], "1 2"))
        upload = paths["/build/{id}/image/"]["post"]
        # a file travels in multipart only
        self.assertEqual(upload["consumes"], ["multipart/form-data"])
        boards = next(p for p in upload["parameters"] if p["name"] == "boards")
        self.assertFalse(re.search(boards["items"]["pattern"], "  "))
        modem = paths["/device/{id}/modem-firmware/"]
        self.assertEqual(
            modem["get"]["responses"]["200"]["schema"]["$ref"],
            "#/definitions/ModemUpgraderDeviceModemFirmware",
        )
        for method in ("put", "post", "patch"):
            body = next(p for p in modem[method]["parameters"] if p["in"] == "body")
            self.assertEqual(body["schema"]["required"], ["image"], method)
            self.assertNotIn("x-nullable", body["schema"]["properties"]["image"])
            # nested upgrade options: JSON only
            self.assertEqual(
                modem[method].get("consumes", schema["consumes"]), ["application/json"]
            )
