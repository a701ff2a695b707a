from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from openwisp_users.multitenancy import MultitenantAdminMixin, MultitenantOrgFilter
from openwisp_utils.admin import ReadOnlyAdmin

from ..swapper import load_model

ModemUpgradeOperation = load_model("ModemUpgradeOperation")
ModemBatchUpgradeOperation = load_model("ModemBatchUpgradeOperation")


@admin.register(ModemUpgradeOperation)
class ModemUpgradeOperationAdmin(MultitenantAdminMixin, ReadOnlyAdmin):
    multitenant_parent = "device"
    list_display = ("device", "image", "status", "progress", "created", "finished_at")
    list_filter = ("status",)
    list_select_related = ("device", "image__build__category")
    search_fields = ("device__name",)
    ordering = ("-created",)


@admin.register(ModemBatchUpgradeOperation)
class ModemBatchUpgradeOperationAdmin(MultitenantAdminMixin, ReadOnlyAdmin):
    list_display = ("build", "organization", "status", "created", "finished_at")
    list_filter = (MultitenantOrgFilter, "status")
    list_select_related = ("build__category", "organization")
    readonly_fields = ("progress_report", "success_rate", "failed_rate", "aborted_rate")
    ordering = ("-created",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.readonly_fields += [
            "progress_report",
            "success_rate",
            "failed_rate",
            "aborted_rate",
        ]

    @admin.display(description=_("progress"))
    def progress_report(self, obj):
        return obj.progress_report
