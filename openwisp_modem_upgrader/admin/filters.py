"""Device list filters by what the modems report."""

from datetime import timedelta

from django.contrib import admin
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..inventory import ComplianceState, compliance_state
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


class LastDetectedFilter(admin.SimpleListFilter):
    """By the last detection attempt of the device."""

    title = _("modem last detected")
    parameter_name = "modem_detected"
    periods = {"1d": 1, "7d": 7}

    def lookups(self, request, model_admin):
        return [
            ("1d", _("within a day")),
            ("7d", _("within a week")),
            ("older", _("more than a week ago")),
            ("never", _("never")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "never":
            return queryset.filter(modem_detection__isnull=True)
        if value == "older":
            limit = timezone.now() - timedelta(days=7)
            return queryset.filter(modem_detection__attempted_at__lt=limit)
        if value in self.periods:
            limit = timezone.now() - timedelta(days=self.periods[value])
            return queryset.filter(modem_detection__attempted_at__gte=limit)
        return queryset


class ModemComplianceFilter(admin.SimpleListFilter):
    """By ``inventory.ComplianceState``; the dashboard chart links here."""

    title = _("modem firmware compliance")
    parameter_name = "modem_compliance"

    def lookups(self, request, model_admin):
        return list(ComplianceState.labels.items())

    def queryset(self, request, queryset):
        if self.value() in ComplianceState.labels:
            return queryset.alias(modem_compliance=compliance_state()).filter(
                modem_compliance=self.value()
            )
        return queryset
