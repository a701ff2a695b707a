"""Whether an image may be pushed to a device: one rule set for all callers.

The batch preview applies the same rules as database filters (``batch.py``).
"""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


def check_image_for_device(device, image, detected_modem_model=None):
    """Raises ``ValidationError`` (on the ``image`` field) when incompatible.

    ``detected_modem_model`` is what the modem last reported; when it is not
    known yet the router-side wrapper still refuses a wrong model before
    flashing, so the upgrade may start.
    """
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
    if detected_modem_model and detected_modem_model != build.modem_model:
        raise ValidationError(
            {
                "image": _(
                    'This image is built for the modem model "%(target)s" but the '
                    'modem of this device is a "%(detected)s".'
                )
                % {"target": build.modem_model, "detected": detected_modem_model}
            }
        )
