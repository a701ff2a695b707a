from django.contrib import admin, messages
from django.db.models import F, Func, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from openwisp_users.multitenancy import MultitenantOrgFilter
from openwisp_utils.admin import TimeReadonlyAdminMixin

from ..compatibility import BuildStatus
from ..permissions import has_action_permission
from ..swapper import load_model
from .changelog import render_changelog
from .compliance import compliance_view, recover_modem_view
from .mass_upgrade import mass_upgrade_view
from .multitenancy import SharedObjectsAdminMixin

ModemCategory = load_model("ModemCategory")
ModemBuild = load_model("ModemBuild")
ModemFirmwareImage = load_model("ModemFirmwareImage")
DeviceModemFirmware = load_model("DeviceModemFirmware")


class ModemImageDetailsMixin:
    @admin.display(description=_("size"))
    def human_size(self, obj):
        return filesizeformat(obj.size) if obj and obj.size else "-"

    @admin.display(description="sha256")
    def checksum(self, obj):
        return format_html("<code>{}</code>", obj.sha256) if obj and obj.sha256 else "-"


@admin.register(ModemCategory)
class ModemCategoryAdmin(
    SharedObjectsAdminMixin, TimeReadonlyAdminMixin, admin.ModelAdmin
):
    list_display = ("name", "organization", "created")
    list_filter = (MultitenantOrgFilter,)
    list_select_related = ("organization",)
    search_fields = ("name",)
    ordering = ("name",)
    fields = ("name", "organization", "description", "created", "modified")


class ModemFirmwareImageInline(
    ModemImageDetailsMixin, TimeReadonlyAdminMixin, admin.StackedInline
):
    model = ModemFirmwareImage
    extra = 0
    fields = ("file", "type", "boards", "checksum", "human_size", "created")
    readonly_fields = ("checksum", "human_size")

    def has_change_permission(self, request, obj=None):
        # an uploaded image is immutable: its checksum identifies it
        return False if obj and obj.pk else super().has_change_permission(request, obj)


def running_devices(user):
    """Subquery: devices whose modem reports the build's model and version,
    in the build's organization (any, for shared builds) that ``user`` sees."""
    devices = DeviceModemFirmware.objects.filter(
        modem_model=OuterRef("modem_model"),
        modem_firmware_version=OuterRef("version"),
        device__organization_id=Coalesce(
            OuterRef("category__organization_id"), F("device__organization_id")
        ),
    )
    if not user.is_superuser:
        devices = devices.filter(device__organization__in=user.organizations_managed)
    # a router with two modems on this version counts once
    count = devices.order_by().annotate(
        count=Func(
            F("device_id"),
            function="COUNT",
            template="%(function)s(DISTINCT %(expressions)s)",
            output_field=IntegerField(),
        )
    )
    return Subquery(count.values("count"), output_field=IntegerField())


@admin.register(ModemBuild)
class ModemBuildAdmin(
    SharedObjectsAdminMixin, TimeReadonlyAdminMixin, admin.ModelAdmin
):
    organization_lookup = "category__organization"
    multitenant_shared_relations = ("category",)
    list_display = (
        "version",
        "modem_model",
        "status",
        "category",
        "organization",
        "devices_running",
        "created",
    )
    list_filter = ("status", "modem_model", "category")
    list_select_related = ("category__organization",)
    search_fields = ("version", "modem_model", "category__name")
    fields = (
        "category",
        "modem_model",
        "version",
        "status",
        "carriers",
        "changelog",
        "changelog_html",
        "devices_running",
        "created",
        "modified",
    )
    readonly_fields = ("changelog_html", "devices_running")
    inlines = [ModemFirmwareImageInline]
    actions = ["mass_upgrade", "release", "withdraw"]

    def get_queryset(self, request):
        return self.get_permitted_queryset(request).annotate(
            running_count=running_devices(request.user)
        )

    def get_permitted_queryset(self, request):
        """The builds the user may see, without the list's figures (the
        mass-upgrade page needs none: ``running_count`` counts the fleet)."""
        return super().get_queryset(request)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None:
            # a new build is a draft: released once tested
            return [field for field in fields if field != "status"]
        return fields

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<uuid:build_pk>/mass-upgrade/",
                self.admin_site.admin_view(self.mass_upgrade_view),
                name="modem_upgrader_mass_upgrade",
            ),
            path(
                "compliance/",
                self.admin_site.admin_view(self.compliance_view),
                name=f"{opts.app_label}_{opts.model_name}_compliance",
            ),
            path(
                "recover-modem/<uuid:modem_pk>/",
                self.admin_site.admin_view(self.recover_modem_view),
                name=f"{opts.app_label}_{opts.model_name}_recover_modem",
            ),
        ] + super().get_urls()

    def compliance_view(self, request):
        return compliance_view(self, request)

    def recover_modem_view(self, request, modem_pk):
        return recover_modem_view(self, request, modem_pk)

    def mass_upgrade_view(self, request, build_pk):
        return mass_upgrade_view(self, request, build_pk)

    def has_mass_upgrade_permission(self, request):
        batch_model = load_model("ModemBatchUpgradeOperation")
        return has_action_permission(request.user, "mass_upgrade", batch_model)

    @admin.action(
        description=_("Mass-upgrade device modems"), permissions=["mass_upgrade"]
    )
    def mass_upgrade(self, request, queryset):
        builds = list(queryset.values_list("pk", flat=True)[:2])
        if len(builds) != 1:
            self.message_user(
                request,
                _("Select exactly one build to mass-upgrade to."),
                messages.ERROR,
            )
            return None
        return HttpResponseRedirect(
            reverse("admin:modem_upgrader_mass_upgrade", args=[builds[0]])
        )

    @admin.action(description=_("Release the selected builds"), permissions=["change"])
    def release(self, request, queryset):
        self._set_status(request, queryset, BuildStatus.RELEASED)

    @admin.action(description=_("Withdraw the selected builds"), permissions=["change"])
    def withdraw(self, request, queryset):
        self._set_status(request, queryset, BuildStatus.WITHDRAWN)

    def _set_status(self, request, queryset, status):
        selected = queryset.count()
        if not request.user.is_superuser:
            # shared builds are seen, not changed, by organization managers
            queryset = queryset.filter(
                category__organization__in=request.user.organizations_managed
            )
        allowed_from = [
            old for old, news in BuildStatus.transitions.items() if status in news
        ]
        changed = (
            queryset.filter(status__in=allowed_from)
            .exclude(status=status)
            .update(status=status, modified=timezone.now())
        )
        label = dict(BuildStatus.choices)[status]
        self.message_user(
            request,
            _("%(count)s build(s) now %(status)s.")
            % {"count": changed, "status": label},
            messages.SUCCESS if changed else messages.WARNING,
        )
        if changed < selected:
            self.message_user(
                request,
                _(
                    "%(count)s selected build(s) left as they were (already "
                    "%(status)s, or shared builds you may not change)."
                )
                % {"count": selected - changed, "status": label},
                messages.WARNING,
            )

    @admin.display(description=_("organization"))
    def organization(self, obj):
        return obj.category.organization or _("Shared systemwide")

    @admin.display(description=_("devices running this build"))
    def devices_running(self, obj):
        return getattr(obj, "running_count", None) or 0

    @admin.display(description=_("change log"))
    def changelog_html(self, obj):
        return format_html(
            '<div class="modem-changelog">{}</div>', render_changelog(obj.changelog)
        )


@admin.register(ModemFirmwareImage)
class ModemFirmwareImageAdmin(
    SharedObjectsAdminMixin,
    ModemImageDetailsMixin,
    TimeReadonlyAdminMixin,
    admin.ModelAdmin,
):
    organization_lookup = "build__category__organization"
    # not ("build",): openwisp-users would filter builds on an organization
    # field they do not have (a server error); get_form() narrows them
    multitenant_shared_relations = ()
    list_display = ("__str__", "type", "human_size", "created")
    list_filter = ("type",)
    list_select_related = ("build__category",)
    search_fields = ("build__version", "build__modem_model")
    fields = ("build", "file", "type", "boards", "checksum", "human_size", "created")
    readonly_fields = ("checksum", "human_size")

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None:
            return tuple(fields) + ("build", "file", "type")
        return fields

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        build_field = form.base_fields.get("build")
        if build_field and not request.user.is_superuser:
            # images may only be added to builds of the user's organizations
            build_field.queryset = build_field.queryset.filter(
                category__organization__in=request.user.organizations_managed
            )
        return form
