"""Starting a "select carrier image" operation: one of the modem's stored
carrier images made active, nothing transferred (the worker's part is in
``carrier_switch.py``).

Every refusal is decided here, before an operation exists, from the
modem's last reading: a modem no upgrader declares able to select carrier
images (another vendor), a modem that lists no stored images, an image it
does not store, the image already active, another operation of the device.
The admin and the REST API call ``start_carrier_switch`` only.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from . import publish
from . import settings as app_settings
from .carriers import carrier_switch_refusal, sim_carrier_image
from .swapper import load_model
from .upgrade import insert_operations
from .upgraders import get_upgrader_class


def selects_carrier_images(modem_model):
    """An upgrader made for this model says its family selects stored
    carrier images (``selects_carrier_images``)."""
    for upgrader_type in app_settings.UPGRADERS_MAP:
        try:
            upgrader_class = get_upgrader_class(upgrader_type)
        except LookupError:
            continue
        if (
            getattr(upgrader_class, "selects_carrier_images", False)
            and upgrader_class.declares_models()
            and upgrader_class.supports_modem(modem_model)
        ):
            return True
    return False


def switch_refusal(modem, name):
    """Why ``name`` cannot be made active on ``modem`` (a DeviceModemFirmware
    row) now; ``""`` when it can."""
    if not modem.modem_model or not selects_carrier_images(modem.modem_model):
        return _(
            "No upgrader declares that %(model)s modems select stored carrier "
            "images: nothing was changed."
        ) % {"model": modem.modem_model or _("unidentified")}
    return carrier_switch_refusal(modem.carrier_images, modem.carrier_image, name)


def image_for_sim(modem):
    """The stored image made for the modem's SIM (the mismatch report's
    fix); raises ``ValidationError`` when there is none."""
    name = sim_carrier_image(modem.sim_network, modem.carrier_images)
    if not name:
        raise ValidationError(
            _("No stored carrier image of this modem is made for its SIM's network.")
        )
    return name


def start_carrier_switch(modem, name=None):
    """Creates the operation that makes the stored image ``name`` (default:
    the one made for the SIM's network) active on ``modem``, queued once
    committed. Raises ``ValidationError`` with the reason, nothing changed."""
    device = modem.device
    if device.is_deactivated():
        raise ValidationError(_("This device is deactivated."))
    if name is None:
        name = image_for_sim(modem)
    refusal = switch_refusal(modem, name)
    if refusal:
        raise ValidationError(refusal)
    operation = load_model("ModemUpgradeOperation")(
        device=device, usb_path=modem.usb_path, target_carrier_image=name
    )
    operation.full_clean(exclude=["image"])
    try:
        with transaction.atomic():
            insert_operations([operation])
    except IntegrityError:
        raise ValidationError(
            _("Another modem upgrade is already running on this device.")
        )
    transaction.on_commit(publish.dispatch_soon)
    return operation
