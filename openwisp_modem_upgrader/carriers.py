"""SIM networks and carrier images: one set of rules for detection, the
catalogue's carrier targets, compliance and the carrier-image report.

A network is an MCC-MNC written as digits (``22210``, ``310410``): the MCC
has three digits, the MNC two or three. The SIM stores the MNC's length
(EF_AD), which the AT commands used here do not show, so ``mcc_mnc()``
reads it from the country (``THREE_DIGIT_MNC_MCCS``): an approximation,
right for the countries listed, stated in docs/user/inventory.rst.
"""

import re

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _

from . import settings as app_settings

# countries whose networks use three-digit MNCs (North America, the
# Caribbean, some of Latin America; India's 405 mixes both and reads as three)
THREE_DIGIT_MNC_MCCS = frozenset(
    "302 310 311 312 313 314 315 316 334 338 342 344 346 348 354 356 358 "
    "360 365 376 405 708 722 732 750".split()
)
NETWORK = re.compile(r"[0-9]{5,6}")
# a build's carriers as operators type them: MCC-MNCs separated by commas
# or spaces, a dash allowed between MCC and MNC
_NETWORK_INPUT = re.compile(r"([0-9]{3})-?([0-9]{2,3})")


def mcc_mnc(imsi):
    """The home network of an IMSI as digits (``""`` when unknown)."""
    if not imsi or not re.fullmatch(r"[0-9]{6,15}", imsi):
        return ""
    mnc_length = 3 if imsi[:3] in THREE_DIGIT_MNC_MCCS else 2
    return imsi[: 3 + mnc_length]


def display_network(network):
    """``310410`` -> ``310-410``."""
    return f"{network[:3]}-{network[3:]}" if network else ""


def parse_carriers(text):
    """The networks of a build's ``carriers`` field, sorted and without
    duplicates; empty (or "generic") means every network. Raises
    ``ValidationError`` naming what is not an MCC-MNC."""
    words = [w for w in re.split(r"[\s,;]+", (text or "").strip()) if w]
    if [w.lower() for w in words] in ([], ["generic"]):
        return []
    networks = set()
    for word in words:
        match = _NETWORK_INPUT.fullmatch(word)
        if not match:
            raise ValidationError(
                _(
                    '"%(word)s" is not an MCC-MNC (e.g. 310-410 or 22210); leave '
                    'the field empty or write "generic" for every network.'
                )
                % {"word": word[:16]}
            )
        networks.add(match.group(1) + match.group(2))
    return sorted(networks)


def carrier_key(networks):
    """The searchable form stored next to a build's carriers: ``,a,b,``
    (``""``: generic); ``,<network>,`` is contained in it when it targets
    that network, a LIKE query on every database."""
    return f",{','.join(networks)}," if networks else ""


def image_networks(name):
    """The networks a stored carrier image (by the name the modem lists)
    is made for; ``None`` for a generic or an unknown image."""
    networks = app_settings.CARRIER_IMAGE_NETWORKS.get((name or "").upper())
    return list(networks) if networks else None


def carrier_image_mismatch(network, images, active):
    """Why the active stored image does not suit the SIM's ``network``
    (``""`` when it does or nothing can be told). ``images``: the modem's
    stored images (``index``, ``name``, ``version``), ``active``: the index
    of the active one."""
    if not network or not images or not active:
        return ""
    by_index = {image["index"]: image["name"] for image in images}
    active_name = by_index.get(active, "")
    active_networks = image_networks(active_name)
    if active_networks is not None:
        if network in active_networks:
            return ""
        return str(
            _("the active image %(image)s is made for other networks than %(net)s")
            % {"image": active_name, "net": display_network(network)}
        )
    for name in by_index.values():
        networks = image_networks(name)
        if networks and network in networks:
            return str(
                _(
                    "the stored image %(image)s is made for the SIM's network "
                    "%(net)s but %(active)s is active"
                )
                % {
                    "image": name,
                    "net": display_network(network),
                    "active": active_name or active,
                }
            )
    return ""


# -- selecting a stored carrier image (carrier_select.py) ---------------------

# a stored image's name as carrier-select.sh takes it (--name): full match
CARRIER_IMAGE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")


def valid_image_name(name):
    return isinstance(name, str) and CARRIER_IMAGE_NAME.match(name) is not None


@deconstructible
class CarrierImageNameValidator:
    message = _("a stored carrier image's name: letters, digits and _ . - only")

    def __call__(self, value):
        if value and not valid_image_name(value):
            raise ValidationError(self.message, code="invalid")

    def __eq__(self, other):
        return isinstance(other, CarrierImageNameValidator)


def sim_carrier_image(network, images):
    """The name of the stored image made for the SIM's ``network`` (the one
    that fixes a mismatch); ``""`` when none is."""
    for image in images or []:
        networks = image_networks(image.get("name"))
        if network and networks and network in networks:
            return image["name"]
    return ""


def stored_image_index(images, name):
    """The index the modem lists for the stored image ``name`` (``""``)."""
    for image in images or []:
        if image.get("name") == name:
            return image.get("index", "")
    return ""


def carrier_switch_refusal(images, active, name):
    """Why the stored image ``name`` cannot be made active on a modem that
    lists ``images`` with ``active`` (the active image's name) active;
    ``""`` when it can."""
    if not valid_image_name(name):
        return str(_("Not a stored carrier image name (letters, digits, _ . -)."))
    if not images:
        return str(
            _(
                "This modem reports no stored carrier images (AT#GETFW): it "
                "cannot select a carrier image."
            )
        )
    index = stored_image_index(images, name)
    if not re.fullmatch(r"[1-9][0-9]?", index or ""):
        stored = ", ".join(image.get("name", "") for image in images)
        return str(
            _("This modem stores no carrier image named %(name)s (stored: %(stored)s).")
            % {"name": name, "stored": stored}
        )
    if name == active:
        return str(_("The carrier image %(name)s is already active.") % {"name": name})
    return ""
