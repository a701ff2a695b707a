"""Mass upgrades: the batch page, cancelling what has not started and the
rollout controls (pause, resume or go-ahead, retry of the failed devices)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from openwisp_users.multitenancy import MultitenantAdminMixin, MultitenantOrgFilter
from openwisp_utils.admin import ReadOnlyAdmin

from ..base.models import ACTIVE_STATUSES, TERMINAL_STATUSES, OperationStatus
from ..base.rollout import RolloutState
from ..batch import retry_failed
from ..exceptions import UpgradeNotAllowed
from ..permissions import has_action_permission
from ..rollout import FAILED_STATUSES, pause_batch, resume_batch
from ..rollout_display import ROLLOUT_FIELDS, display_state, rollout_counts
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
            "page": page,
            "status_filter": status,
            "status_choices": OperationStatus.choices,
            "can_cancel": batch.status in ACTIVE_STATUSES
            and self.has_cancel_permission(request),
            "operation_opts": ModemUpgradeOperation._meta,
            **self.rollout_context(request, batch),
        }

    def rollout_context(self, request, batch):
        """The rollout's state and the controls the user may use now."""
        state = display_state(batch)
        counts = rollout_counts(batch)
        active = batch.status in ACTIVE_STATUSES
        may_change = self.has_rollout_permission(request)
        resume_labels = {
            RolloutState.PAUSED: _("Resume"),
            RolloutState.AWAITING: _("Give the go-ahead"),
            RolloutState.STOPPED: _("Resume after the stop"),
        }
        failed = batch.operations.filter(status__in=FAILED_STATUSES).exists()
        return {
            "rollout": {
                "state": state.value,
                "label": state.label,
                "reason": batch.rollout_reason,
                "current_wave": batch.current_wave,
                **counts,
            },
            "can_pause": active
            and may_change
            and batch.rollout_state != RolloutState.PAUSED,
            "resume_label": (
                resume_labels.get(batch.rollout_state)
                if active and may_change
                else None
            ),
            "can_retry_failed": failed and self.has_retry_permission(request),
        }

    def has_rollout_permission(self, request, obj=None):
        # pause and resume share their rule
        return has_action_permission(request.user, "pause", self.model)

    def has_retry_permission(self, request, obj=None):
        return has_action_permission(request.user, "retry_failed", self.model)

    def _change_url(self, pk):
        opts = self.opts
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])

    def _rollout_action(self, request, pk, action, success_message):
        # the multitenant queryset hides other organizations' batches (404)
        batch = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_rollout_permission(request, batch):
            raise PermissionDenied
        try:
            action(batch)
        except UpgradeNotAllowed as error:
            messages.error(request, error)
        else:
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
        return self._rollout_action(
            request, pk, resume_batch, _("The mass upgrade starts devices again.")
        )

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
        messages.success(
            request,
            _("A new mass upgrade retries the %(count)s failed devices.")
            % {"count": len(retry.device_ids)},
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
            _("%(count)s modem upgrades cancelled.") % {"count": cancelled},
        )
        if refused:
            messages.warning(
                request,
                _(
                    "%(count)s modems are already being flashed or finished: "
                    "they were left to complete."
                )
                % {"count": refused},
            )
        opts = self.opts
        return redirect_back(
            request,
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]),
        )
