"""Whether an image may be pushed to a device: one rule set for all callers.

The single-device check (``check_image_for_device``, ``check_modem``) and
the batch preview (``batch.py``, the same rules as database filters) share
the reasons below and ``model_may_be``. A build's lifecycle status decides
which upgrades it may start (``check_build_may_start``,
``check_build_for_batch``), and ``version_key`` orders versions for the
compliance target (``inventory.py``).
"""

import re

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy


class ExclusionReason:
    DEACTIVATED = "deactivated"
    RUNNING = "upgrade-running"
    NO_CONNECTION = "no-connection"
    OTHER_MODEL = "other-modem-model"
    BOARD = "incompatible-board"
    UP_TO_DATE = "already-on-version"
    NOT_DETECTED = "not-detected"
    # not detected, and the last detection could not reach the router
    UNREACHABLE = "router-unreachable"
    NO_MODEM = "no-modem"
    OTHER_CARRIER = "other-carrier"

    labels = {
        DEACTIVATED: gettext_lazy("device deactivated"),
        RUNNING: gettext_lazy("an upgrade is already running"),
        NO_CONNECTION: gettext_lazy("no enabled SSH connection"),
        OTHER_MODEL: gettext_lazy("the modem is another model"),
        BOARD: gettext_lazy("no image validated for this router model"),
        UP_TO_DATE: gettext_lazy("already on this version"),
        NOT_DETECTED: gettext_lazy("modem not detected yet"),
        UNREACHABLE: gettext_lazy("router unreachable"),
        NO_MODEM: gettext_lazy("no modem found by the last detection"),
        OTHER_CARRIER: gettext_lazy(
            "the SIM's network is not one this build is for (carriers)"
        ),
    }


def model_may_be(modem_model):
    """Modems that may be of ``modem_model``: of that model, or whose model
    is not known (the router-side wrapper refuses another model before
    anything is written)."""
    return model_may_be_joined(modem_model)


def model_may_be_joined(modem_model, prefix=""):
    """``model_may_be`` on modems reached through ``prefix`` (a join)."""
    return Q(**{f"{prefix}modem_model": modem_model}) | Q(
        **{f"{prefix}modem_model": ""}
    )


def check_modem(build, modems, detection_succeeded):
    """The preview's modem rules for one device; ``modems``: the
    ``modem_model`` of each modem to consider. Raises ``ValidationError``
    with the preview's reason."""
    if not modems:
        reason = (
            ExclusionReason.NO_MODEM
            if detection_succeeded
            else ExclusionReason.NOT_DETECTED
        )
        raise ValidationError(
            {
                "image": _("Cannot upgrade: %(reason)s.")
                % {"reason": ExclusionReason.labels[reason]}
            }
        )
    if not any(model in ("", build.modem_model) for model in modems):
        raise ValidationError(
            {
                "image": _(
                    'This image is built for the modem model "%(target)s" but the '
                    'modem of this device is a "%(detected)s".'
                )
                % {"target": build.modem_model, "detected": modems[0]}
            }
        )


def carrier_may_be(build):
    """Modems whose SIM network the build targets (every modem for a
    generic build, whose ``networks`` is empty): a build made for one
    carrier is never pushed to a modem with another carrier's SIM, nor to
    one whose SIM is not known."""
    return Q(sim_network__in=build.networks) if build.networks else Q()


def check_carrier(build, networks):
    """The preview's carrier rule for one device; ``networks``: the SIM
    network of each modem to consider. Raises ``ValidationError``."""
    if not build.networks or any(n in build.networks for n in networks):
        return
    raise ValidationError(
        {
            "image": _(
                "This build is for the networks %(targets)s but the SIM of this "
                "modem is on %(network)s."
            )
            % {
                "targets": ", ".join(build.networks),
                "network": ", ".join(n for n in networks if n) or _("no known network"),
            }
        }
    )


def check_image_for_device(device, image):
    """Raises ``ValidationError`` (on the ``image`` field) when the image's
    organization or boards do not fit the device."""
    build = image.build
    image_org_id = build.category.organization_id
    if image_org_id is not None and image_org_id != device.organization_id:
        raise ValidationError(
            {
                "image": _(
                    "The organization of the image does not match "
                    "the organization of the device."
                )
            }
        )
    if image.boards and device.model not in image.boards:
        raise ValidationError(
            {
                "image": _(
                    'This image is not validated for the router model "%(board)s" '
                    "(compatible: %(boards)s)."
                )
                % {"board": device.model or "-", "boards": ", ".join(image.boards)}
            }
        )


# --- build lifecycle -------------------------------------------------------


class BuildStatus:
    """Where a build is in its life: ``draft`` (being tested) → ``released``
    (the fleet's target) → ``withdrawn`` (no new upgrade)."""

    DRAFT = "draft"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"

    choices = (
        (DRAFT, gettext_lazy("draft")),
        (RELEASED, gettext_lazy("released")),
        (WITHDRAWN, gettext_lazy("withdrawn")),
    )
    # a released build never becomes a draft again: it may have been pushed
    # to the fleet; a withdrawal may be undone by releasing again
    transitions = {
        DRAFT: {DRAFT, RELEASED, WITHDRAWN},
        RELEASED: {RELEASED, WITHDRAWN},
        WITHDRAWN: {WITHDRAWN, RELEASED},
    }


def check_build_transition(old_status, new_status):
    if old_status and new_status not in BuildStatus.transitions.get(old_status, ()):
        raise ValidationError(
            {
                "status": _(
                    "A %(old)s build cannot become a draft again (it may have "
                    "reached the fleet): withdraw it instead, or release it."
                )
                % {"old": old_status}
            }
        )


def check_build_may_start(build):
    """Raises ``ValidationError`` (on ``image``) for a withdrawn build: it
    starts no new upgrade, single or mass."""
    if build.status == BuildStatus.WITHDRAWN:
        raise ValidationError(
            {
                "image": _(
                    "The build %(build)s is withdrawn: it can start no new upgrade."
                )
                % {"build": build.version}
            }
        )


def check_build_for_batch(build, group, device_ids):
    """A mass upgrade's build: never withdrawn, and a draft only to an
    explicitly chosen test group (a device group or a list of devices),
    never to a whole fleet by accident."""
    if build.status == BuildStatus.WITHDRAWN:
        raise ValidationError(
            {
                "build": _(
                    "The build %(build)s is withdrawn: it can start no new upgrade."
                )
                % {"build": build.version}
            }
        )
    if build.status == BuildStatus.DRAFT and not group and not device_ids:
        raise ValidationError(
            {
                "build": _(
                    "The build %(build)s is a draft: mass-upgrade it only to a "
                    "test group (choose a device group or devices), or release "
                    "it first to upgrade the whole fleet."
                )
                % {"build": build.version}
            }
        )


# --- comparing versions ----------------------------------------------------

_VERSION_TOKEN = re.compile(r"[0-9]+|[A-Za-z]+")
# words that mark a pre-release, which sorts before the version without it
PRE_RELEASE_RANKS = {"dev": 0, "alpha": 1, "beta": 2, "pre": 3, "rc": 4}
VERSION_KEY_MAX_LENGTH = 320


def version_key(version):
    """A string whose order is the order of the versions, made of digits only
    (so that every database collation sorts it as ``sorted()`` does).

    The version is cut into runs of digits and runs of letters; ``.``,
    ``-``, ``_`` and ``+`` only separate them. Runs compare one by one:
    numbers as numbers (``9`` < ``10``, ``010`` = ``10``), letters
    alphabetically, case ignored; a number sorts before letters;
    a version that is a prefix of another sorts first (``1.2`` <
    ``1.2.1``), except before the pre-release words ``dev`` < ``alpha`` <
    ``beta`` < ``pre`` < ``rc`` (``1.2-rc1`` < ``1.2``). Telit's
    ``M0R.010000-B022`` is M, 0, R, 10000, B, 22: the firmware number
    decides, then the build number. Docs: docs/user/upgraders.rst.

    Encoding, each run: pre-release ``0`` + rank; number ``2`` + its length
    (two digits) + its digits without leading zeros; letters ``3`` + two
    digits per letter (A=10 ... Z=35) + ``00``; the end ``1``.
    """
    parts = []
    for token in _VERSION_TOKEN.findall(version or ""):
        if token.isdigit():
            digits = token.lstrip("0") or "0"
            parts.append(f"2{len(digits):02d}{digits}")
        elif token.lower() in PRE_RELEASE_RANKS:
            parts.append(f"0{PRE_RELEASE_RANKS[token.lower()]}")
        else:
            letters = "".join(f"{ord(c) - ord('A') + 10:02d}" for c in token.upper())
            parts.append(f"3{letters}00")
    return "".join(parts) + "1"
