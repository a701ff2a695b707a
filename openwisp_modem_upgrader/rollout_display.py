"""What operators see of a rollout (API and admin): one display state,
the counts in flight and waiting, and the number of waves.

The counts are subqueries on the batch, so a list of batches annotated with
``rollout_annotations()`` costs one query whatever its length; "in flight"
is the scheduler's own definition (``statuses.in_flight``).
"""

from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, Max, OuterRef, Subquery, TextChoices
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .base.models import TERMINAL_STATUSES
from .base.rollout import ROLLOUT_FIELDS, RolloutState  # noqa: F401 (API, admin)
from .statuses import WAITING_STATUSES, in_flight
from .swapper import load_model

# what splits a batch's devices into waves (the dry run shows the waves)
WAVE_FIELDS = ("canary_size", "canary_percent", "wave_size")
SCHEDULE_FIELDS = (
    "scheduled_at",
    "deadline",
    "window_start",
    "window_end",
    "window_timezone",
)


class DisplayState(TextChoices):
    RUNNING = RolloutState.RUNNING.value, RolloutState.RUNNING.label
    PAUSED = RolloutState.PAUSED.value, RolloutState.PAUSED.label
    AWAITING = RolloutState.AWAITING.value, RolloutState.AWAITING.label
    STOPPED = RolloutState.STOPPED.value, RolloutState.STOPPED.label
    SCHEDULED = "scheduled", _("scheduled")
    OUTSIDE_WINDOW = "outside-window", _("outside its maintenance window")
    FINISHED = "finished", _("finished")


def display_state(batch, now=None):
    """Why the batch starts devices now, or why not.

    An operator's pause, a wait for the go-ahead and an automatic stop
    come before the schedule and the window: they need someone to act,
    while time alone ends the other two.
    """
    if batch.status in TERMINAL_STATUSES:
        return DisplayState.FINISHED
    if batch.rollout_state != RolloutState.RUNNING:
        return DisplayState(batch.rollout_state)
    now = now or timezone.now()
    if batch.scheduled_at and now < batch.scheduled_at:
        return DisplayState.SCHEDULED
    if not batch.window_is_open(now):
        return DisplayState.OUTSIDE_WINDOW
    return DisplayState.RUNNING


def clean_rollout_options(instance, values, now=None):
    """Applies the rollout or schedule ``values`` to an unsaved batch or
    operation and runs the model's checks; a deadline already passed (it
    would start nothing) is refused too. Raises ``ValidationError``."""
    for field, value in values.items():
        setattr(instance, field, value)
    errors = {}
    try:
        if hasattr(instance, "clean_rollout"):
            instance.clean_rollout()
        else:
            instance.clean_schedule()
    except ValidationError as error:
        error.update_error_dict(errors)
    deadline = values.get("deadline")
    if deadline is not None and deadline <= (now or timezone.now()):
        errors.setdefault("deadline", []).append(_("The deadline has already passed."))
    if errors:
        raise ValidationError(errors)


def _per_batch(operations, aggregate):
    rows = (
        operations.filter(batch_id=OuterRef("pk"))
        .order_by()
        .values("batch_id")
        .annotate(value=aggregate)
        .values("value")
    )
    return Coalesce(Subquery(rows[:1], output_field=IntegerField()), 0)


def rollout_annotations():
    """``count_in_flight``, ``count_waiting`` and ``wave_count`` of each
    batch of a queryset."""
    operations = load_model("ModemUpgradeOperation").objects.all()
    return {
        "count_in_flight": _per_batch(in_flight(operations), Count("pk")),
        # not queued yet (retries waiting for their backoff included)
        "count_waiting": _per_batch(
            operations.filter(status__in=WAITING_STATUSES, dispatched_at__isnull=True),
            Count("pk"),
        ),
        # 0 until the devices are fanned out into waves
        "wave_count": _per_batch(operations, Max("wave")),
    }


def rollout_counts(batch):
    """``{"in_flight", "waiting", "waves"}`` of a batch: from its
    annotations when the queryset had them, else in one query."""
    names = {"in_flight": "count_in_flight", "waiting": "count_waiting"}
    names["waves"] = "wave_count"
    if not all(hasattr(batch, name) for name in names.values()):
        values = (
            type(batch)
            .objects.filter(pk=batch.pk)
            .annotate(**rollout_annotations())
            .values(*names.values())
            .first()
        ) or dict.fromkeys(names.values(), 0)
        for name, value in values.items():
            setattr(batch, name, value)
    return {key: getattr(batch, name) for key, name in names.items()}
