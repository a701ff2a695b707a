"""Download ahead, flash in the window (the ``stage_ahead`` upgrade option).

An upgrade that stages ahead is queued outside its maintenance window too:
that attempt runs the upgrader's transfer step (whichever it is) and
verifies the image's checksum on the router, then the operation waits as
``staged`` (``upgrade.mark_staged``). In the window the scheduler queues it
like any waiting upgrade (start times spread), and the flash's transfer
finds the image on the router and sends nothing. The image is removed from
the router when the upgrade is cancelled, superseded or its staging
expires (``STAGED_IMAGE_EXPIRY``): one more follow-up of the finished
operation (``engine._clean_up``).

The scheduler decides at ``now`` and the engine decides again from the
same instant (the dispatch token), so an injected clock drives both.
"""

from datetime import timedelta

from django.db.models import Q

from . import settings as app_settings
from .statuses import ACTIVE_STATUSES, OperationStatus, RolloutState, waiting
from .swapper import load_model
from .upgrade import finish_operation


def stages_ahead(operation):
    return (operation.upgrade_options or {}).get("stage_ahead") is True


def schedule_of(operation):
    """What holds the window: the batch of a device of a mass upgrade."""
    return operation.batch if operation.batch_id else operation


def stages_now(operation, now):
    """Whether an attempt at ``now`` stages instead of flashing: the option
    is on, nothing was staged yet, and the window is closed."""
    return (
        stages_ahead(operation)
        and operation.staged_at is None
        and not schedule_of(operation).may_start(now)
    )


def staged_until(now):
    return now + timedelta(seconds=app_settings.STAGED_IMAGE_EXPIRY)


def stageable(now):
    """Operations that may stage their image now, window aside (the caller
    checks it, ``stages_now``): waiting, the option on, nothing staged yet;
    a device of a mass upgrade once its rollout runs."""
    Operation = load_model("ModemUpgradeOperation")
    candidates = waiting(
        Operation.objects.filter(
            status=OperationStatus.IDLE,
            staged_at__isnull=True,
            upgrade_options__stage_ahead=True,
        ),
        now,
    )
    return candidates.filter(
        Q(batch__isnull=True)
        | Q(
            batch__status__in=ACTIVE_STATUSES,
            batch__started_at__isnull=False,
            batch__rollout_state=RolloutState.RUNNING,
        )
    )


def expire_staged(now):
    """Staged upgrades not flashed before their image's expiry: failed,
    and the image removed from the router; how many."""
    Operation = load_model("ModemUpgradeOperation")
    expired = Operation.objects.filter(
        status=OperationStatus.STAGED,
        dispatched_at__isnull=True,
        staged_until__lt=now,
    )
    count = 0
    for pk, until in expired.values_list("pk", "staged_until"):
        count += finish_operation(
            pk,
            OperationStatus.FAILED,
            f"the staged image expired at {until:%Y-%m-%d %H:%M} UTC before the "
            "flash could start in the window: removed from the router",
            clean_up=True,
        )
    return count
