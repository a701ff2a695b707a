"""Upgrade operations: the list, the detail page and cancelling one."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html_join, mark_safe
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from openwisp_users.multitenancy import MultitenantAdminMixin
from openwisp_utils.admin import ReadOnlyAdmin

from ..display import local_log, stages
from ..exceptions import UpgradeNotAllowed
from ..health import summary as health_summary
from ..permissions import has_action_permission
from ..swapper import load_model
from ..upgrade import cancel_upgrade

ModemUpgradeOperation = load_model("ModemUpgradeOperation")


def redirect_back(request, default):
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target)


class LiveProgressAdminMixin:
    """Pages with live progress (websockets) and a POST-only cancel view."""

    cancel_url_name = None

    class Media:
        js = [
            "connection/js/lib/reconnecting-websocket.min.js",
            "modem-upgrader/js/modem-upgrade-progress.js",
        ]
        css = {"all": ["modem-upgrader/css/modem-upgrader.css"]}

    def get_urls(self):
        return [
            path(
                "<uuid:pk>/cancel/",
                self.admin_site.admin_view(require_POST(self.cancel_view)),
                name=self.cancel_url_name,
            )
        ] + super().get_urls()


@admin.register(ModemUpgradeOperation)
class ModemUpgradeOperationAdmin(
    LiveProgressAdminMixin, MultitenantAdminMixin, ReadOnlyAdmin
):
    multitenant_parent = "device"
    list_display = (
        "device",
        "image",
        "status",
        "progress",
        "data_sent",
        "created",
        "finished_at",
    )
    list_filter = ("status",)
    list_select_related = ("device", "image__build__category")
    search_fields = ("device__name",)
    ordering = ("-created",)
    change_form_template = "admin/modem_upgrader/operation_change_form.html"

    cancel_url_name = "modem_upgrader_cancel_operation"
    # what an operator reads first; the engine's bookkeeping goes to a
    # collapsed "Diagnostics" section; the status and the log are in the
    # live progress box (a static copy here would go stale)
    summary_fields = (
        "device",
        "image",
        # a "select carrier image" operation: the stored image it activates
        "target_carrier_image",
        "batch",
        "usb_path",
        "service_health",
        "remediation_of",
        "upgrade_options",
        "data_sent",
        "attempts",
        "wave",
        "created",
        # download ahead, flash in window (empty unless staged)
        "staged_at",
        "staged_until",
        "started_at",
        "finished_at",
    )

    @admin.display(description=_("data sent"), ordering="bytes_sent")
    def data_sent(self, obj):
        return filesizeformat(obj.bytes_sent)

    @admin.display(description=_("service health"))
    def service_health(self, obj):
        """The pre-flight baseline, the remediation and the post-flash
        readings, one line each (health.py)."""
        health = obj.health or {}
        lines = []
        for key, title in (
            ("baseline", _("before the flash")),
            ("remediation", _("after the remediation")),
            ("after", _("after the flash")),
        ):
            reading = health.get(key)
            if key == "remediation" and reading:
                reading = reading.get("reading")
            if reading:
                lines.append((title, health_summary(reading)))
        if not lines:
            return "-"
        return format_html_join(mark_safe("<br>"), "<strong>{}</strong>: {}", lines)

    def get_readonly_fields(self, request, obj=None):
        return [
            *super().get_readonly_fields(request, obj),
            "data_sent",
            "service_health",
        ]

    def get_fieldsets(self, request, obj=None):
        shown = [name for name in self.summary_fields]
        diagnostics = [
            name
            for name in super().get_readonly_fields(request, obj)
            if name not in shown and name not in ("log", "id")
        ]
        return [
            (None, {"fields": shown}),
            (
                _("Diagnostics"),
                {"classes": ("collapse", "modem-diagnostics"), "fields": diagnostics},
            ),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        operation = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if operation is not None:
            # the upgrade's stages (transfer, flash...) are not a carrier
            # image switch's: its log tells its steps
            extra_context["stages"] = (
                []
                if operation.target_carrier_image
                else stages(operation.progress, operation.status)
            )
            extra_context["local_log"] = local_log(operation.log)
        return super().change_view(request, object_id, extra_context=extra_context)

    def has_cancel_permission(self, request, obj=None):
        return has_action_permission(request.user, "cancel", self.model)

    def cancel_view(self, request, pk):
        # the multitenant queryset hides other organizations' operations (404)
        operation = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_cancel_permission(request, operation):
            raise PermissionDenied
        try:
            cancel_upgrade(operation)
        except UpgradeNotAllowed as error:
            messages.error(request, error)
        else:
            messages.success(
                request,
                _("The modem upgrade of %(device)s was cancelled.")
                % {"device": operation.device},
            )
        default = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[operation.pk],
        )
        return redirect_back(request, default)
