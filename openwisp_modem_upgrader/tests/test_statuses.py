import ast
from pathlib import Path

from django.test import SimpleTestCase

from .. import statuses
from ..api import device
from ..statuses import OperationStatus

PACKAGE = Path(statuses.__file__).parent


class TestStatusGroups(SimpleTestCase):
    def test_device_report_groups_come_from_statuses(self):
        # the device report imports its groups, it does not define its own
        self.assertIs(device.UNSUCCESSFUL_STATUSES, statuses.UNSUCCESSFUL_STATUSES)
        self.assertIs(device.ROUTINE_REPORT_STATUSES, statuses.ROUTINE_REPORT_STATUSES)
        self.assertEqual(
            set(statuses.UNSUCCESSFUL_STATUSES),
            set(statuses.TERMINAL_STATUSES) - {OperationStatus.SUCCESS},
        )

    def test_no_status_group_defined_outside_statuses(self):
        """No module-level tuple/set/list of OperationStatus members elsewhere."""
        offenders = []
        for path in PACKAGE.rglob("*.py"):
            relative = path.relative_to(PACKAGE)
            if relative.parts[0] in ("tests", "migrations") or path.name == (
                "statuses.py"
            ):
                continue
            for node in ast.parse(path.read_text()).body:
                if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                    continue
                for sub in ast.walk(node.value):
                    if (
                        isinstance(sub, ast.Attribute)
                        and isinstance(sub.value, ast.Name)
                        and sub.value.id == "OperationStatus"
                        and sub.attr in OperationStatus.names
                    ):
                        offenders.append(f"{relative}:{node.lineno}")
                        break
        self.assertEqual(offenders, [])
