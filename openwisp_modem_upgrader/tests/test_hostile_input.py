"""Hostile input: a clear 4xx, never a 5xx, and nothing changed."""

import json
from unittest import mock

from django.test import TestCase
from django.urls import reverse

from ..base.models import OperationStatus
from ..upgrade import mark_in_progress, start_upgrade
from . import (
    ModemBatchUpgradeOperation,
    ModemBuild,
    ModemCategory,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)

QUEUE_UPGRADE = "openwisp_modem_upgrader.scheduler.publish_upgrade"


def nested(depth):
    return "[" * depth + "]" * depth


class TestDeviceEndpointHostileInput(TestModemUpgraderMixin, TestCase):
    def setUp(self):
        self.device = self._create_modem_device()
        with mock.patch(QUEUE_UPGRADE):
            self.operation = start_upgrade(self.device, self._create_image())
        mark_in_progress(self.operation.pk)
        self.url = reverse(
            "modem_upgrader:api_upgrade_operation_detail", args=[self.operation.pk]
        )

    def _post(self, body, query=None, content_type="application/json"):
        query = f"key={self.device.key}" if query is None else query
        return self.client.post(
            f"{self.url}?{query}", data=body, content_type=content_type
        )

    def assertUnchanged(self):
        self.operation.refresh_from_db()
        self.assertEqual(self.operation.status, OperationStatus.IN_PROGRESS)
        self.assertEqual(self.operation.progress, 0)
        self.assertEqual(self.operation.device_seq, 0)

    def test_non_ascii_key_forbidden(self):
        body = json.dumps({"progress_percent": 5, "status": "in-progress"})
        for query in ("key=%C3%A9", "key=%E2%82%AC" * 10, "key=%00", "key=%FF"):
            with self.subTest(query=query):
                response = self._post(body, query=query)
                self.assertEqual(response.status_code, 403, response.content)
        self.assertUnchanged()

    def test_deeply_nested_json_rejected(self):
        for depth in (33, 1000, 100000):
            with self.subTest(depth=depth):
                response = self._post(nested(depth))
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(b"nested", response.content)
        self.assertUnchanged()

    def test_nesting_inside_strings_is_not_depth(self):
        body = json.dumps(
            {"progress_percent": 7, "status": "in-progress", "log": "[" * 5000}
        )
        response = self._post(body)
        self.assertEqual(response.status_code, 200, response.content)

    def test_oversized_body_rejected(self):
        body = json.dumps(
            {"progress_percent": 5, "status": "in-progress", "log": "x" * 600000}
        )
        response = self._post(body)
        self.assertEqual(response.status_code, 413, response.content)
        self.assertUnchanged()

    def test_other_content_types_rejected(self):
        response = self._post(
            "progress_percent=5&status=in-progress",
            content_type="application/x-www-form-urlencoded",
        )
        self.assertEqual(response.status_code, 415, response.content)
        self.assertUnchanged()


class TestOperatorApiHostileInput(TestModemUpgraderMixin, TestCase):
    def setUp(self):
        self.client.force_login(self._get_admin())
        self.build = self._create_build()
        self._create_image(build=self.build)

    def test_deeply_nested_json_rejected(self):
        urls = (
            reverse("modem_upgrader:api_category_list"),
            reverse("modem_upgrader:api_build_upgrade", args=[self.build.pk]),
        )
        for url in urls:
            for depth in (33, 100000):
                with self.subTest(url=url, depth=depth):
                    response = self.client.post(
                        url, nested(depth), content_type="application/json"
                    )
                    self.assertEqual(response.status_code, 400, response.content)
        body = json.dumps({"upgrade_options": json.loads(nested(40))})
        response = self.client.post(urls[1], body, content_type="application/json")
        self.assertEqual(response.status_code, 400, response.content)
        self.assertEqual(ModemCategory.objects.count(), 1)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_oversized_body_rejected(self):
        body = json.dumps({"name": "x", "description": "y" * (2 * 1024 * 1024)})
        response = self.client.post(
            reverse("modem_upgrader:api_category_list"),
            body,
            content_type="application/json",
        )
        self.assertEqual(response.status_code, 413, response.content[:300])
        self.assertEqual(ModemCategory.objects.count(), 1)


# each value that reaches the router's shell, made hostile
HOSTILE_OPTIONS = {
    "tool_path": [
        "uxfp\n",
        "/usr/bin/uxfp\n",
        "uxfp\x00",
        "..",
        "/usr/bin/../../tmp/evil",
        "ux fp",
        " uxfp",
        "uxfp;reboot",
        "$(reboot)",
        "`reboot`",
        "uxfp|sh",
        "uxfp&",
        "/",
        "/usr/bin/",
    ],
    "tool_args": [
        "--speed 921600\n",
        "--speed\x00921600",
        "--log ../../etc/shadow",
        " --speed 921600",
        "--speed  921600",
        "--speed 921600 ",
        "--speed\t921600",
        "--x;reboot",
        "$(reboot)",
        "a|b",
        "a&&b",
        "a>b",
        "'quoted'",
    ],
    "remote_dir": [
        "/tmp\n",
        "/tmp\x00",
        "/tmp/../etc",
        "/..",
        "/",
        "/tmp/",
        "//tmp",
        "/tmp/./x",
        "tmp",
        "/tmp dir",
        " /tmp",
        "/tmp;reboot",
        "/tmp/$(reboot)",
        "/etc",
        "/overlay/upper",
        "/usr/lib",
        "",
    ],
}
SENSIBLE_OPTIONS = {
    "tool_path": ["uxfp", "/usr/bin/uxfp", "/mnt/usb/bin/uxfp-1.2"],
    "tool_args": ["", "--speed 921600", "--serial --speed 115200 --debug"],
    "remote_dir": ["/tmp", "/mnt/usb", "/mnt/sda1/images", "/tmp/.cache", "/etcx"],
}


class TestShellValues(TestModemUpgraderMixin, TestCase):
    """Model, single-upgrade API and batch API refuse every hostile value."""

    def setUp(self):
        self.client.force_login(self._get_admin())
        self.build = self._create_build()
        self.image = self._create_image(build=self.build)
        self.device = self._create_modem_device()
        patcher = mock.patch(QUEUE_UPGRADE)
        patcher.start()
        self.addCleanup(patcher.stop)

    def hostile_cases(self):
        for option, values in HOSTILE_OPTIONS.items():
            for value in values:
                yield option, value

    def test_model_refuses(self):
        from django.core.exceptions import ValidationError

        for option, value in self.hostile_cases():
            with self.subTest(option=option, value=value):
                with self.assertRaises(ValidationError) as context:
                    start_upgrade(self.device, self.image, {option: value})
                self.assertIn("upgrade_options", context.exception.message_dict)
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def test_single_upgrade_api_refuses(self):
        url = reverse("modem_upgrader:api_device_modem_firmware", args=[self.device.pk])
        for option, value in self.hostile_cases():
            with self.subTest(option=option, value=value):
                body = {"image": str(self.image.pk), "upgrade_options": {option: value}}
                response = self.client.put(
                    url, json.dumps(body), content_type="application/json"
                )
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn("upgrade_options", response.data)
                self.assertFalse(ModemUpgradeOperation.objects.exists())

    def test_batch_api_refuses(self):
        url = reverse("modem_upgrader:api_build_upgrade", args=[self.build.pk])
        for option, value in self.hostile_cases():
            with self.subTest(option=option, value=value):
                body = {"upgrade_options": {option: value}}
                response = self.client.post(
                    url, json.dumps(body), content_type="application/json"
                )
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn("upgrade_options", response.data)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def test_sensible_values_accepted(self):
        upgrader_class = self.image.upgrader_class
        for option, values in SENSIBLE_OPTIONS.items():
            for value in values:
                with self.subTest(option=option, value=value):
                    upgrader_class.validate_upgrade_options({option: value})

    def test_build_values_refused(self):
        from django.core.exceptions import ValidationError

        url = reverse("modem_upgrader:api_build_list")
        for field in ("version", "modem_model"):
            for value in ("M0R.1\n", "M0R\x00", "M0R 1", "M0R;reboot", "$(x)"):
                with self.subTest(field=field, value=value):
                    with self.assertRaises(ValidationError):
                        self._create_build(
                            category=self.build.category, **{field: value}
                        )
                    body = {
                        "category": str(self.build.category.pk),
                        "version": "M0R.2",
                        "modem_model": "FN990A28",
                        field: value,
                    }
                    response = self.client.post(
                        url, json.dumps(body), content_type="application/json"
                    )
                    self.assertEqual(response.status_code, 400, response.content)
        self.assertEqual(ModemBuild.objects.count(), 1)
