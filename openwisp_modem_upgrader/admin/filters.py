"""Device list filters by what the modems report."""

from django.contrib import admin
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy as _

from ..swapper import load_model


class DeviceModemFieldFilter(admin.SimpleListFilter):
    field = None

    def lookups(self, request, model_admin):
        qs = load_model("DeviceModemFirmware").objects.exclude(**{self.field: ""})
        if not request.user.is_superuser:
            qs = qs.filter(device__organization__in=request.user.organizations_managed)
        values = qs.order_by(self.field).values_list(self.field, flat=True).distinct()
        return [(value, value) for value in values]

    def queryset(self, request, queryset):
        if self.value():
            modems = load_model("DeviceModemFirmware").objects.filter(
                device_id=OuterRef("pk"), **{self.field: self.value()}
            )
            return queryset.filter(Exists(modems))
        return queryset


class ModemModelFilter(DeviceModemFieldFilter):
    title = _("modem model")
    parameter_name = "modem_model"
    field = "modem_model"


class ModemFirmwareVersionFilter(DeviceModemFieldFilter):
    title = _("modem firmware version")
    parameter_name = "modem_firmware_version"
    field = "modem_firmware_version"
