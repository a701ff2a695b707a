"""staged-image.sh under BusyBox ash: verifying and removing an image
staged ahead of its maintenance window (issue 23)."""

import hashlib
import os
import subprocess

from .helpers import RouterTestCase
from .router import DEVICE_SCRIPTS

SCRIPT = os.path.join(DEVICE_SCRIPTS, "staged-image.sh")


class TestStagedImage(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.workdir = os.path.join(self.router.tmp_dir, "openwisp-modem-upgrader")
        os.makedirs(self.workdir)
        self.content = os.urandom(200_000)
        self.sha256 = hashlib.sha256(self.content).hexdigest()
        self.image = os.path.join(self.workdir, f"{self.sha256}.bin")
        with open(self.image, "wb") as image:
            image.write(self.content)

    def staged_image(self, *args):
        return self.router.run([SCRIPT, *args])

    def test_verify_accepts_the_image(self):
        result = self.staged_image(
            "verify", "--firmware", self.image, "--sha256", self.sha256
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("staged image verified", result.stdout)
        self.assertTrue(os.path.exists(self.image))

    def test_verify_removes_a_copy_that_does_not_match(self):
        # the first byte flipped (writing a fixed byte left the copy intact
        # when the random content began with it: 1 run in 256)
        with open(self.image, "r+b") as image:
            image.write(bytes([self.content[0] ^ 0xFF]))
        result = self.staged_image(
            "verify", "--firmware", self.image, "--sha256", self.sha256
        )
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertFalse(os.path.exists(self.image))

    def test_remove(self):
        for _ in range(2):  # an absent image is removed too
            result = self.staged_image(
                "remove", "--workdir", self.workdir, "--firmware", self.image
            )
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertFalse(os.path.exists(self.image))

    def test_remove_refused_while_a_wrapper_runs(self):
        lock = os.path.join(self.workdir, "42", "lock")
        os.makedirs(lock)
        sleeper = subprocess.Popen(["sleep", "60"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        with open(os.path.join(lock, "pid"), "w") as pid:
            pid.write(f"{sleeper.pid}\n")
        result = self.staged_image(
            "remove", "--workdir", self.workdir, "--firmware", self.image
        )
        self.assertEqual(result.returncode, 4, result.stderr)
        self.assertTrue(os.path.exists(self.image))
        # the wrapper recorded its outcome: it only retries its report
        with open(os.path.join(self.workdir, "42", "exit_code"), "w") as code:
            code.write("0\n")
        result = self.staged_image(
            "remove", "--workdir", self.workdir, "--firmware", self.image
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertFalse(os.path.exists(self.image))

    def test_bad_arguments_refused(self):
        outside = os.path.join(self.router.tmp_dir, "other.bin")
        for args in (
            ["verify", "--firmware", self.image, "--sha256", "ABC"],
            ["verify", "--firmware", "relative.bin", "--sha256", self.sha256],
            ["verify", "--firmware", self.image + ";reboot", "--sha256", self.sha256],
            ["verify", "--firmware", self.workdir + "/../x.bin"],
            ["remove", "--workdir", self.workdir, "--firmware", outside],
            ["remove", "--workdir", self.workdir, "--firmware", self.image[:-4]],
            ["flash", "--firmware", self.image],
            ["remove", "--workdir"],
        ):
            with self.subTest(args=args):
                result = self.staged_image(*args)
                self.assertEqual(result.returncode, 64, result.stdout)
                self.assertIn("staged-image.sh:", result.stderr)
        self.assertTrue(os.path.exists(self.image))
