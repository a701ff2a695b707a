import os
from unittest import mock

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import TestCase

from .. import settings as app_settings
from ..base.models import OperationStatus
from . import (
    FIRMWARE_CONTENT,
    NEW_VERSION,
    DeviceModemFirmware,
    ModemBuild,
    ModemCategory,
    ModemFirmwareImage,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)


class TestCatalogue(TestModemUpgraderMixin, TestCase):
    def test_category_shared_and_per_organization(self):
        shared = self._create_category(organization=None)
        self.assertIsNone(shared.organization)
        self._create_category()
        with self.assertRaises(ValidationError) as context:
            self._create_category()
        self.assertIn("__all__", context.exception.message_dict)

    def test_build_version_unique_per_category(self):
        category = self._create_category()
        self._create_build(category=category)
        with self.assertRaises(ValidationError) as context:
            self._create_build(category=category)
        self.assertIn("already exists", str(context.exception))
        other = self._create_category(name="other")
        self._create_build(category=other)
        self.assertEqual(ModemBuild.objects.filter(version=NEW_VERSION).count(), 2)

    def test_build_rejects_malformed_model_and_version(self):
        category = self._create_category()
        with self.assertRaises(ValidationError) as context:
            self._create_build(category=category, modem_model="FN990A28; reboot")
        self.assertIn("modem_model", context.exception.message_dict)
        with self.assertRaises(ValidationError) as context:
            self._create_build(category=category, version="$(id)")
        self.assertIn("version", context.exception.message_dict)

    def test_image_checksum_and_size_computed_from_upload(self):
        image = self._create_image()
        self.assertEqual(image.sha256, self._sha256())
        self.assertEqual(image.size, len(FIRMWARE_CONTENT))
        image.refresh_from_db()
        self.assertEqual(image.sha256, self._sha256())

    def test_image_stored_directly_is_hashed(self):
        from django.core.files.base import ContentFile

        image = ModemFirmwareImage(build=self._create_build(), type="telit-fn990a")
        image.file.save("direct.bin", ContentFile(FIRMWARE_CONTENT), save=False)
        image.full_clean()
        image.save()
        self.assertEqual(image.sha256, self._sha256())
        self.assertEqual(image.size, len(FIRMWARE_CONTENT))

    def test_image_stored_directly_still_size_checked(self):
        from django.core.files.base import ContentFile

        image = ModemFirmwareImage(build=self._create_build(), type="telit-fn990a")
        image.file.save("direct.bin", ContentFile(b""), save=False)
        with self.assertRaises(ValidationError) as context:
            image.full_clean()
        self.assertIn("file", context.exception.message_dict)

    def test_image_digest_reads_in_chunks(self):
        # 3 MiB spans several 1 MiB chunks: the digest must equal the whole's
        content = os.urandom(3 * 1024 * 1024 + 7)
        image = self._create_image(file=self._upload(content, "big.bin"))
        self.assertEqual(image.sha256, self._sha256(content))
        self.assertEqual(image.size, len(content))

    def test_image_is_stored_privately(self):
        image = self._create_image()
        self.assertTrue(os.path.isfile(image.file.path))
        self.assertIn(os.path.join("private", "modem-firmware"), image.file.path)
        self.assertTrue(image.file.name.startswith(f"{image.build.pk}/"))
        self.assertTrue(image.file.url.startswith("/modem-firmware/"))

    def test_image_file_deleted_with_image(self):
        image = self._create_image()
        path = image.file.path
        with self.captureOnCommitCallbacks(execute=True):
            image.delete()
        self.assertFalse(os.path.exists(path))

    def test_image_files_deleted_with_category(self):
        image = self._create_image()
        path = image.file.path
        with self.captureOnCommitCallbacks(execute=True):
            image.build.category.delete()
        self.assertFalse(os.path.exists(path))

    def test_upgrader_must_support_the_build_modem_model(self):
        build = self._create_build(modem_model="RM520N-GL")
        with self.assertRaises(ValidationError) as context:
            self._create_image(build=build, type="telit-fn990a")
        self.assertIn('cannot flash "RM520N-GL" modems', str(context.exception))
        # the generic upgrader accepts any model
        self._create_image(build=build, type="generic")

    def test_empty_upload_rejected(self):
        with self.assertRaises(ValidationError) as context:
            self._create_image(file=self._upload(b""))
        self.assertIn("file", context.exception.message_dict)
        self.assertEqual(ModemFirmwareImage.objects.count(), 0)

    def test_oversized_upload_rejected(self):
        with mock.patch.object(app_settings, "MAX_FILE_SIZE", 100):
            with self.assertRaises(ValidationError) as context:
                self._create_image()
        self.assertIn("may not be larger than 100", str(context.exception))
        self.assertEqual(ModemFirmwareImage.objects.count(), 0)

    def test_unknown_upgrader_type_rejected(self):
        with self.assertRaises(ValidationError) as context:
            self._create_image(type="nokia-magic")
        self.assertIn("type", context.exception.message_dict)

    def test_boards_must_be_a_list_of_names(self):
        build = self._create_build()
        for boards in ({"a": 1}, ["ok", ""], [1]):
            with self.subTest(boards=boards):
                with self.assertRaises(ValidationError) as context:
                    self._create_image(build=build, boards=boards)
                self.assertIn("boards", context.exception.message_dict)

    def test_one_image_per_upgrader_type_per_build(self):
        build = self._create_build()
        self._create_image(build=build)
        with self.assertRaises(ValidationError):
            self._create_image(build=build)


class TestCompatibility(TestModemUpgraderMixin, TestCase):
    def test_device_firmware_image_of_other_organization(self):
        image = self._create_image()
        device = self._create_device(organization=self._create_org(name="other"))
        dmf = DeviceModemFirmware(device=device, image=image)
        with self.assertRaises(ValidationError) as context:
            dmf.full_clean()
        self.assertIn("organization", str(context.exception))

    def test_shared_image_allowed_for_any_organization(self):
        build = self._create_build(category=self._create_category(organization=None))
        image = self._create_image(build=build)
        device = self._create_device(organization=self._create_org(name="other"))
        DeviceModemFirmware(device=device, image=image).full_clean()

    def test_other_modem_variant_rejected(self):
        image = self._create_image()
        device = self._create_device()
        dmf = DeviceModemFirmware(device=device, image=image, modem_model="FN990A40")
        with self.assertRaises(ValidationError) as context:
            dmf.full_clean()
        self.assertIn('built for the modem model "FN990A28"', str(context.exception))
        self.assertIn("FN990A40", str(context.exception))

    def test_board_not_validated_rejected(self):
        image = self._create_image(boards=["Teltonika RUTX50"])
        device = self._create_device(model="TP-Link")
        dmf = DeviceModemFirmware(device=device, image=image)
        with self.assertRaises(ValidationError) as context:
            dmf.full_clean()
        self.assertIn("not validated for the router model", str(context.exception))
        device.model = "Teltonika RUTX50"
        DeviceModemFirmware(device=device, image=image).full_clean()


class TestOperationRules(TestModemUpgraderMixin, TestCase):
    def _operation(self, **kwargs):
        if "image" not in kwargs:
            kwargs["image"] = self._create_image()
        if "device" not in kwargs:
            kwargs["device"] = self._create_modem_device()
        return ModemUpgradeOperation(**kwargs)

    def test_valid_operation(self):
        operation = self._operation(
            upgrade_options={"upgrade_timeout": 900, "tool_path": "uxfp"}
        )
        operation.full_clean()
        operation.save()
        self.assertEqual(operation.status, OperationStatus.IDLE)
        self.assertEqual(operation.progress, 0)

    def test_upgrader_must_declare_the_modems_model(self):
        # the upgrader's declared models changed after the image was made:
        # start_upgrade refuses what detection calls inventory only
        from ..upgraders.telit import TelitFN990AUpgrader

        operation = self._operation()
        with mock.patch.object(TelitFN990AUpgrader, "supported_models", "PX100"):
            with self.assertRaises(ValidationError) as context:
                operation.full_clean()
        self.assertIn("The upgrader of this image cannot flash", str(context.exception))
        operation.full_clean()

    def test_options_validated_against_upgrader_schema(self):
        cases = {
            "unknown option": {"color": "blue"},
            "wrong type": {"upgrade_timeout": "soon"},
            "below minimum": {"upgrade_timeout": 1},
            "hostile tool path": {"tool_path": "/usr/bin/uxfp; reboot"},
            "hostile command name": {"tool_path": "uxfp$(reboot)"},
            "hostile arguments": {"tool_args": "--speed 1 `reboot`"},
            "relative directory": {"remote_dir": "tmp"},
        }
        image = self._create_image()
        device = self._create_modem_device()
        for case, options in cases.items():
            with self.subTest(case):
                operation = self._operation(
                    image=image, device=device, upgrade_options=options
                )
                with self.assertRaises(ValidationError) as context:
                    operation.full_clean()
                self.assertIn("upgrade_options", context.exception.message_dict)

    def test_options_error_names_the_field(self):
        operation = self._operation(upgrade_options={"upgrade_timeout": "x"})
        with self.assertRaises(ValidationError) as context:
            operation.full_clean()
        message = context.exception.message_dict["upgrade_options"][0]
        self.assertTrue(message.startswith("upgrade_timeout:"), message)

    def test_organization_mismatch(self):
        device = self._create_modem_device(organization=self._create_org(name="b"))
        with self.assertRaises(ValidationError) as context:
            self._operation(device=device).full_clean()
        self.assertIn("organization", str(context.exception))

    def test_other_modem_model(self):
        device = self._create_modem_device(modem_model="FN990A40")
        with self.assertRaises(ValidationError) as context:
            self._operation(device=device).full_clean()
        self.assertIn("FN990A40", str(context.exception))

    def test_other_board(self):
        image = self._create_image(boards=["Other Board"])
        with self.assertRaises(ValidationError) as context:
            self._operation(image=image).full_clean()
        self.assertIn("router model", str(context.exception))

    def test_deactivated_device(self):
        device = self._create_modem_device()
        device.deactivate()
        with self.assertRaises(ValidationError) as context:
            self._operation(device=device).full_clean()
        self.assertIn("deactivated", str(context.exception))

    def test_second_active_operation_rejected_by_validation(self):
        first = self._operation()
        first.save()
        second = self._operation(image=first.image, device=first.device)
        with self.assertRaises(ValidationError) as context:
            second.full_clean()
        self.assertIn("already running", str(context.exception))

    def test_second_active_operation_rejected_by_database(self):
        first = self._operation()
        first.save()
        second = self._operation(image=first.image, device=first.device)
        with self.assertRaises(IntegrityError):
            with transaction.atomic():
                second.save()

    def test_finished_operation_does_not_block(self):
        first = self._operation(status=OperationStatus.FAILED)
        first.save()
        second = self._operation(image=first.image, device=first.device)
        second.full_clean()
        second.save()
        self.assertEqual(ModemUpgradeOperation.objects.count(), 2)

    def test_progress_above_100_rejected_by_database(self):
        operation = self._operation()
        operation.save()
        with self.assertRaises(IntegrityError):
            with transaction.atomic():
                ModemUpgradeOperation.objects.filter(pk=operation.pk).update(
                    progress=101
                )


class TestSwappedModels(TestCase):
    def test_models_are_the_configured_ones(self):
        from django.conf import settings

        expected = (
            "sample_modem_upgrader"
            if getattr(settings, "SAMPLE_APP", False)
            else "modem_upgrader"
        )
        for model in (ModemCategory, ModemBuild, ModemFirmwareImage):
            self.assertEqual(model._meta.app_label, expected)
        if expected == "sample_modem_upgrader":
            self.assertTrue(hasattr(ModemBuild(), "details"))
