"""A tiny record of named checks shared by the deployment check scripts.

Each script prints one line per check and exits 0 when all passed, 1 when
one failed, and NOT_CHECKED (3) when what it checks against is missing: the
caller must then not count the run as a check.
"""

import sys
import traceback

NOT_CHECKED = 3


class Checks:
    def __init__(self, title):
        self.title = title
        self.passed = 0
        self.failed = 0

    def check(self, condition, what, detail=""):
        if condition:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}" + (f": {detail}" if detail else ""))
        return condition

    def equal(self, actual, expected, what):
        return self.check(
            actual == expected, what, f"got {actual!r}, expected {expected!r}"
        )

    def run(self, what, function, *args, **kwargs):
        """Runs a step; an exception is a failed check, not a crash."""
        try:
            return function(*args, **kwargs)
        except Exception:
            self.check(False, what, traceback.format_exc())

    def finish(self):
        print(f"{self.title}: {self.passed} ok, {self.failed} failed")
        sys.exit(1 if self.failed or not self.passed else 0)


def not_checked(reason):
    print(f"NOT CHECKED: {reason}")
    sys.exit(NOT_CHECKED)
