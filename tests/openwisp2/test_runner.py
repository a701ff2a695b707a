"""The test project's runner: openwisp-utils' slow-test report, plus a tally.

When ``TEST_TALLY`` names a file, each run appends one line
``<label> <passed> <failed>`` to it, so that ``scripts/test.sh`` and
``.ci/run`` can close with one ``N passed, M failed`` over every suite.
"""

import os

from openwisp_utils.tests import TimeLoggingTestRunner


class TallyingTestRunner(TimeLoggingTestRunner):
    def run_suite(self, suite, **kwargs):
        result = super().run_suite(suite, **kwargs)
        tally = os.environ.get("TEST_TALLY")
        if tally:
            failed = (
                len(result.failures)
                + len(result.errors)
                + len(result.unexpectedSuccesses)
            )
            # a skipped test is not a passed one
            passed = result.testsRun - failed - len(result.skipped)
            label = os.environ.get("TEST_TALLY_LABEL", "django-tests")
            with open(tally, "a") as tally_file:
                tally_file.write(f"{label} {passed} {failed}\n")
        return result
