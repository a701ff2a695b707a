"""scripts/tally.sh, the count every CI suite adds to (no database: it runs
with the device-script suite): the closing line, and the digest of why a
failed suite failed printed just above it."""

import os
import subprocess
import tempfile
import unittest

TALLY = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "tally.sh")


class TestTally(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.tally = os.path.join(self.dir.name, "tally")
        self.log = os.path.join(self.dir.name, "suite.log")
        with open(self.log, "w") as log:
            log.write(
                "....\n"
                # logged by a test that passed: not why the suite failed
                "Traceback (most recent call last):\n"
                "paramiko.ssh_exception.SSHException: SSH session not active\n"
                ".F\n"
                "FAIL: test_flash (tests.test_engine.TestEngine.test_flash)\n"
                "Traceback (most recent call last):\n"
                "AssertionError: 'failed' != 'success'\n"
                "  FAILED: Redis restarted: 9/10 finished\n"
                "RuntimeError: the ASGI server did not start\n"
                "Ran 5 tests\n"
            )

    def tally_sh(self, *args):
        return subprocess.run(
            ["sh", TALLY, *args],
            env=dict(os.environ, TEST_TALLY=self.tally),
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def test_summary_closes_with_the_counts_and_says_why_above_it(self):
        self.tally_sh("add", "spatialite", "4", "1")
        self.tally_sh("check", "qa", "true")
        self.tally_sh("why", "spatialite", self.log)
        lines = self.tally_sh("summary").splitlines()
        self.assertEqual(lines[-1], "5 passed, 1 failed")
        why = lines[lines.index("why:") + 1 : lines.index("why:") + 5]
        self.assertEqual(
            why,
            [
                "  spatialite: FAIL: test_flash "
                "(tests.test_engine.TestEngine.test_flash)",
                "  spatialite: AssertionError: 'failed' != 'success'",
                "  spatialite:   FAILED: Redis restarted: 9/10 finished",
                "  spatialite: RuntimeError: the ASGI server did not start",
            ],
        )
        self.assertLess(lines.index("why:"), len(lines) - 1)
        self.assertNotIn("SSH session not active", "\n".join(lines))

    def test_a_run_that_died_says_its_last_exception(self):
        with open(self.log, "w") as log:
            log.write(
                "1. fan-out\n"
                "ValueError: logged and handled\n"
                "Traceback (most recent call last):\n"
                '  File "fault_stack.py", line 100, in main\n'
                "AssertionError: timed out waiting for Redis to answer\n"
            )
        self.tally_sh("add", "fault-stack", "0", "1")
        self.tally_sh("why", "fault-stack", self.log)
        lines = self.tally_sh("summary").splitlines()
        self.assertEqual(
            lines[lines.index("why:") + 1],
            "  fault-stack: AssertionError: timed out waiting for Redis to answer",
        )
        self.assertNotIn("logged and handled", "\n".join(lines))

    def test_a_suite_that_passed_adds_no_why(self):
        self.tally_sh("add", "spatialite", "5", "0")
        self.tally_sh("why", "spatialite", self.log)
        # a label that merely starts like another does not borrow its failure
        self.tally_sh("add", "spatialite-browser", "0", "1")
        self.tally_sh("why", "spatialite", self.log)
        self.tally_sh("add", "deployment-crawl", "0", "1")
        self.tally_sh("why", "deployment", self.log)
        self.assertNotIn("why:", self.tally_sh("summary"))
        # a label ending in "-" stands for every suite it starts
        self.tally_sh("why", "deployment-", self.log)
        self.assertIn("  deployment-: FAIL: test_flash", self.tally_sh("summary"))
