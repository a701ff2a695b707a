from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from openwisp_users.multitenancy import MultitenantOrgFilter
from openwisp_utils.admin import TimeReadonlyAdminMixin

from ..swapper import load_model
from .multitenancy import SharedObjectsAdminMixin

ModemCategory = load_model("ModemCategory")
ModemBuild = load_model("ModemBuild")
ModemFirmwareImage = load_model("ModemFirmwareImage")


class ModemImageDetailsMixin:
    @admin.display(description=_("size"))
    def human_size(self, obj):
        from django.template.defaultfilters import filesizeformat

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


@admin.register(ModemBuild)
class ModemBuildAdmin(
    SharedObjectsAdminMixin, TimeReadonlyAdminMixin, admin.ModelAdmin
):
    organization_lookup = "category__organization"
    multitenant_shared_relations = ("category",)
    list_display = ("version", "modem_model", "category", "organization", "created")
    list_filter = ("modem_model", "category")
    list_select_related = ("category__organization",)
    search_fields = ("version", "modem_model", "category__name")
    fields = ("category", "modem_model", "version", "changelog", "created", "modified")
    inlines = [ModemFirmwareImageInline]

    @admin.display(description=_("organization"))
    def organization(self, obj):
        return obj.category.organization or _("Shared systemwide")


@admin.register(ModemFirmwareImage)
class ModemFirmwareImageAdmin(
    SharedObjectsAdminMixin,
    ModemImageDetailsMixin,
    TimeReadonlyAdminMixin,
    admin.ModelAdmin,
):
    organization_lookup = "build__category__organization"
    multitenant_shared_relations = ("build",)
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
