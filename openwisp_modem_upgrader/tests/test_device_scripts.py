import os
import sys
import tempfile
from pathlib import Path
from unittest import mock

from django.test import SimpleTestCase, override_settings

from .. import device_scripts
from ..device_scripts import UPGRADE_SCRIPT, scripts_dir


def make_scripts(directory):
    (directory / "lib").mkdir(parents=True)
    (directory / UPGRADE_SCRIPT).write_text("#!/bin/sh\n")
    return directory


class TestDeviceScriptsLookup(SimpleTestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)

    def installed_package(self, location):
        """A package directory as pip lays it out anywhere (the wheel's copy
        of the scripts in it), returned by importlib.resources."""
        package = location / "openwisp_modem_upgrader"
        make_scripts(package / "device-scripts")
        patcher = mock.patch.object(
            device_scripts.resources, "files", return_value=package
        )
        patcher.start()
        self.addCleanup(patcher.stop)
        return package

    def test_installed_package_outside_sys_prefix(self):
        # pip install --user puts the package under ~/.local, not sys.prefix:
        # the scripts travel inside the package and are found there
        user_site = self.tmp / ".local" / "lib" / "site-packages"
        package = self.installed_package(user_site)
        self.assertFalse(str(package).startswith(sys.prefix))
        self.assertEqual(scripts_dir(), str(package / "device-scripts"))

    def test_installed_copy_preferred_to_a_checkout_beside_it(self):
        package = self.installed_package(self.tmp / "site-packages")
        with mock.patch.object(
            device_scripts, "_REPOSITORY", str(make_scripts(self.tmp / "checkout"))
        ):
            self.assertEqual(scripts_dir(), str(package / "device-scripts"))

    def test_configured_directory_first(self):
        self.installed_package(self.tmp / "site-packages")
        configured = make_scripts(self.tmp / "custom")
        with override_settings(OPENWISP_MODEM_UPGRADER_DEVICE_SCRIPTS_DIR=configured):
            self.assertEqual(scripts_dir(), configured)

    def test_source_checkout_uses_repository_directory(self):
        # editable installs and this repository: no copy inside the package
        with mock.patch.object(
            device_scripts.resources, "files", return_value=self.tmp / "bare-package"
        ):
            self.assertEqual(scripts_dir(), device_scripts._REPOSITORY)
            self.assertTrue(os.path.isfile(os.path.join(scripts_dir(), UPGRADE_SCRIPT)))

    def test_nowhere_is_a_clear_error(self):
        with mock.patch.object(
            device_scripts.resources, "files", return_value=self.tmp / "bare"
        ), mock.patch.object(device_scripts, "_REPOSITORY", str(self.tmp / "none")):
            with self.assertRaisesRegex(FileNotFoundError, UPGRADE_SCRIPT):
                scripts_dir()
