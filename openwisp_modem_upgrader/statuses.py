"""Every status and status group of the package, defined once.

A leaf: it imports nothing of the package, so models, services, the job
system and the faces all take their constants from here (``base/models.py``
re-exports them for the paths third parties and migrations already use).
"""

from django.db import models
from django.db.models import Count, Q, Sum
from django.utils.translation import gettext_lazy as _


class TransferMode(models.TextChoices):
    """How an upgrade's image reaches the router (the ``transfer_mode``
    upgrade option)."""

    PUSH = "push", _("push: the server streams the image over SSH")
    PULL = "pull", _("pull: the router downloads the image itself")


class OperationStatus(models.TextChoices):
    """The status of one modem upgrade, and of a mass upgrade as a whole."""

    IDLE = "idle", _("idle")
    IN_PROGRESS = "in-progress", _("in progress")
    SUCCESS = "success", _("success")
    FAILED = "failed", _("failed")
    ABORTED = "aborted", _("aborted")
    CANCELLED = "cancelled", _("cancelled")
    # the new firmware was flashed and verified, the cellular service did
    # not come back (health verification, health.py): a failure for
    # rollouts and notifications, distinct from a failed flash
    NO_SERVICE = "no-service", _("flashed, service not restored")
    # the image is on the router, its checksum verified there, and the
    # flash waits for the maintenance window (staging.py)
    STAGED = "staged", _("staged: image on the router, waiting for the window")


# not started, or started and put back: what the scheduler may queue
WAITING_STATUSES = (OperationStatus.IDLE, OperationStatus.STAGED)
ACTIVE_STATUSES = WAITING_STATUSES + (OperationStatus.IN_PROGRESS,)
TERMINAL_STATUSES = (
    OperationStatus.SUCCESS,
    OperationStatus.FAILED,
    OperationStatus.ABORTED,
    OperationStatus.CANCELLED,
    OperationStatus.NO_SERVICE,
)
# what a rollout's stop condition counts: cancelled devices are neither
FAILED_STATUSES = (
    OperationStatus.FAILED,
    OperationStatus.ABORTED,
    OperationStatus.NO_SERVICE,
)
FINISHED_STATUSES = FAILED_STATUSES + (OperationStatus.SUCCESS,)
# ended without success, cancelled included: a router reporting one of these
# gets its failure recorded (the device report)
UNSUCCESSFUL_STATUSES = FAILED_STATUSES + (OperationStatus.CANCELLED,)
# the router's routine reports, checked without DRF (the device report fast path)
ROUTINE_REPORT_STATUSES = (OperationStatus.IN_PROGRESS, OperationStatus.SUCCESS)


class ModemSelection(models.TextChoices):
    """Which modems of a router a mass upgrade flashes."""

    FIRST = "first", _("the first matching modem")
    EVERY = "every", _("every matching modem, one after the other")


class DetectionStatus(models.TextChoices):
    """Outcome of reading a device's modems (per device and per modem)."""

    OK = "ok", _("ok")
    UNREACHABLE = "unreachable", _("router unreachable")
    TIMEOUT = "timeout", _("timed out")
    NO_MODEM = "no_modem", _("no modem")
    FLASHING = "flashing", _("modem in flashing mode")
    UNKNOWN_VENDOR = "unknown_vendor", _("no upgrader for this modem")
    NOT_IDENTIFIED = "not_identified", _("modem does not answer")
    MISSING = "missing", _("modem not seen at the last detection")
    GARBAGE = "garbage", _("unreadable answer")
    ERROR = "error", _("error")


# the router could not be read (as opposed to a modem that answered badly)
UNREACHABLE_STATUSES = (DetectionStatus.UNREACHABLE, DetectionStatus.TIMEOUT)


class ModemChangeSource(models.TextChoices):
    DETECTION = "detection", _("detection")
    UPGRADE = "upgrade", _("upgrade")
    DEVICE_REPORT = "device_report", _("device report")


class RolloutState(models.TextChoices):
    RUNNING = "running", _("running")
    PAUSED = "paused", _("paused by an operator")
    AWAITING = "awaiting-go-ahead", _("waiting for the go-ahead")
    STOPPED = "stopped", _("stopped: too many failures")


def operation_is_cancellable(status, flash_started):
    return status in ACTIVE_STATUSES and not flash_started


def in_flight(operations):
    """Queued for a worker or running: what the concurrency limits count."""
    return operations.filter(
        Q(status=OperationStatus.IN_PROGRESS)
        | Q(status__in=WAITING_STATUSES, dispatched_at__isnull=False)
    )


def waiting(operations, now):
    """Not queued yet, no retry backoff pending, and not waiting for the
    upgrade of another modem of the router (``runs_after``)."""
    return operations.filter(
        status__in=WAITING_STATUSES, dispatched_at__isnull=True, runs_after=None
    ).filter(Q(not_before__isnull=True) | Q(not_before__lte=now))


def count_name(status):
    """The annotation holding the number of operations in ``status``."""
    return f"count_{status.replace('-', '_')}"


def status_count_annotations(relation="operations"):
    """Operations per status (``count_total``, ``count_<status>``) and the
    bytes they sent (``bytes_sent_total``), as annotations of a queryset
    whose rows reach their operations through ``relation``; with
    ``relation=None``, as an aggregate of a queryset of operations."""
    prefix = f"{relation}__" if relation else ""
    counted = relation or "pk"
    annotations = {
        "count_total": Count(counted),
        "bytes_sent_total": Sum(f"{prefix}bytes_sent"),
    }
    for status in OperationStatus.values:
        annotations[count_name(status)] = Count(
            counted, filter=Q(**{f"{prefix}status": status})
        )
    return annotations


def read_status_counts(values):
    """``{"total": n, <status>: n...}`` from the values of
    ``status_count_annotations`` (a dict, or a row annotated with them)."""
    get = values.get if isinstance(values, dict) else values.__dict__.get
    counts = {"total": get("count_total")}
    for status in OperationStatus.values:
        counts[status] = get(count_name(status))
    return counts
