"""Abstract fields of schedules (batches and single upgrades) and rollouts
(batches): when devices may start, how many at once, in which waves, and
when a batch stops by itself. The engine that applies them is
``scheduler.py`` (dispatch) and ``rollout.py`` (waves, stop, pause).
"""

import zoneinfo
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .. import settings as app_settings
from ..statuses import RolloutState


def validate_time_zone(value):
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(_("Unknown time zone: %(zone)s") % {"zone": value})


class ScheduleMixin(models.Model):
    scheduled_at = models.DateTimeField(
        _("start at"),
        null=True,
        blank=True,
        help_text=_("no device starts before this time; empty: now"),
    )
    deadline = models.DateTimeField(
        _("deadline"),
        null=True,
        blank=True,
        help_text=_(
            "devices not started by then are not started any more (an offline "
            "router is waited for until then); empty: the default wait"
        ),
    )
    window_start = models.TimeField(
        _("maintenance window start"),
        null=True,
        blank=True,
        help_text=_("devices start only inside this daily window"),
    )
    window_end = models.TimeField(
        _("maintenance window end"),
        null=True,
        blank=True,
        help_text=_("may be earlier than the start: a window across midnight"),
    )
    window_timezone = models.CharField(
        _("window time zone"),
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
    )

    class Meta:
        abstract = True

    def clean_schedule(self):
        """Every mistake of the schedule at once (one submit shows all)."""
        errors = {}
        if (self.window_start is None) != (self.window_end is None):
            errors["window_end"] = _(
                "Give both ends of the maintenance window, or none."
            )
        elif self.window_start is not None and self.window_start == self.window_end:
            errors["window_end"] = _("The window must not start and end at once.")
        if self.scheduled_at and self.deadline and self.deadline <= self.scheduled_at:
            errors["deadline"] = _("The deadline must come after the start time.")
        if errors:
            raise ValidationError(errors)

    @property
    def has_window(self):
        return self.window_start is not None and self.window_end is not None

    def window_is_open(self, now):
        """Whether ``now`` (aware) falls inside the daily window (always
        true without a window). The start is inside, the end outside."""
        if not self.has_window:
            return True
        local = now.astimezone(zoneinfo.ZoneInfo(self.window_timezone)).time()
        start, end = self.window_start, self.window_end
        if start < end:
            return start <= local < end
        return local >= start or local < end  # across midnight

    def next_window_opening(self, now):
        """When the window opens next (``now`` if open), aware: the batch
        page says it while a batch waits outside its window."""
        if self.window_is_open(now):
            return now
        zone = zoneinfo.ZoneInfo(self.window_timezone)
        local = now.astimezone(zone)
        opening = datetime.combine(local.date(), self.window_start, tzinfo=zone)
        if opening <= local:
            opening += timedelta(days=1)
        return opening

    def open_window(self, now):
        """``(opened, closes)``: the bounds (aware) of the window open at
        ``now``; ``None`` without a window or when it is closed."""
        if not self.has_window or not self.window_is_open(now):
            return None
        zone = zoneinfo.ZoneInfo(self.window_timezone)
        local = now.astimezone(zone)
        opened = datetime.combine(local.date(), self.window_start, tzinfo=zone)
        if opened > local:  # across midnight, opened yesterday
            opened -= timedelta(days=1)
        closes = datetime.combine(opened.date(), self.window_end, tzinfo=zone)
        if closes <= opened:
            closes += timedelta(days=1)
        return opened, closes

    def may_start(self, now):
        """Scheduled time reached and window open."""
        if self.scheduled_at and now < self.scheduled_at:
            return False
        return self.window_is_open(now)


# the rollout's fields an operator sets (API, admin form, retry)
ROLLOUT_FIELDS = (
    "max_concurrent",
    "canary_size",
    "canary_percent",
    "canary_failure_tolerance",
    "wave_size",
    "confirm_waves",
    "failure_threshold",
    "failure_threshold_percent",
    "failure_threshold_minimum",
    "scheduled_at",
    "deadline",
    "window_start",
    "window_end",
    "window_timezone",
)


class RolloutMixin(ScheduleMixin):
    max_concurrent = models.PositiveIntegerField(
        _("concurrency limit"),
        default=app_settings.BATCH_CONCURRENCY,
        validators=[MinValueValidator(1), MaxValueValidator(100000)],
        help_text=_("at most this many devices of the batch upgrading at once"),
    )
    canary_size = models.PositiveIntegerField(
        _("canary wave"),
        default=0,
        validators=[MaxValueValidator(100000)],
        help_text=_("devices upgraded first, alone (0: no canary wave)"),
    )
    canary_percent = models.BooleanField(
        _("canary wave in percent"),
        default=False,
        help_text=_("the canary wave is a percentage of the batch's devices"),
    )
    canary_failure_tolerance = models.PositiveIntegerField(
        _("canary failures tolerated"),
        default=0,
        validators=[MaxValueValidator(100000)],
        help_text=_(
            "the canary wave must succeed as a whole: its first failure stops "
            "the batch, unless this many canary failures are tolerated"
        ),
    )
    wave_size = models.PositiveIntegerField(
        _("wave size"),
        default=0,
        validators=[MaxValueValidator(100000)],
        help_text=_("devices per wave after the canary (0: all the others)"),
    )
    confirm_waves = models.BooleanField(
        _("wait for the go-ahead between waves"),
        default=False,
        help_text=_("after each wave, an operator resumes the batch"),
    )
    failure_threshold = models.PositiveIntegerField(
        _("failure threshold"),
        default=app_settings.BATCH_FAILURE_THRESHOLD,
        validators=[MaxValueValidator(100000)],
        help_text=_(
            "the batch stops starting devices when failures reach this "
            "number (or percentage); 0: no threshold (a canary failure still "
            "stops the batch)"
        ),
    )
    failure_threshold_percent = models.BooleanField(
        _("failure threshold in percent"),
        default=True,
        help_text=_("the threshold is a percentage of the finished devices"),
    )
    failure_threshold_minimum = models.PositiveIntegerField(
        _("minimum finished devices"),
        default=app_settings.BATCH_FAILURE_MINIMUM,
        validators=[MaxValueValidator(100000)],
        help_text=_("a percentage threshold applies from this many finished devices"),
    )
    rollout_state = models.CharField(
        max_length=20,
        choices=RolloutState.choices,
        default=RolloutState.RUNNING,
        db_index=True,
    )
    rollout_reason = models.CharField(max_length=255, blank=True)
    current_wave = models.PositiveIntegerField(default=1)
    # failures and finished devices before the last resume after a stop:
    # the threshold counts what happens after the operator's decision
    failures_acknowledged = models.PositiveIntegerField(default=0)
    finished_acknowledged = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def clean_rollout(self):
        """Every mistake of the rollout and schedule at once."""
        errors = {}

        def check(clean):
            try:
                clean()
            except ValidationError as error:
                error.update_error_dict(errors)

        check(self.clean_schedule)
        if self.canary_percent and self.canary_size > 100:
            errors.setdefault("canary_size", []).append(
                _("A percentage is at most 100.")
            )
        if self.failure_threshold_percent and self.failure_threshold > 100:
            errors.setdefault("failure_threshold", []).append(
                _("A percentage is at most 100.")
            )
        check(self.clean_canary)
        check(self.clean_first_wave_threshold)
        if errors:
            raise ValidationError(errors)

    def clean_canary(self):
        """A tolerance that lets every canary device fail could never stop
        the batch before wave 2."""
        tolerance = self.canary_failure_tolerance or 0
        if not tolerance:
            return
        if not self.canary_size:
            raise ValidationError(
                {
                    "canary_failure_tolerance": _(
                        "A canary tolerance needs a canary wave: set the "
                        "canary wave or leave the tolerance at 0."
                    )
                }
            )
        if not self.canary_percent and tolerance >= self.canary_size:
            raise ValidationError(
                {
                    "canary_failure_tolerance": _(
                        "Tolerating %(tolerance)s failures of a canary of "
                        "%(size)s devices lets the whole canary fail: it could "
                        "never stop the batch before wave 2. Tolerate at most "
                        "%(most)s."
                    )
                    % {
                        "tolerance": tolerance,
                        "size": self.canary_size,
                        "most": self.canary_size - 1,
                    }
                }
            )

    def clean_first_wave_threshold(self):
        """Without a canary, wave 1 is the only guard before wave 2: a
        threshold that needs more finished devices (or failures) than wave 1
        holds can never stop the batch before wave 2 starts."""
        if self.canary_size or not self.wave_size or not self.failure_threshold:
            return
        if self.failure_threshold_percent:
            needed = max(self.failure_threshold_minimum or 0, 1)
            field = "failure_threshold_minimum"
            what = _("finished devices")
        else:
            needed = self.failure_threshold
            field = "failure_threshold"
            what = _("failures")
        if needed > self.wave_size:
            raise ValidationError(
                {
                    field: _(
                        "The failure threshold needs %(needed)s %(what)s but "
                        "only %(size)s devices (wave 1) finish before wave 2 "
                        "starts: it could never stop the batch before wave 2. "
                        "Lower it to at most %(size)s, use larger waves, or "
                        "start with a canary wave."
                    )
                    % {"needed": needed, "what": what, "size": self.wave_size}
                }
            )
