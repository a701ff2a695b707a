"""Firmware policies in the admin: the policy's build, scope and rollout
options; its rollout (the mass upgrade it enrolls into) and last pass;
actions to pause and resume."""

from django.contrib import admin, messages
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from openwisp_users.multitenancy import MultitenantAdminMixin, MultitenantOrgFilter
from openwisp_utils.admin import TimeReadonlyAdminMixin

from ..policy import POLICY_ROLLOUT_FIELDS, pause_policy, resume_policy
from ..swapper import load_model

ModemFirmwarePolicy = load_model("ModemFirmwarePolicy")
ModemBuild = load_model("ModemBuild")


@admin.register(ModemFirmwarePolicy)
class ModemFirmwarePolicyAdmin(
    MultitenantAdminMixin, TimeReadonlyAdminMixin, admin.ModelAdmin
):
    list_display = (
        "name",
        "build",
        "carrier",
        "paused",
        "organization",
        "rollout_link",
        "last_pass_at",
        "last_enrolled",
    )
    list_filter = (MultitenantOrgFilter, "paused")
    search_fields = ("name",)
    list_select_related = ("build__category", "organization", "batch")
    multitenant_shared_relations = ("group", "location")
    readonly_fields = (
        "rollout_link",
        "last_pass_at",
        "last_enrolled",
        "last_pass_note",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "organization",
                    "name",
                    "build",
                    "group",
                    "location",
                    "carrier",
                    "paused",
                    "upgrade_options",
                )
            },
        ),
        (
            _("Rollout"),
            {"fields": POLICY_ROLLOUT_FIELDS},
        ),
        (
            _("Last pass"),
            {
                "fields": (
                    "rollout_link",
                    "last_pass_at",
                    "last_enrolled",
                    "last_pass_note",
                )
            },
        ),
    )
    actions = ["pause", "resume"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # a build's organization is its category's (or shared)
        if db_field.name == "build" and not request.user.is_superuser:
            kwargs["queryset"] = ModemBuild.objects.filter(
                Q(category__organization__in=request.user.organizations_managed)
                | Q(category__organization__isnull=True)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("rollout"))
    def rollout_link(self, obj):
        if not obj.batch_id:
            return "-"
        opts = obj.batch._meta
        url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.batch_id]
        )
        return format_html('<a href="{}">{}</a>', url, obj.batch)

    def save_model(self, request, obj, form, change):
        resumed = change and "paused" in form.changed_data and not obj.paused
        super().save_model(request, obj, form, change)
        if change and "paused" in form.changed_data:
            (resume_policy if resumed else pause_policy)(obj)

    @admin.action(description=_("Pause the selected policies"), permissions=["change"])
    def pause(self, request, queryset):
        for policy in queryset:
            pause_policy(policy)
        messages.success(request, _("Paused: no enrollment, no device starts."))

    @admin.action(description=_("Resume the selected policies"), permissions=["change"])
    def resume(self, request, queryset):
        for policy in queryset:
            resume_policy(policy)
        messages.success(request, _("Resumed: the next pass enrolls again."))
