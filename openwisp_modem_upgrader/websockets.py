"""Live progress of modem upgrades over Channels websockets.

Statuses change through conditional UPDATEs (``upgrade.py``) that fire no
signals, and a chatty router or a 10,000-device batch changes rows many times
a second. So instead of pushing a message per change, each open page's
consumer reads the state it shows at most once per ``interval`` and sends
only what changed since its last message: a progress or status change, and
the new tail of the log (never the whole log again). The cost is bounded by
the number of open pages, not by the number of devices or of updates, and a
page gets at most one message per interval.
"""

import asyncio
from datetime import timedelta

import swapper
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models.functions import Length
from django.template.defaultfilters import filesizeformat
from django.utils import formats, timezone

from .base.models import (
    ACTIVE_STATUSES,
    OperationStatus,
    operation_is_cancellable,
)
from .display import local_log, stages
from .swapper import load_model

# rows changed this long before a read may commit after it: read them again
CLOCK_OVERLAP = timedelta(seconds=5)
STATUS_LABELS = dict(OperationStatus.choices)


def _user_may_view(user, organization_id):
    opts = load_model("ModemUpgradeOperation")._meta
    if not (user.is_authenticated and user.is_staff):
        return False
    if not user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
        return False
    return user.is_superuser or str(organization_id) in user.organizations_managed


def _format(value):
    return (
        formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")
        if value
        else None
    )


class ModemUpgradeConsumer(AsyncJsonWebsocketConsumer):
    """Sends the changes of the operations a page shows, every ``interval``."""

    interval = 1.0
    max_operations = 20

    async def connect(self):
        self.object_id = self.scope["url_route"]["kwargs"]["pk"]
        organization_id = await database_sync_to_async(self.get_organization_id)()
        allowed = organization_id is not None and await database_sync_to_async(
            _user_may_view
        )(self.scope["user"], organization_id)
        if not allowed:
            await self.close()
            return
        self.sent = {}
        self.since = None
        await self.accept()
        self.poller = asyncio.ensure_future(self.poll())

    async def disconnect(self, code):
        poller = getattr(self, "poller", None)
        if poller:
            poller.cancel()

    async def poll(self):
        while True:
            message = await database_sync_to_async(self.read_changes)()
            if message:
                await self.send_json(message)
            await asyncio.sleep(self.interval)

    @classmethod
    async def encode_json(cls, content):
        return DjangoJSONEncoder().encode(content)

    def operations(self):
        raise NotImplementedError

    def read_changes(self):
        """One read of what changed; ``None`` when nothing did."""
        started = timezone.now()
        operations = self.operations()
        if self.since is not None:
            operations = operations.filter(modified__gte=self.since - CLOCK_OVERLAP)
        self.since = started
        operations = operations[: self.max_operations]
        changes = [
            change for change in map(self.diff, operations) if change is not None
        ]
        message = self.extra_changes() or {}
        if changes:
            message["operations"] = changes
        return message or None

    def extra_changes(self):
        return None

    def diff(self, operation):
        state = (
            operation["status"],
            operation["progress"],
            operation["log_length"],
            operation["started_at"],
        )
        previous = self.sent.get(operation["pk"])
        if previous == state:
            return None
        self.sent[operation["pk"]] = state
        change = {
            "id": operation["pk"],
            "status": operation["status"],
            "status_label": STATUS_LABELS.get(operation["status"]),
            "progress": operation["progress"],
            "started_at": _format(operation["started_at"]),
            "finished_at": _format(operation["finished_at"]),
            "cancellable": operation_is_cancellable(
                operation["status"], operation["flash_started"]
            ),
            "stages": [
                stage["state"]
                for stage in stages(operation["progress"], operation["status"])
            ],
        }
        if "device__name" in operation:
            change["device"] = operation["device__name"]
        if "log" in operation:
            offset = previous[2] if previous else 0
            if offset > operation["log_length"]:
                offset = 0
            change.update(log_offset=offset, log=local_log(operation["log"][offset:]))
        return change


PROGRESS_FIELDS = (
    "pk",
    "status",
    "progress",
    "flash_started",
    "started_at",
    "finished_at",
    "log_length",
)


def _progress_rows(**filters):
    """Operations with what a progress display needs (``values()`` rows)."""
    return (
        load_model("ModemUpgradeOperation")
        .objects.filter(**filters)
        .annotate(log_length=Length("log"))
    )


class DeviceModemUpgradeConsumer(ModemUpgradeConsumer):
    """The operations of one device, with their logs (device page)."""

    def get_organization_id(self):
        Device = swapper.load_model("config", "Device")
        return (
            Device.objects.filter(pk=self.object_id)
            .values_list("organization_id", flat=True)
            .first()
        )

    def operations(self):
        return (
            _progress_rows(device_id=self.object_id)
            .order_by("-created")
            .values(*PROGRESS_FIELDS, "log")
        )


class BatchModemUpgradeConsumer(ModemUpgradeConsumer):
    """Counts of a mass upgrade and its operations' progress (no logs)."""

    interval = 2.0
    max_operations = 200

    def get_organization_id(self):
        self.batch = (
            load_model("ModemBatchUpgradeOperation")
            .objects.filter(pk=self.object_id)
            .first()
        )
        return self.batch.organization_id if self.batch else None

    def operations(self):
        return (
            _progress_rows(batch_id=self.object_id)
            .order_by("-modified")
            .values(*PROGRESS_FIELDS, "device__name")
        )

    def extra_changes(self):
        """The batch's counts, its rollout box and the buttons that apply
        now (for this page's user), when any of them changed."""
        from .admin.batch import batch_live_state, batch_summary

        # a fresh row: the rollout counts are cached on the instance
        batch = type(self.batch).objects.filter(pk=self.batch.pk).first()
        if batch is None:
            return None
        summary = batch_summary(batch)
        summary["bytes_sent_label"] = filesizeformat(summary["bytes_sent"])
        live = batch_live_state(batch, self.scope["user"])
        state = (batch.status, str(summary), str(live))
        if state == getattr(self, "sent_summary", None):
            return None
        self.sent_summary = state
        return {
            "batch": {
                "status": batch.status,
                "status_label": STATUS_LABELS.get(batch.status),
                "finished": batch.status not in ACTIVE_STATUSES,
                "summary": summary,
                **live,
            }
        }
