"""What pages show of an upgrade's progress, in an operator's words.

The wrapper-driven upgraders report progress in fixed ranges per stage
(``upgraders/wrapper.py``); the stage an operation is in is read from its
progress, so pages and websockets agree without storing anything more.
"""

from django.utils.translation import gettext_lazy as _

from .base.models import OperationStatus

# (upper bound of the stage's progress range, its name)
STAGES = (
    (10, _("transfer")),
    (20, _("verify")),
    (90, _("flash")),
    (95, _("reboot")),
    (100, _("verify version")),
)


def stage_index(progress, status):
    """The index in ``STAGES`` of the stage running (or where the operation
    stopped); ``len(STAGES)`` once it succeeded."""
    if status == OperationStatus.SUCCESS:
        return len(STAGES)
    for index, (bound, _name) in enumerate(STAGES):
        if (progress or 0) < bound:
            return index
    return len(STAGES) - 1


def stages(progress, status):
    """``[{"name", "state"}]`` with state ``done``, ``current`` (``failed``
    when the operation ended there) or ``todo``."""
    if status == OperationStatus.IDLE:
        return [{"name": name, "state": "todo"} for _bound, name in STAGES]
    current = stage_index(progress, status)
    ended = status in (
        OperationStatus.FAILED,
        OperationStatus.ABORTED,
        OperationStatus.CANCELLED,
    )
    result = []
    for index, (_bound, name) in enumerate(STAGES):
        if index < current:
            state = "done"
        elif index == current:
            state = "failed" if ended else "current"
        else:
            state = "todo"
        result.append({"name": name, "state": state})
    return result
