"""The modem inventory on openwisp-controller's device admin.

Device list: columns (modem model and firmware version; last detected and
behind the newest build), filters and the "Detect modems" action. The columns are
subqueries annotated on the list's queryset (``inventory.annotate_devices``),
so the list costs the same number of queries for 10 or 10,000 devices.
"""

import swapper
from django import forms
from django.contrib import admin, messages
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from openwisp_controller.config.admin import DeviceAdmin

from ..detection import queue_detection
from ..inventory import annotate_devices
from ..swapper import load_model
from .filters import (
    LastDetectedFilter,
    ModemComplianceFilter,
    ModemFirmwareVersionFilter,
    ModemModelFilter,
)

Device = swapper.load_model("config", "Device")


def may_detect(user):
    """Detection writes the detection rows: their change permission."""
    opts = load_model("DeviceModemDetection")._meta
    return user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


def may_acknowledge(user):
    opts = load_model("DeviceModemFirmware")._meta
    return user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


def queue_detection_with_message(request, devices):
    count = queue_detection(devices)
    messages.success(
        request,
        ngettext(
            "Modem detection queued for %(count)d device.",
            "Modem detection queued for %(count)d devices.",
            count,
        )
        % {"count": count},
    )
    return count


@admin.action(description=_("Detect modems"), permissions=["detect_modems"])
def detect_modems(modeladmin, request, queryset):
    queue_detection_with_message(request, queryset)


def has_detect_modems_permission(self, request):
    return may_detect(request.user)


@admin.display(description=_("modem"), ordering="inventory_modem_model")
def modem_model(obj):
    """The first modem's model, its firmware below: one column, so the
    list stays readable at common widths."""
    model = getattr(obj, "inventory_modem_model", None)
    if not model:
        return "-"
    count = getattr(obj, "inventory_modem_count", None) or 1
    if count > 1:
        model = f"{model} (+{count - 1})"
    return format_html(
        '{}<br><span class="modem-firmware">{}</span>',
        model,
        getattr(obj, "inventory_firmware_version", None) or "-",
    )


@admin.display(description=_("modem detected"), ordering="inventory_detected_at")
def modem_detected(obj):
    """The last detection's date (its time and outcome on hover), and a
    warning below where a modem is behind the newest build."""
    detected_at = getattr(obj, "inventory_detected_at", None)
    if detected_at is None:
        detected = _("never")
    else:
        status = getattr(obj, "inventory_detection_status", "")
        local = timezone.localtime(detected_at)
        detected = format_html(
            '<span class="modem-detection modem-detection-{}" title="{}: {}">'
            "{}</span>",
            status,
            formats.date_format(local, "DATETIME_FORMAT"),
            status,
            formats.date_format(local, "SHORT_DATE_FORMAT"),
        )
    return format_html("{}{}", detected, modem_behind(obj))


def modem_behind(obj):
    """A warning where a modem is behind the newest build; nothing where it
    is not (a green tick would read as "behind: good")."""
    if not getattr(obj, "inventory_behind", None):
        return ""
    return format_html(
        '<br><span class="modem-behind" style="color: #b36b00; font-weight: bold;'
        ' white-space: nowrap" title="{}">&#9888;&nbsp;{}</span>',
        _("a modem of this device is behind the newest released build"),
        _("behind"),
    )


_get_queryset = DeviceAdmin.get_queryset


def get_queryset(self, request):
    queryset = _get_queryset(self, request)
    match = getattr(request, "resolver_match", None)
    if match and match.url_name and match.url_name.endswith("changelist"):
        queryset = annotate_devices(queryset)
    return queryset


DeviceAdmin.get_queryset = get_queryset
DeviceAdmin.has_detect_modems_permission = has_detect_modems_permission
DeviceAdmin.actions.append(detect_modems)
MODEM_COLUMNS = (modem_model, modem_detected)
MODEM_FILTERS = (
    ModemModelFilter,
    ModemFirmwareVersionFilter,
    LastDetectedFilter,
    ModemComplianceFilter,
)
_get_list_display = DeviceAdmin.get_list_display
_get_list_filter = DeviceAdmin.get_list_filter


# Added when the list is shown, not to the class attributes: device admins
# built on DeviceAdmin copy its lists when they are loaded (openwisp-monitoring
# does), possibly before this module, and would lose the columns and filters
# (and a filter's link, e.g. ?modem_compliance=behind, would end on ?e=1).
def get_list_display(self, request):
    columns = list(_get_list_display(self, request))
    return columns + [column for column in MODEM_COLUMNS if column not in columns]


def get_list_filter(self, request):
    filters = list(_get_list_filter(self, request))
    return filters + [item for item in MODEM_FILTERS if item not in filters]


DeviceAdmin.get_list_display = get_list_display
DeviceAdmin.get_list_filter = get_list_filter
_media = DeviceAdmin.media


# the list's stylesheet (scoped to the device list by its selectors)
@property
def media(self):
    return _media.fget(self) + forms.Media(
        css={"all": ["modem-upgrader/css/device-list.css"]}
    )


DeviceAdmin.media = media
