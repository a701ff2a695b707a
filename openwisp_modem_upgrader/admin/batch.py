"""Mass upgrades: the batch page, cancelling what has not started and the
rollout controls (pause, resume or go-ahead, retry of the failed devices)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from openwisp_users.multitenancy import MultitenantAdminMixin, MultitenantOrgFilter
from openwisp_utils.admin import ReadOnlyAdmin

from ..base.models import ACTIVE_STATUSES, TERMINAL_STATUSES, OperationStatus
from ..base.rollout import RolloutState
from ..batch import retry_failed
from ..exceptions import UpgradeNotAllowed
from ..inventory import batch_remediations
from ..permissions import has_action_permission
from ..rollout import pause_batch, resume_batch
from ..rollout_display import (
    ROLLOUT_FIELDS,
    DisplayState,
    display_state,
    rollout_counts,
)
from ..statuses import FAILED_STATUSES, WAITING_STATUSES
from ..swapper import load_model
from ..upgrade import cancel_batch
from .operations import LiveProgressAdminMixin, redirect_back

ModemBatchUpgradeOperation = load_model("ModemBatchUpgradeOperation")
ModemUpgradeOperation = load_model("ModemUpgradeOperation")

OPERATIONS_PER_PAGE = 50


def batch_summary(batch):
    """Counts, rates and overall progress, from the model's aggregates."""
    counts = batch.status_counts()
    rates = batch.rates()
    total = counts["total"]
    done = sum(counts[status] for status in TERMINAL_STATUSES)
    return {
        "total": total,
        "done": done,
        "bytes_sent": batch.data_sent(),
        "progress": int(done * 100 / total) if total else 0,
        "statuses": [
            {
                "value": status.value,
                "label": status.label,
                "count": counts[status],
                "rate": rates.get(status),
            }
            for status in OperationStatus
        ],
    }


def rollout_summary(batch):
    """The rollout box of the batch page: state, reason, wave and counts."""
    state = display_state(batch)
    return {
        "state": state.value,
        "label": str(capfirst(state.label)),
        "reason": batch.rollout_reason or start_hint(batch),
        "current_wave": batch.current_wave,
        **rollout_counts(batch),
    }


def batch_controls(batch, user):
    """Which buttons of the batch page apply now, for ``user``: rendered
    with the page and sent again by its websocket when they change.

    ``show_*``: the button is on the page (the user may use it and the
    batch may still need it); ``can_*``: it applies now (else hidden).
    """
    active = batch.status in ACTIVE_STATUSES
    # the rules the actions themselves apply (permissions.py): a button is
    # shown exactly to those its action will not refuse
    model = type(batch)
    may_change = has_action_permission(user, "pause", model)
    may_add = has_action_permission(user, "retry_failed", model)
    resume_labels = {
        RolloutState.PAUSED: _("Resume"),
        RolloutState.AWAITING: _("Give the go-ahead"),
        RolloutState.STOPPED: _("Resume after the stop"),
    }
    resume_label = resume_labels.get(batch.rollout_state) if active else None
    failed = batch.operations.filter(status__in=FAILED_STATUSES).exists()
    return {
        "show_rollout_buttons": active and may_change,
        "can_pause": active
        and may_change
        and batch.rollout_state != RolloutState.PAUSED,
        "resume_label": str(resume_label) if resume_label and may_change else None,
        "show_retry": may_add,
        "can_retry_failed": failed and may_add,
        "can_cancel": active and has_action_permission(user, "cancel", model),
    }


def batch_live_state(batch, user):
    """What the batch page shows of the rollout and its controls."""
    return {"rollout": rollout_summary(batch), **batch_controls(batch, user)}


def _when(moment):
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def start_hint(batch, now=None):
    """When a running batch that starts nothing now will start devices:
    the scheduled time or the window's next opening (local time)."""
    now = now or timezone.now()
    state = display_state(batch, now)
    if state == DisplayState.SCHEDULED:
        return _("devices start at %(when)s") % {"when": _when(batch.scheduled_at)}
    if state == DisplayState.OUTSIDE_WINDOW:
        return _("the window opens next at %(when)s") % {
            "when": _when(batch.next_window_opening(now))
        }
    return ""


def resume_message(before, batch):
    """What a resume did, said as it is: a go-ahead opens the next wave; a
    resume may start nothing yet (the wave finished and waits for the
    go-ahead, or the window is closed)."""
    if before == RolloutState.AWAITING:
        message = _("Go-ahead given: wave %(wave)s starts.") % {
            "wave": batch.current_wave
        }
    elif before == RolloutState.STOPPED:
        message = _(
            "The mass upgrade is resumed after its stop: the failures so far "
            "are acknowledged, and new ones count from now."
        )
    else:
        message = _("The mass upgrade is resumed.")
    operations = batch.operations.filter(wave__lte=batch.current_wave)
    startable = operations.filter(
        status__in=WAITING_STATUSES, dispatched_at__isnull=True
    ).exists()
    later = batch.operations.filter(wave__gt=batch.current_wave).exists()
    hint = start_hint(batch)
    if hint:
        return f"{message} {capfirst(hint)}."
    if not startable and later:
        next_step = (
            _("give the go-ahead to start the next one")
            if batch.confirm_waves
            else _("the next one starts")
        )
        return f"{message} " + str(
            _("Wave %(wave)s has finished: %(next)s.")
            % {"wave": batch.current_wave, "next": next_step}
        )
    if not startable:
        return f"{message} " + str(_("No device is waiting to start."))
    return f"{message} " + str(
        _("Its waiting devices start as the concurrency limit allows.")
    )


@admin.register(ModemBatchUpgradeOperation)
class ModemBatchUpgradeOperationAdmin(
    LiveProgressAdminMixin, MultitenantAdminMixin, ReadOnlyAdmin
):
    list_display = (
        "__str__",
        "organization",
        "status",
        "rollout",
        "created",
        "finished_at",
    )
    list_filter = (MultitenantOrgFilter, "status")
    list_select_related = ("build__category", "organization")
    ordering = ("-created",)
    change_form_template = "admin/modem_upgrader/batch_change_form.html"
    # the status is shown, live, in the progress box above these
    fields = (
        "build",
        "retry_of",
        "organization",
        "group",
        "location",
        "from_version",
        "modems",
        "upgrade_options",
        *ROLLOUT_FIELDS,
        "created",
        "started_at",
        "finished_at",
    )

    cancel_url_name = "modem_upgrader_cancel_batch"

    @admin.display(description=_("rollout"))
    def rollout(self, obj):
        return display_state(obj).label

    def get_urls(self):
        opts = self.opts
        urls = [
            path(
                f"<uuid:pk>/{name}/",
                self.admin_site.admin_view(require_POST(view)),
                name=f"{opts.app_label}_{opts.model_name}_{name.replace('-', '_')}",
            )
            for name, view in (
                ("pause", self.pause_view),
                ("resume", self.resume_view),
                ("retry-failed", self.retry_failed_view),
            )
        ]
        return urls + super().get_urls()

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("build__category", "organization")
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if batch is not None:
            extra_context.update(self.operations_context(request, batch))
        return super().change_view(request, object_id, extra_context=extra_context)

    def operations_context(self, request, batch):
        status = request.GET.get("status", "")
        operations = (
            ModemUpgradeOperation.objects.filter(batch=batch)
            .select_related("device")
            .only(
                "pk",
                "status",
                "progress",
                "flash_started",
                "started_at",
                "finished_at",
                "device__name",
                "device__id",
            )
            .order_by("device__name")
        )
        if status in OperationStatus.values:
            operations = operations.filter(status=status)
        page = Paginator(operations, OPERATIONS_PER_PAGE).get_page(request.GET.get("p"))
        return {
            "summary": batch_summary(batch),
            "remediations": batch_remediations(batch),
            "page": page,
            "status_filter": status,
            "status_choices": OperationStatus.choices,
            "operation_opts": ModemUpgradeOperation._meta,
            **self.rollout_context(request, batch),
        }

    def rollout_context(self, request, batch):
        """The rollout's state and the controls the user may use now."""
        return batch_live_state(batch, request.user)

    def has_rollout_permission(self, request, obj=None):
        # pause and resume share their rule
        return has_action_permission(request.user, "pause", self.model)

    def has_retry_permission(self, request, obj=None):
        return has_action_permission(request.user, "retry_failed", self.model)

    def _change_url(self, pk):
        opts = self.opts
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])

    def _rollout_action(self, request, pk, action, success_message):
        """``success_message``: a text, or a function of the batch's state
        before the action and the batch after it."""
        # the multitenant queryset hides other organizations' batches (404)
        batch = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_rollout_permission(request, batch):
            raise PermissionDenied
        before = batch.rollout_state
        try:
            action(batch)
        except UpgradeNotAllowed as error:
            messages.error(request, error)
        else:
            if callable(success_message):
                success_message = success_message(before, batch)
            messages.success(request, success_message)
        return redirect_back(request, self._change_url(pk))

    def pause_view(self, request, pk):
        return self._rollout_action(
            request,
            pk,
            pause_batch,
            _(
                "The mass upgrade is paused: no more devices start; those "
                "upgrading now go on."
            ),
        )

    def resume_view(self, request, pk):
        return self._rollout_action(request, pk, resume_batch, resume_message)

    def retry_failed_view(self, request, pk):
        batch = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_retry_permission(request, batch):
            raise PermissionDenied
        try:
            retry = retry_failed(batch)
        except (UpgradeNotAllowed, ValidationError) as error:
            for message in getattr(error, "messages", [str(error)]):
                messages.error(request, message)
            return redirect_back(request, self._change_url(pk))
        count = len(retry.device_ids)
        messages.success(
            request,
            ngettext(
                "A new mass upgrade retries the failed device.",
                "A new mass upgrade retries the %(count)s failed devices.",
                count,
            )
            % {"count": count},
        )
        return redirect_back(request, self._change_url(retry.pk))

    def has_cancel_permission(self, request, obj=None):
        return has_action_permission(request.user, "cancel", self.model)

    def cancel_view(self, request, pk):
        batch = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_cancel_permission(request, batch):
            raise PermissionDenied
        cancelled, flashing = cancel_batch(batch)
        cancelled, refused = len(cancelled), len(flashing)
        messages.success(
            request,
            ngettext(
                "%(count)s modem upgrade cancelled.",
                "%(count)s modem upgrades cancelled.",
                cancelled,
            )
            % {"count": cancelled},
        )
        if refused:
            messages.warning(
                request,
                ngettext(
                    "%(count)s modem is already being flashed or finished: "
                    "it was left to complete.",
                    "%(count)s modems are already being flashed or finished: "
                    "they were left to complete.",
                    refused,
                )
                % {"count": refused},
            )
        opts = self.opts
        return redirect_back(
            request,
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]),
        )
