"""Recovery runs of a modem stuck in a flashing mode (issue 22), started by
an operator (admin, REST) or by the opt-in policy ``AUTO_RECOVERY`` when a
detection finds one.

A recovery run is an upgrade with ``recovery_run`` on: the image that was
being flashed when the modem was interrupted, flashed again with the
vendor tool's ``--lossrecovery``; its gate requires the flashing mode and
its outcome is verified like any upgrade (version, then service).
"""

import logging

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from . import settings as app_settings
from .exceptions import UpgradeNotAllowed
from .statuses import DetectionStatus
from .swapper import load_model
from .upgrade import start_upgrade

logger = logging.getLogger(__name__)


def interrupted_flash(modem):
    """The last operation that started flashing ``modem`` (a modem row),
    with its image still in the catalogue; None when unknown."""
    return (
        load_model("ModemUpgradeOperation")
        .objects.filter(
            device_id=modem.device_id,
            usb_path__in=(modem.usb_path, ""),
            flash_started=True,
            image__isnull=False,
        )
        .select_related("image__build")
        .order_by("-created")
        .first()
    )


def start_recovery(modem):
    """Starts the recovery run of ``modem``; the operation. Raises
    ``UpgradeNotAllowed`` with the reason (not stuck, image unknown,
    another upgrade running...)."""
    if modem.detection_status != DetectionStatus.FLASHING:
        raise UpgradeNotAllowed(
            _("This modem is not stuck in a flashing mode: nothing to recover.")
        )
    flash = interrupted_flash(modem)
    if flash is None:
        raise UpgradeNotAllowed(
            _(
                "The image that was being flashed is not known (or was deleted): "
                "start a recovery run with an image of your choice."
            )
        )
    options = dict(
        flash.upgrade_options,
        recovery_run=True,
        preflight_checks=True,
        remediation=False,
        reflash_previous=False,
    )
    try:
        return start_upgrade(
            modem.device, flash.image, options, usb_path=modem.usb_path
        )
    except ValidationError as error:
        raise UpgradeNotAllowed(" ".join(error.messages))


def recover_automatically(modem, **kwargs):
    """Receiver of ``modem_stuck_in_flash_mode``: the opt-in policy."""
    if not app_settings.AUTO_RECOVERY:
        return
    try:
        operation = start_recovery(modem)
    except UpgradeNotAllowed as error:
        logger.warning(
            "modem %s of device %s stuck in flash mode, no automatic recovery: %s",
            modem.usb_path or "-",
            modem.device_id,
            error,
        )
        return
    logger.info(
        "modem %s of device %s stuck in flash mode: recovery run %s started",
        modem.usb_path or "-",
        modem.device_id,
        operation.pk,
    )
