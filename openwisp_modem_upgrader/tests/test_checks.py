"""The system check for swappable model settings spelled as in the design doc."""

from django.core import checks
from django.test import SimpleTestCase, override_settings

from ..base import models as base_models
from ..checks import (
    MISNAMED_SWAPPABLE_SETTING,
    SWAPPABLE_MODELS,
    check_misnamed_swappable_settings,
    misspellings,
    snake_upper,
)


def misnamed(errors):
    return [e for e in errors if e.id == MISNAMED_SWAPPABLE_SETTING]


class TestMisnamedSwappableSettings(SimpleTestCase):
    def test_none_by_default(self):
        self.assertEqual(check_misnamed_swappable_settings(), [])

    @override_settings(OPENWISP_MODEM_BUILD_MODEL="myapp.CustomModemBuild")
    def test_design_document_spelling_warns_with_the_right_name(self):
        errors = check_misnamed_swappable_settings()
        self.assertEqual(len(errors), 1)
        error = errors[0]
        self.assertEqual(error.level, checks.WARNING)
        self.assertEqual(error.id, MISNAMED_SWAPPABLE_SETTING)
        self.assertIn("OPENWISP_MODEM_BUILD_MODEL", error.msg)
        self.assertIn("MODEM_UPGRADER_MODEMBUILD_MODEL", error.msg)
        self.assertEqual(
            error.hint,
            "Rename it: MODEM_UPGRADER_MODEMBUILD_MODEL = 'myapp.CustomModemBuild'",
        )

    @override_settings(
        OPENWISP_MODEM_FIRMWARE_IMAGE_MODEL="myapp.Image",
        OPENWISP_DEVICE_MODEM_FIRMWARE_MODEL="myapp.DMF",
        OPENWISP_MODEM_UPGRADER_MODEMHISTORY_MODEL="myapp.History",
        MODEM_UPGRADER_MODEM_UPGRADE_OPERATION_MODEL="myapp.Operation",
    )
    def test_every_model_and_spelling(self):
        messages = [e.msg for e in check_misnamed_swappable_settings()]
        self.assertEqual(len(messages), 4, messages)
        expected = {
            "OPENWISP_MODEM_FIRMWARE_IMAGE_MODEL": "MODEMFIRMWAREIMAGE",
            "OPENWISP_DEVICE_MODEM_FIRMWARE_MODEL": "DEVICEMODEMFIRMWARE",
            "OPENWISP_MODEM_UPGRADER_MODEMHISTORY_MODEL": "MODEMHISTORY",
            "MODEM_UPGRADER_MODEM_UPGRADE_OPERATION_MODEL": "MODEMUPGRADEOPERATION",
        }
        for wrong, right in expected.items():
            self.assertTrue(
                any(
                    m.startswith(f"{wrong} is set")
                    and f"MODEM_UPGRADER_{right}_MODEL." in m
                    for m in messages
                ),
                (wrong, messages),
            )

    @override_settings(MODEM_UPGRADER_MODEMBUILD_MODEL="modem_upgrader.ModemBuild")
    def test_the_right_setting_does_not_warn(self):
        self.assertEqual(check_misnamed_swappable_settings(), [])

    @override_settings(OPENWISP_MODEM_CATEGORY_MODEL="myapp.Category")
    def test_registered_with_django(self):
        errors = misnamed(checks.run_checks())
        self.assertEqual(len(errors), 1)
        self.assertIn("MODEM_UPGRADER_MODEMCATEGORY_MODEL", errors[0].msg)

    def test_every_swappable_model_covered(self):
        abstract = {
            name[len("Abstract") :]
            for name in dir(base_models)
            if name.startswith("Abstract")
        }
        self.assertEqual(set(SWAPPABLE_MODELS), abstract)

    def test_spellings(self):
        self.assertEqual(
            snake_upper("ModemBatchUpgradeOperation"), "MODEM_BATCH_UPGRADE_OPERATION"
        )
        self.assertIn("OPENWISP_MODEM_BUILD_MODEL", misspellings("ModemBuild"))


class TestPackaging(SimpleTestCase):
    def test_version_needs_no_normalizing(self):
        """setuptools warns at every build (demo start, bootstrap) when it
        has to normalize the version: it is PEP 440's own spelling."""
        from packaging.version import Version

        from .. import get_version

        self.assertEqual(str(Version(get_version())), get_version())
