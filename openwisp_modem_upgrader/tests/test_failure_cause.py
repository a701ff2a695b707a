"""The cause of a failure, read from the operation's log: the stage and
the failing tool's own last error line (issue 18)."""

from django.test import SimpleTestCase

from ..failure_cause import failure_cause
from .test_containment import BAD_IMAGE_LOG, CHIPSET


def log(*lines):
    return "".join(f"{line}\n" for line in lines)


class TestFailureCause(SimpleTestCase):
    def test_the_tools_error_line_not_who_noticed(self):
        for finish in ("failure reported by the router", "the flash failed (exit 2)"):
            with self.subTest(finish=finish):
                cause = failure_cause(log(*BAD_IMAGE_LOG, finish))
                self.assertEqual(str(cause), f"flash (uxfp): {CHIPSET}")

    def test_interrupted_flash(self):
        cause = failure_cause(
            log(
                "attempt 1 of 3",
                "running /usr/sbin/uxfp --file /tmp/a.bin --port /dev/ttyUSB0",
                "[+] flashing [modem] 50%, transferred 1/2 B",
                "[-] device disconnected",
                "[+] could not complete firmware upload",
                "/usr/sbin/uxfp failed with exit status 2; modem lost (not on USB "
                "after 10s)",
                "the flash was interrupted: the modem may be left in flashing mode "
                "and needs a recovery flash (exit 3)",
            )
        )
        self.assertEqual(str(cause), "flash (uxfp): device disconnected")

    def test_another_tools_last_line_without_progress(self):
        cause = failure_cause(
            log(
                "running acme --file /tmp/a.bin --port /dev/ttyUSB0",
                "[+] flashing [acme] 40%, transferred 0/0 B",
                "checksum error in block 7",
                "[+] flashing [acme] 41%, transferred 0/0 B",
                "acme failed with exit status 5; modem is back in normal mode",
                "failure reported by the router",
            )
        )
        self.assertEqual(str(cause), "flash (acme): checksum error in block 7")

    def test_refused_by_the_wrapper_before_the_tool(self):
        cause = failure_cause(
            log(
                "attempt 1 of 3",
                "transferring 100 bytes to the router",
                "starting the flashing wrapper on the router (no cancel from now)",
                "operation 1 started (pid 9) on device ? for FN990A28 M0R",
                "sha256 mismatch: expected aa, file has bb (incomplete or corrupted "
                "upload)",
                "failure reported by the router",
            )
        )
        self.assertEqual(cause.stage, "checks on the router")
        self.assertTrue(cause.line.startswith("sha256 mismatch"))

    def test_after_a_successful_tool_run(self):
        cause = failure_cause(
            log(
                "running uxfp --file /tmp/a.bin --port /dev/ttyUSB0",
                "[+] firmware uploaded successfully!",
                "uxfp finished",
                "waiting up to 30s for the modem to answer",
                "modem answers again",
                "modem runs 'M0R.010000-B020' after the flash, expected M0R.010100",
                "the flash failed (exit 2)",
            )
        )
        self.assertEqual(cause.stage, "version check")
        self.assertIn("after the flash, expected", cause.line)

    def test_a_server_side_failure_of_the_last_attempt(self):
        cause = failure_cause(
            log(
                *BAD_IMAGE_LOG,
                "attempt 2 of 3",
                "transferring 65792 bytes to the router",
                "SSH command failed: timed out; giving up after 2 attempts",
            )
        )
        self.assertEqual(cause.stage, "transfer")
        self.assertEqual(
            cause.line, "SSH command failed: timed out; giving up after 2 attempts"
        )

    def test_nothing_said(self):
        self.assertIsNone(failure_cause(""))
        self.assertIsNone(failure_cause(log("failure reported by the router")))
        self.assertLessEqual(len(failure_cause("x" * 5000).line), 300)
