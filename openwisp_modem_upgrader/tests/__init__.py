"""Factories shared by the test modules (and the sample app's tests)."""

import hashlib

import swapper
from django.core.files.uploadedfile import SimpleUploadedFile

from openwisp_controller.connection.tests.utils import CreateConnectionsMixin

from ..swapper import load_model

ModemCategory = load_model("ModemCategory")
ModemBuild = load_model("ModemBuild")
ModemFirmwareImage = load_model("ModemFirmwareImage")
DeviceModemFirmware = load_model("DeviceModemFirmware")
ModemUpgradeOperation = load_model("ModemUpgradeOperation")
ModemBatchUpgradeOperation = load_model("ModemBatchUpgradeOperation")
Device = swapper.load_model("config", "Device")

FN990A28 = "FN990A28"
OLD_VERSION = "M0R.010000-B022"
NEW_VERSION = "M0R.010100-B024"
FIRMWARE_CONTENT = b"FN990A-STREAM-45.00.011\n" + b"\x00\x01payload" * 64


class TestModemUpgraderMixin(CreateConnectionsMixin):
    def _create_category(self, **kwargs):
        opts = {"name": "Telit FN990A", "organization": self._get_org()}
        opts.update(kwargs)
        category = ModemCategory(**opts)
        category.full_clean()
        category.save()
        return category

    def _create_build(self, **kwargs):
        # released: the fleet's target, as builds were before the lifecycle
        opts = {"version": NEW_VERSION, "modem_model": FN990A28, "status": "released"}
        opts.update(kwargs)
        if "category" not in opts:
            opts["category"] = self._create_category()
        build = ModemBuild(**opts)
        build.full_clean()
        build.save()
        return build

    def _upload(self, content=FIRMWARE_CONTENT, name="fn990a28.bin"):
        return SimpleUploadedFile(name, content, "application/octet-stream")

    def _create_image(self, **kwargs):
        opts = {"type": "telit-fn990a", "boards": []}
        opts.update(kwargs)
        if "build" not in opts:
            opts["build"] = self._create_build()
        if "file" not in opts:
            opts["file"] = self._upload()
        image = ModemFirmwareImage(**opts)
        image.full_clean()
        image.save()
        return image

    def _create_modem_device(self, modem_model=FN990A28, version=OLD_VERSION, **kw):
        """A device with an SSH connection and a detected modem."""
        org = kw.pop("organization", None) or self._get_org()
        device = self._create_device(organization=org, **kw)
        self._create_config(device=device)
        self._create_device_connection(
            device=device, credentials=self._get_credentials(organization=org)
        )
        DeviceModemFirmware.objects.create(
            device=device,
            modem_manufacturer="Telit",
            modem_model=modem_model,
            modem_firmware_version=version,
        )
        return device

    @staticmethod
    def _sha256(content=FIRMWARE_CONTENT):
        return hashlib.sha256(content).hexdigest()
