"""The image view routers download from in the pull mode: the device key,
one operation's image only, byte ranges, streaming, 4xx for anything wrong."""

import os
import re
from unittest import mock

from django.test import TestCase
from django.urls import reverse

from ..api import image_download
from ..statuses import OperationStatus
from ..upgraders import get_upgrader_class
from . import FIRMWARE_CONTENT, ModemUpgradeOperation, TestModemUpgraderMixin
from .test_api import ApiTestMixin, api_url

DEVICE_SCRIPTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "device-scripts",
)


class TestImageDownload(TestModemUpgraderMixin, TestCase):
    def setUp(self):
        self.device = self._create_modem_device()
        self.image = self._create_image()
        self.operation = self._operation(self.device)

    def _operation(self, device, mode="pull", status=OperationStatus.IN_PROGRESS):
        return ModemUpgradeOperation.objects.create(
            device=device,
            image=self.image,
            upgrade_options={"transfer_mode": mode},
            status=status,
        )

    def url(self, operation=None, key=None):
        operation = operation or self.operation
        path = reverse("modem_upgrader:api_device_image", args=[operation.pk])
        key = operation.device.key if key is None else key
        return f"{path}?key={key}"

    def get(self, url=None, **headers):
        return self.client.get(url or self.url(), headers=headers)

    def body(self, response):
        return b"".join(response.streaming_content)

    def test_whole_image_streamed(self):
        response = self.get()
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.streaming)
        self.assertEqual(response["Accept-Ranges"], "bytes")
        self.assertEqual(response["Content-Length"], str(len(FIRMWARE_CONTENT)))
        self.assertEqual(self.body(response), FIRMWARE_CONTENT)

    def test_range_from_a_byte_resumes(self):
        size = len(FIRMWARE_CONTENT)
        response = self.get(Range="bytes=100-")
        self.assertEqual(response.status_code, 206)
        self.assertEqual(response["Content-Range"], f"bytes 100-{size - 1}/{size}")
        self.assertEqual(response["Content-Length"], str(size - 100))
        self.assertEqual(self.body(response), FIRMWARE_CONTENT[100:])

    def test_closed_range(self):
        response = self.get(Range="bytes=10-19")
        self.assertEqual(response.status_code, 206)
        self.assertEqual(self.body(response), FIRMWARE_CONTENT[10:20])
        # a last byte past the end is the end
        response = self.get(Range="bytes=500-99999999")
        self.assertEqual(self.body(response), FIRMWARE_CONTENT[500:])

    def test_memory_stays_flat(self):
        with mock.patch.object(image_download, "CHUNK_SIZE", 7):
            chunks = list(self.get().streaming_content)
        self.assertLessEqual(max(len(chunk) for chunk in chunks), 7)
        self.assertEqual(b"".join(chunks), FIRMWARE_CONTENT)

    def test_bad_ranges_are_416(self):
        size = len(FIRMWARE_CONTENT)
        for header in (
            f"bytes={size}-",
            "bytes=20-10",
            "bytes=0-1,5-6",
            "bytes=-5",
            "items=0-",
            "bytes=abc-",
            "bytes=" + "9" * 40 + "-",
        ):
            with self.subTest(header=header):
                response = self.get(Range=header)
                self.assertEqual(response.status_code, 416)
                self.assertEqual(response["Content-Range"], f"bytes */{size}")

    def test_wrong_or_missing_key_is_403(self):
        for key in ("", "wrong", "é" * 3, self.device.key + "x"):
            with self.subTest(key=key):
                self.assertEqual(self.get(self.url(key=key)).status_code, 403)

    def test_another_devices_key_is_403(self):
        other = self._create_modem_device(name="other", mac_address="00:11:22:33:44:66")
        self._operation(other)
        response = self.get(self.url(key=other.key))
        self.assertEqual(response.status_code, 403)

    def test_other_organizations_image_is_404(self):
        org2 = self._create_org(name="org2", slug="org2")
        self.image.build.category.organization = org2
        self.image.build.category.save(update_fields=["organization"])
        self.assertEqual(self.get().status_code, 404)

    def test_operation_not_in_progress_is_409(self):
        for status in (OperationStatus.IDLE, OperationStatus.SUCCESS):
            with self.subTest(status=status):
                ModemUpgradeOperation.objects.filter(pk=self.operation.pk).update(
                    status=status
                )
                self.assertEqual(self.get().status_code, 409)

    def test_push_operation_is_409(self):
        operation = self._operation(
            self._create_modem_device(name="push", mac_address="00:11:22:33:44:77"),
            mode="push",
        )
        self.assertEqual(self.get(self.url(operation)).status_code, 409)

    def test_unknown_operation_or_missing_image_is_404(self):
        path = reverse(
            "modem_upgrader:api_device_image",
            args=["00000000-0000-4000-8000-000000000000"],
        )
        self.assertEqual(self.get(f"{path}?key=x").status_code, 404)
        os.unlink(self.image.file.path)
        self.assertEqual(self.get().status_code, 404)
        ModemUpgradeOperation.objects.filter(pk=self.operation.pk).update(image=None)
        self.assertEqual(self.get().status_code, 404)

    def test_pull_by_default_when_the_setting_says_so(self):
        ModemUpgradeOperation.objects.filter(pk=self.operation.pk).update(
            upgrade_options={}
        )
        self.assertEqual(self.get().status_code, 409)
        schema = get_upgrader_class(self.image.type).SCHEMA["properties"]
        with mock.patch.dict(schema["transfer_mode"], default="pull"):
            self.assertEqual(self.get().status_code, 200)

    def test_only_get_and_head(self):
        response = self.client.post(self.url())
        self.assertEqual(response.status_code, 405)
        self.assertEqual(self.client.head(self.url()).status_code, 200)

    def test_url_is_the_one_the_router_builds(self):
        with open(os.path.join(DEVICE_SCRIPTS, "lib", "download.sh")) as script:
            built = re.search(r'REPORT_URL%/}(/api/[^"]*)', script.read())[1]
        path = built.replace("$OPERATION_ID", str(self.operation.pk)).replace(
            "$DEVICE_KEY", self.device.key
        )
        self.assertEqual(path, self.url())


class TestTransferModeOption(TestCase):
    upgrader = get_upgrader_class("telit-fn990a")

    def test_push_is_the_default_and_pull_extends_the_deadline(self):
        options = self.upgrader.get_options({})
        self.assertEqual(options["transfer_mode"], "push")
        push = self.upgrader.outcome_timeout_for(options)
        pull = self.upgrader.outcome_timeout_for(
            dict(options, transfer_mode="pull", transfer_timeout=900)
        )
        self.assertEqual(pull - push, 900)

    def test_unknown_mode_is_refused(self):
        from django.core.exceptions import ValidationError

        with self.assertRaises(ValidationError):
            self.upgrader.validate_upgrade_options({"transfer_mode": "carrier-pigeon"})


class TestTransferModeThroughTheApi(ApiTestMixin, TestCase):
    """The per-upgrade option, as the REST API takes it (single and mass)."""

    def setUp(self):
        super().setUp()
        self.build = self._create_build(category=self._create_category())
        self.image = self._create_image(build=self.build)
        self.device = self._create_modem_device(
            name="ok", mac_address="00:11:22:33:44:01"
        )
        self._login(self._manager())

    def test_single_and_mass_upgrade_take_the_mode(self):
        url = api_url("device_modem_firmware", self.device.pk)
        options = {"transfer_mode": "pull"}
        response = self._json(
            "put", url, {"image": str(self.image.pk), "upgrade_options": options}
        )
        self.assertEqual(response.status_code, 200, response.data)
        operation = ModemUpgradeOperation.objects.get()
        self.assertEqual(operation.upgrade_options, options)
        ModemUpgradeOperation.objects.all().delete()
        with self.captureOnCommitCallbacks(execute=True):
            response = self._json(
                "post",
                api_url("build_upgrade", self.build.pk),
                {"upgrade_options": options},
            )
        self.assertEqual(response.status_code, 201, response.data)
        self.assertEqual(ModemUpgradeOperation.objects.get().upgrade_options, options)

    def test_unknown_mode_changes_nothing(self):
        response = self._json(
            "post",
            api_url("build_upgrade", self.build.pk),
            {"upgrade_options": {"transfer_mode": "ftp"}},
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("upgrade_options", response.data)
        self.assertFalse(ModemUpgradeOperation.objects.exists())
