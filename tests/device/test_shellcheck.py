import glob
import os
import subprocess
import unittest

from .router import DEVICE_SCRIPTS


class TestShellcheck(unittest.TestCase):
    def test_device_scripts_are_posix_sh(self):
        scripts = sorted(
            glob.glob(os.path.join(DEVICE_SCRIPTS, "*.sh"))
            + glob.glob(os.path.join(DEVICE_SCRIPTS, "lib", "*.sh"))
        )
        self.assertTrue(scripts)
        result = subprocess.run(
            ["shellcheck", "-s", "sh", *scripts],
            cwd=DEVICE_SCRIPTS,
            capture_output=True,
            text=True,
        )
        self.assertEqual(result.returncode, 0, result.stdout)
