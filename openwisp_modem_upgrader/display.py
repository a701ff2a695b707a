"""What pages show of an upgrade's progress, in an operator's words.

The wrapper-driven upgraders report progress in fixed ranges per stage
(``upgraders/wrapper.py``); the stage an operation is in is read from its
progress, so pages and websockets agree without storing anything more.
"""

import re
from datetime import datetime
from datetime import timezone as dt_timezone

from django.utils import timezone
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
    if status == OperationStatus.STAGED:
        # the image waits on the router for the window: transferred only
        return [
            {"name": name, "state": "done" if index == 0 else "todo"}
            for index, (_bound, name) in enumerate(STAGES)
        ]
    current = stage_index(progress, status)
    ended = status in (
        OperationStatus.FAILED,
        OperationStatus.ABORTED,
        OperationStatus.CANCELLED,
        OperationStatus.NO_SERVICE,
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


# the times the server writes into a log ("… until 2026-12-03 05:40 UTC",
# engine.py); the stored log keeps UTC, people read their own zone
_UTC_TIME = re.compile(r"\b(\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC\b")


def local_log(text):
    """``text`` (an operation's log) with the UTC times the server wrote
    shown in the current time zone (the user's, else ``TIME_ZONE``), the
    zone named: ``2026-12-03 06:40 CET``."""
    if not text or " UTC" not in text:
        return text

    def localize(match):
        moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M")
        local = timezone.localtime(moment.replace(tzinfo=dt_timezone.utc))
        return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"

    return _UTC_TIME.sub(localize, text)
