"""Mass upgrades: the batch page and cancelling what has not started."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from openwisp_users.multitenancy import MultitenantAdminMixin, MultitenantOrgFilter
from openwisp_utils.admin import ReadOnlyAdmin

from ..base.models import ACTIVE_STATUSES, TERMINAL_STATUSES, OperationStatus
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
    list_display = ("__str__", "organization", "status", "created", "finished_at")
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
        "upgrade_options",
        "created",
        "started_at",
        "finished_at",
    )

    cancel_url_name = "modem_upgrader_cancel_batch"

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
        }

    def has_cancel_permission(self, request, obj=None):
        opts = ModemUpgradeOperation._meta
        return request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}")

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
