"""The admin's "select carrier image": a POST view on the device admin
(``device/<pk>/select-carrier-image/``) used by the device page's modem tab
(any stored image) and by the compliance page's carrier-image mismatch
report ("Switch to the SIM's carrier image"). It starts the operation
through ``carrier_select.start_carrier_switch`` and says why when it
cannot; the operation runs through the engine like an upgrade.
"""

import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..carrier_select import start_carrier_switch
from ..permissions import has_action_permission
from ..swapper import load_model
from .operations import redirect_back

DeviceModemFirmware = load_model("DeviceModemFirmware")
ModemUpgradeOperation = load_model("ModemUpgradeOperation")
# the POST fields of the view
MODEM_FIELD = "carrier_modem"
IMAGE_FIELD = "carrier_image"


def may_select_carrier_image(user):
    return has_action_permission(user, "select_carrier_image", ModemUpgradeOperation)


def started_message(operation):
    opts = operation._meta
    url = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_change", args=[operation.pk]
    )
    return format_html(
        _(
            "Selecting the carrier image {name} on modem {usb_path} of {device}: "
            '<a href="{url}">follow it on its page</a>.'
        ),
        name=operation.target_carrier_image,
        usb_path=operation.usb_path or "-",
        device=operation.device,
        url=url,
    )


def select_carrier_image_view(request, device, device_page_url):
    """Starts the switch on the modem named by the POST (``carrier_modem``:
    its row's id; ``carrier_image``: a stored image's name, empty for the
    SIM's; on the device page ``carrier_image_<modem id>``), then goes back
    to ``next`` or the device page. ``device`` is one the user manages."""
    if request.method != "POST" or not may_select_carrier_image(request.user):
        raise PermissionDenied
    try:
        modem_pk = uuid.UUID(request.POST.get(MODEM_FIELD, ""))
    except ValueError:
        modem_pk = None
    modem = (
        DeviceModemFirmware.objects.filter(device=device, pk=modem_pk)
        .select_related("device")
        .first()
        if modem_pk
        else None
    )
    # the device page has one image choice per modem (named after it)
    name = request.POST.get(f"{IMAGE_FIELD}_{modem_pk}") or request.POST.get(
        IMAGE_FIELD, ""
    )
    name = name.strip() or None
    if modem is None:
        messages.error(request, _("This device has no such modem."))
    else:
        try:
            operation = start_carrier_switch(modem, name)
        except ValidationError as error:
            for message in error.messages:
                messages.error(request, message)
        else:
            messages.success(request, started_message(operation))
    return redirect_back(request, device_page_url)
