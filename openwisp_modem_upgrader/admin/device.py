"""The device page: its modems, their detection and history, and upgrades.

Both inlines are appended to openwisp-controller's ``DeviceAdmin``. Saving
the "Modem Firmware" inline starts an upgrade through ``upgrade.start_upgrade``;
nothing else writes operations from here. The tab's "Detect modems" and
"Acknowledge" buttons post (``formaction``) to the inline's own views.
"""

import uuid

import swapper
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from openwisp_controller.config.admin import DeviceAdmin

from ..compatibility import BuildStatus
from ..detection import acknowledge_unexplained_change
from ..display import local_log
from ..statuses import UNREACHABLE_STATUSES
from ..swapper import load_model
from ..upgrade import start_upgrade, target_usb_path
from .carrier import may_select_carrier_image, select_carrier_image_view
from .compliance import may_recover
from .inventory import may_acknowledge, may_detect, queue_detection_with_message
from .options import UpgradeOptionsFormMixin
from .widgets import ImageSelect

Device = swapper.load_model("config", "Device")
DeviceConnection = swapper.load_model("connection", "DeviceConnection")
DeviceModemDetection = load_model("DeviceModemDetection")
ModemHistory = load_model("ModemHistory")
DeviceModemFirmware = load_model("DeviceModemFirmware")
ModemFirmwareImage = load_model("ModemFirmwareImage")
ModemUpgradeOperation = load_model("ModemUpgradeOperation")

RECENT_OPERATIONS = 5
HISTORY_ROWS = 20
MODEM_TAB = "modems-group"


def compatible_images(device, detected_modem_model):
    """Images this device may receive: its organization's or shared ones, built
    for its modem model and validated for its router model."""
    images = ModemFirmwareImage.objects.filter(
        Q(build__category__organization_id=device.organization_id)
        | Q(build__category__organization__isnull=True)
    ).exclude(build__status=BuildStatus.WITHDRAWN)
    if detected_modem_model:
        images = images.filter(build__modem_model=detected_modem_model)
    # JSON "contains" lookups are not portable (SQLite): filter boards here
    ids = [
        image.pk
        for image in images.only("pk", "boards")
        if not image.boards or device.model in image.boards
    ]
    return (
        images.filter(pk__in=ids)
        .select_related("build__category")
        .order_by("-build__created", "type")
    )


NO_CONNECTION_MESSAGE = _(
    "No upgrade started: the router has no enabled SSH connection, so the "
    "server cannot reach it. Enable its connection in the Credentials tab."
)


def has_enabled_connection(device):
    return DeviceConnection.objects.filter(device=device, enabled=True).exists()


def unreachable_reason(detection):
    """The last detection's own words when it could not reach the router."""
    if detection is None or detection.status not in UNREACHABLE_STATUSES:
        return ""
    return detection.reason or detection.get_status_display()


def upgrade_refusal(device, modem):
    """Why no upgrade can start on this row of the device page (``None``
    when one can): the same rules the upgrade itself applies, said before
    anything is chosen."""
    if not has_enabled_connection(device):
        return NO_CONNECTION_MESSAGE
    if not modem._state.adding:
        return None
    detection = DeviceModemDetection.objects.filter(device=device).first()
    reason = unreachable_reason(detection)
    if reason:
        return _(
            "No upgrade can start yet: the server cannot reach this router, "
            "so its modem was never detected (last detection: %(reason)s). "
            "Check the router's SSH connection, then detect its modems."
        ) % {"reason": reason}
    return _(
        "No upgrade can start yet: the modem of this router has not been "
        "detected. Detect its modems first."
    )


def started_message(operation):
    """ "Upgrade started", with a link to the operation's page."""
    opts = operation._meta
    url = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_change", args=[operation.pk]
    )
    return format_html(
        _(
            'Modem upgrade started: modem {usb_path} to {image}. <a href="{url}">'
            "Follow it on its page</a> or in Recent Modem Firmware Upgrades below."
        ),
        usb_path=operation.usb_path or _("(the detected one)"),
        image=operation.image,
        url=url,
    )


class DeviceModemFirmwareForm(UpgradeOptionsFormMixin, forms.ModelForm):
    upgrade_to = forms.ModelChoiceField(
        label=_("Upgrade the modem to"),
        queryset=ModemFirmwareImage.objects.none(),
        required=False,
        widget=ImageSelect,
        help_text=_(
            "only images built for the detected modem model and validated for "
            "this router are offered; saving starts the upgrade"
        ),
    )
    # set by the inline for each request
    device = None
    request = None
    may_upgrade = False

    class Meta:
        model = DeviceModemFirmware
        fields = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refusal = None
        if self.may_upgrade:
            # offered only where it can start: else the reason, not images
            self.refusal = upgrade_refusal(self.device, self.instance)
        if not self.may_upgrade:
            del self.fields["upgrade_to"]
            return
        if self.refusal:
            # the inline's fieldset names the field: kept, hidden, inert
            field = self.fields["upgrade_to"]
            field.queryset = ModemFirmwareImage.objects.none()
            field.disabled = True
            field.widget = forms.HiddenInput()
            return
        images = compatible_images(self.device, self.instance.modem_model)
        self.fields["upgrade_to"].queryset = images
        self.add_options_field(
            images.values_list("type", flat=True).distinct(),
            schema_selector=self.add_prefix("upgrade_to"),
        )

    def has_changed(self):
        # only choosing an image is a change: options alone start nothing
        return bool(self.data.get(self.add_prefix("upgrade_to")))

    def clean(self):
        cleaned_data = super().clean()
        image = cleaned_data.get("upgrade_to")
        if not image or not self.may_upgrade:
            return cleaned_data
        options = self.clean_options_for([image.type])
        if self.errors:
            return cleaned_data
        # the same validation start_upgrade() runs, shown as form errors
        operation = ModemUpgradeOperation(
            device=self.device,
            image=image,
            upgrade_options=options,
            usb_path=self.target_usb_path(image),
        )
        try:
            operation.full_clean()
        except ValidationError as error:
            targets = {"image": "upgrade_to", "upgrade_options": "upgrade_options"}
            for field, field_errors in error.message_dict.items():
                target = targets.get(field)
                for message in field_errors:
                    self.add_error(target, message)
        self.upgrade_options = options
        return cleaned_data

    def target_usb_path(self, image):
        """This row's modem; for the blank row of an undetected device, the
        one start_upgrade() would choose."""
        if self.instance.pk:
            return self.instance.usb_path
        return target_usb_path(self.device, image.build)

    def save(self, commit=True):
        image = self.cleaned_data.get("upgrade_to")
        if image is None or not commit or not self.may_upgrade:
            return self.instance
        # the connection inlines are saved before this one: an SSH
        # connection disabled in this same save refuses the upgrade now
        if not has_enabled_connection(self.device):
            messages.error(self.request, NO_CONNECTION_MESSAGE)
            return self.instance
        try:
            operation = start_upgrade(
                self.device,
                image,
                self.upgrade_options,
                usb_path=self.target_usb_path(image),
            )
        except ValidationError as error:
            # lost a race since clean(): report it instead of a server error
            for message in error.messages:
                messages.error(self.request, message)
            return self.instance
        messages.success(self.request, started_message(operation))
        return DeviceModemFirmware.objects.get(
            device=self.device, usb_path=operation.usb_path
        )


class DeviceModemFirmwareInline(admin.StackedInline):
    model = DeviceModemFirmware
    form = DeviceModemFirmwareForm
    template = "admin/modem_upgrader/device/modem_firmware_inline.html"
    verbose_name = _("Modem Firmware")
    verbose_name_plural = verbose_name
    can_delete = False
    detected_fields = (
        "usb_path",
        "modem_manufacturer",
        "modem_model",
        "modem_revision",
        "modem_firmware_version",
        "modem_imei",
        "modem_detected_at",
        "detection_status",
        "detection_reason",
        "unexplained_change_at",
        "image",
        "installed",
        # SIM and carrier images (detection.carrier_reading)
        "sim_state",
        "sim_iccid",
        "sim_network",
        "sim_operator",
        "carrier_image",
        "carrier_selection",
        "stored_carrier_images",
    )
    readonly_fields = detected_fields

    @admin.display(description=_("stored carrier images"))
    def stored_carrier_images(self, obj):
        return ", ".join(
            f"{image['index']}: {image['name']} {image['version']}".strip()
            for image in obj.carrier_images or []
        )

    class Media:
        css = {"all": ["modem-upgrader/css/modem-upgrader.css"]}

    def _get_conditional_queryset(self, request, obj):
        return True

    def detection_urls(self):
        # prepended to DeviceAdmin's URLs (see below): after them, the
        # admin's "<path:object_id>/" catch-all would answer first
        name = f"{Device._meta.app_label}_{Device._meta.model_name}"
        return [
            path(
                "<uuid:pk>/detect-modems/",
                self.admin_site.admin_view(self.detect_view),
                name=f"{name}_detect_modems",
            ),
            path(
                "<uuid:pk>/acknowledge-modem-change/",
                self.admin_site.admin_view(self.acknowledge_view),
                name=f"{name}_acknowledge_modem_change",
            ),
            path(
                "<uuid:pk>/select-carrier-image/",
                self.admin_site.admin_view(self.select_carrier_image_view),
                name=f"{name}_select_carrier_image",
            ),
        ]

    def _managed_device(self, request, pk):
        device_admin = self.admin_site._registry[Device]
        return get_object_or_404(device_admin.get_queryset(request), pk=pk)

    def _device_page(self, device):
        opts = Device._meta
        url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change", args=[device.pk]
        )
        return HttpResponseRedirect(f"{url}#{MODEM_TAB}")

    def detect_view(self, request, pk):
        if request.method != "POST" or not may_detect(request.user):
            raise PermissionDenied
        device = self._managed_device(request, pk)
        queue_detection_with_message(request, [device])
        return self._device_page(device)

    def acknowledge_view(self, request, pk):
        """Clears the unexplained-change flag of one modem of the device."""
        if request.method != "POST" or not may_acknowledge(request.user):
            raise PermissionDenied
        device = self._managed_device(request, pk)
        try:
            modem_pk = uuid.UUID(request.POST.get("acknowledge_modem", ""))
        except ValueError:
            modem_pk = None
        if modem_pk is None or not acknowledge_unexplained_change(device, modem_pk):
            messages.error(request, _("No unexplained change to acknowledge."))
        else:
            messages.success(request, _("The modem change was acknowledged."))
        return self._device_page(device)

    def select_carrier_image_view(self, request, pk):
        if request.method != "POST" or not may_select_carrier_image(request.user):
            raise PermissionDenied
        device = self._managed_device(request, pk)
        return select_carrier_image_view(request, device, self._device_page(device).url)

    def get_max_num(self, request, obj=None, **kwargs):
        # one row per modem: no "Add another", which would read as adding
        # a modem (rows come from the detection)
        if obj is None:
            return 1
        return max(DeviceModemFirmware.objects.filter(device=obj).count(), 1)

    def get_extra(self, request, obj=None, **kwargs):
        # one row per modem; a blank one only while no modem is known
        if obj is not None and DeviceModemFirmware.objects.filter(device=obj).exists():
            return 0
        return 1

    def get_formset(self, request, obj=None, **kwargs):
        form = type(
            "DeviceModemFirmwareForm",
            (self.form,),
            {
                "device": obj,
                "request": request,
                "may_upgrade": self._may_upgrade(request, obj),
            },
        )
        kwargs["form"] = form
        kwargs["fields"] = ["upgrade_to"] if form.may_upgrade else []
        formset = super().get_formset(request, obj, **kwargs)
        # what the tab shows besides the modems (see the inline's template)
        formset.detection = None
        formset.history = []
        formset.may_detect = obj is not None and may_detect(request.user)
        formset.may_acknowledge = obj is not None and may_acknowledge(request.user)
        # "Recover" on a modem stuck in flash mode (the compliance page's action)
        formset.may_recover = obj is not None and may_recover(request.user)
        build_opts = load_model("ModemBuild")._meta
        formset.recover_url_name = (
            f"admin:{build_opts.app_label}_{build_opts.model_name}_recover_modem"
        )
        if obj is not None:
            formset.detection = DeviceModemDetection.objects.filter(device=obj).first()
            formset.history = list(
                ModemHistory.objects.filter(device=obj)
                .select_related("operation")
                .order_by("-detected_at")[:HISTORY_ROWS]
            )
            opts = Device._meta
            prefix = f"admin:{opts.app_label}_{opts.model_name}"
            formset.detect_url = reverse(f"{prefix}_detect_modems", args=[obj.pk])
            formset.acknowledge_url = reverse(
                f"{prefix}_acknowledge_modem_change", args=[obj.pk]
            )
            formset.may_select_carrier = may_select_carrier_image(request.user)
            formset.select_carrier_url = reverse(
                f"{prefix}_select_carrier_image", args=[obj.pk]
            )
        return formset

    def get_fields(self, request, obj=None):
        if self._may_upgrade(request, obj):
            return list(self.detected_fields) + ["upgrade_to"]
        return list(self.detected_fields)

    def has_add_permission(self, request, obj=None):
        return self._may_upgrade(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_upgrade(request, obj)

    def _may_upgrade(self, request, obj):
        opts = ModemUpgradeOperation._meta
        return (
            obj is not None
            and not obj.is_deactivated()
            and request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}")
        )


class RecentModemUpgradesInline(admin.StackedInline):
    model = ModemUpgradeOperation
    template = "admin/modem_upgrader/device/recent_upgrades_inline.html"
    verbose_name = _("Recent Modem Firmware Upgrades")
    verbose_name_plural = verbose_name
    fields = ("image", "status", "progress", "log", "created", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    class Media:
        js = [
            "connection/js/lib/reconnecting-websocket.min.js",
            "modem-upgrader/js/modem-upgrade-progress.js",
        ]
        css = {"all": ["modem-upgrader/css/modem-upgrader.css"]}

    def _get_conditional_queryset(self, request, obj):
        return ModemUpgradeOperation.objects.filter(device=obj).exists()

    def get_formset(self, request, obj=None, **kwargs):
        self._device = obj
        formset = super().get_formset(request, obj, **kwargs)

        class LocalLogFormSet(formset):
            # the log with its UTC times in the local zone, computed here
            # rather than by a template tag: an app that replaces this one
            # (swappable models) does not register this one's tag library
            def get_queryset(self):
                operations = super().get_queryset()
                for operation in operations:
                    operation.local_log = local_log(operation.log)
                return operations

        return LocalLogFormSet

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("image__build__category")
        device = getattr(self, "_device", None)
        if device is None:
            return qs.none()
        recent = list(
            ModemUpgradeOperation.objects.filter(device=device)
            .order_by("-created")
            .values_list("pk", flat=True)[:RECENT_OPERATIONS]
        )
        return qs.filter(pk__in=recent).order_by("-created")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


_device_admin_urls = DeviceAdmin.get_urls


def device_admin_urls(self):
    inline = DeviceModemFirmwareInline(self.model, self.admin_site)
    return inline.detection_urls() + _device_admin_urls(self)


DeviceAdmin.get_urls = device_admin_urls
DeviceAdmin.conditional_inlines += [
    DeviceModemFirmwareInline,
    RecentModemUpgradesInline,
]
