"""Whether an image may be pushed to a device: one rule set for all callers.

The single-device check (``check_image_for_device``, ``check_modem``) and
the batch preview (``batch.py``, the same rules as database filters) share
the reasons below and ``model_may_be``.
"""

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
    NO_MODEM = "no-modem"

    labels = {
        DEACTIVATED: gettext_lazy("device deactivated"),
        RUNNING: gettext_lazy("an upgrade is already running"),
        NO_CONNECTION: gettext_lazy("no enabled SSH connection"),
        OTHER_MODEL: gettext_lazy("the modem is another model"),
        BOARD: gettext_lazy("no image validated for this router model"),
        UP_TO_DATE: gettext_lazy("already on this version"),
        NOT_DETECTED: gettext_lazy("modem not detected yet"),
        NO_MODEM: gettext_lazy("no modem found by the last detection"),
    }


def model_may_be(modem_model):
    """Modems that may be of ``modem_model``: of that model, or whose model
    is not known (the router-side wrapper refuses another model before
    anything is written)."""
    return Q(modem_model=modem_model) | Q(modem_model="")


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
