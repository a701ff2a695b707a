"""Start times spread inside a maintenance window.

Without it every device of a fleet starts the second its window opens (or
its wave starts): one cell tower or VPN concentrator then carries every
transfer at once. Each device that may start inside an open window gets a
random start time (``not_before``), at most ``START_SPREAD`` seconds
ahead, never past the window's end nor the deadline. It is given once per
window: a device still waiting at the next opening gets a new one.
"""

import random
from datetime import timedelta

from django.db.models import Q

from . import settings as app_settings
from .upgrade import put_off_start, put_off_starts


def spread_bound(schedule, now, deadline=None):
    """Seconds a start may be put off at ``now``, and when the window now
    open opened; ``(0, None)`` without a window (nothing is spread)."""
    window = schedule.open_window(now)
    if window is None or not app_settings.START_SPREAD:
        return 0, None
    opened, closes = window
    limits = [app_settings.START_SPREAD, (closes - now).total_seconds()]
    if deadline:
        limits.append((deadline - now).total_seconds())
    return max(0.0, min(limits)), opened


def random_start(now, bound):
    return now + timedelta(seconds=random.uniform(0, bound))


def spread_starts(waiting, schedule, now):
    """Gives the operations of ``waiting`` (not queued, may start now in
    the rollout's eyes) that have no start time in this window one; how
    many. ``schedule`` holds the window and the deadline (the batch)."""
    bound, opened = spread_bound(schedule, now, schedule.deadline)
    if not bound:
        return 0
    unspread = waiting.filter(Q(not_before__isnull=True) | Q(not_before__lt=opened))
    starts = {
        pk: random_start(now, bound) for pk in unspread.values_list("pk", flat=True)
    }
    put_off_starts(starts)
    return len(starts)


def spread_single(operation, now):
    """A single upgrade (its own schedule): True when its start was just
    put off inside the window, so it waits instead of starting now."""
    bound, opened = spread_bound(operation, now, operation.deadline)
    if not bound or (operation.not_before and operation.not_before >= opened):
        return False
    operation.not_before = random_start(now, bound)
    put_off_start(operation.pk, operation.not_before)
    return operation.not_before > now
