"""openwisp-notifications types of the module and the receivers sending them.

Recipients, organization scoping and the users' notification settings are
openwisp-notifications' own: every notification targets an object with an
``organization_id`` (the device, or the mass upgrade).
"""

from django.utils.translation import gettext_lazy as _
from openwisp_notifications.signals import notify
from openwisp_notifications.types import register_notification_type
from openwisp_notifications.utils import _get_object_link

from .failure_cause import failure_cause
from .health import service_failure
from .statuses import FAILED_STATUSES, OperationStatus
from .swapper import load_model

UPGRADE_FAILED = "modem_upgrade_failed"
BATCH_FINISHED = "modem_mass_upgrade_finished"
BATCH_STOPPED = "modem_mass_upgrade_stopped"
UNEXPLAINED_CHANGE = "modem_unexplained_change"
# health verification (issue 22)
SERVICE_NOT_RESTORED = "modem_service_not_restored"
STUCK_IN_FLASH_MODE = "modem_stuck_in_flash_mode"


def action_object_url(notification, field, absolute_url=True):
    """The notification's link opens the operation, not the device."""
    return _get_object_link(notification._related_object("action_object"), absolute_url)


def register_notification_types():
    import swapper

    Device = swapper.load_model("config", "Device")
    Operation = load_model("ModemUpgradeOperation")
    Batch = load_model("ModemBatchUpgradeOperation")
    Modem = load_model("DeviceModemFirmware")
    register_notification_type(
        UPGRADE_FAILED,
        {
            "verbose_name": _("Modem upgrade FAILED"),
            "verb": _("failed"),
            "level": "error",
            "email_subject": _(
                "[{site.name}] Modem upgrade of {notification.target} "
                "{notification.verb}"
            ),
            "message": _(
                "The [modem upgrade]({notification.target_link}) of device "
                "{notification.target} ended as {status}: {reason}"
            ),
            "target_link": "openwisp_modem_upgrader.notifications.action_object_url",
        },
        models=[Device, Operation],
    )
    register_notification_type(
        BATCH_FINISHED,
        {
            "verbose_name": _("Mass modem upgrade finished"),
            "verb": _("finished"),
            "level": "info",
            "email_subject": _("[{site.name}] {notification.target} finished"),
            "message": _(
                "[{notification.target}]({notification.target_link}) finished "
                "as {status}: {success} succeeded, {failed} failed, "
                "{no_service} flashed without service, {aborted} aborted, "
                "{cancelled} cancelled out of {total} devices."
            ),
        },
        models=[Batch],
    )
    register_notification_type(
        BATCH_STOPPED,
        {
            "verbose_name": _("Mass modem upgrade stopped"),
            "verb": _("stopped"),
            "level": "error",
            "email_subject": _("[{site.name}] {notification.target} stopped"),
            "message": _(
                "[{notification.target}]({notification.target_link}) stopped "
                "starting devices: {reason}. Resume it or retry the failed "
                "devices from its page."
            ),
        },
        models=[Batch],
    )
    register_notification_type(
        UNEXPLAINED_CHANGE,
        {
            "verbose_name": _("Unexplained modem change"),
            "verb": _("changed without an upgrade"),
            "level": "warning",
            "email_subject": _(
                "[{site.name}] The modem of {notification.target} "
                "{notification.verb}"
            ),
            "message": _(
                "The modem at USB {usb_path} of [{notification.target}]"
                "({notification.target_link}) now reports {model} {firmware} "
                "(IMEI {imei}) and no upgrade explains it: flashed by hand or "
                "replaced? Acknowledge it on the device page."
            ),
        },
        models=[Device, Modem],
    )
    register_notification_type(
        SERVICE_NOT_RESTORED,
        {
            "verbose_name": _("Modem flashed, service not restored"),
            "verb": _("lost its cellular service after a modem upgrade"),
            "level": "error",
            "email_subject": _(
                "[{site.name}] {notification.target} {notification.verb}"
            ),
            "message": _(
                "The modem of {notification.target} runs the new firmware but "
                "its [upgrade]({notification.target_link}) could not verify the "
                "service: {reason}"
            ),
            "target_link": "openwisp_modem_upgrader.notifications.action_object_url",
        },
        models=[Device, Operation],
    )
    register_notification_type(
        STUCK_IN_FLASH_MODE,
        {
            "verbose_name": _("Modem stuck in flash mode"),
            "verb": _("has a modem stuck in flash mode"),
            "level": "error",
            "email_subject": _(
                "[{site.name}] {notification.target} {notification.verb}"
            ),
            "message": _(
                "The modem at USB {usb_path} of [{notification.target}]"
                "({notification.target_link}) is in a flashing mode (USB id "
                "{usb_id}): an interrupted flash. Start a recovery run with the "
                "image that was being flashed ({image})."
            ),
        },
        models=[Device, Modem],
    )


def upgrade_finished(operation, status, **kwargs):
    if status not in FAILED_STATUSES:
        return
    if status == OperationStatus.NO_SERVICE:
        # its own type: the flash worked, the service did not come back
        notify.send(
            sender=operation,
            type=SERVICE_NOT_RESTORED,
            target=operation.device,
            action_object=operation,
            reason=(service_failure(operation.log) or "")[:500]
            or str(_("no reason recorded")),
        )
        return
    # the stage and the tool's own error line, not "reported by the router"
    cause = failure_cause(operation.log)
    notify.send(
        sender=operation,
        type=UPGRADE_FAILED,
        target=operation.device,
        action_object=operation,
        status=str(OperationStatus(status).label),
        reason=str(cause)[:500] if cause else str(_("no reason recorded")),
    )


def batch_finished(batch, **kwargs):
    counts = batch.status_counts()
    notify.send(
        sender=batch,
        type=BATCH_FINISHED,
        target=batch,
        level="info" if batch.status == OperationStatus.SUCCESS else "warning",
        status=str(OperationStatus(batch.status).label),
        success=counts[OperationStatus.SUCCESS],
        failed=counts[OperationStatus.FAILED],
        no_service=counts[OperationStatus.NO_SERVICE],
        aborted=counts[OperationStatus.ABORTED],
        cancelled=counts[OperationStatus.CANCELLED],
        total=counts["total"],
    )


def batch_stopped(batch, reason, **kwargs):
    notify.send(sender=batch, type=BATCH_STOPPED, target=batch, reason=reason[:500])


def unexplained_change(modem, **kwargs):
    notify.send(
        sender=modem,
        type=UNEXPLAINED_CHANGE,
        target=modem.device,
        action_object=modem,
        usb_path=modem.usb_path or "-",
        model=modem.modem_model,
        firmware=modem.modem_firmware_version or modem.modem_revision,
        imei=modem.modem_imei or "-",
    )


def stuck_in_flash_mode(modem, usb_id, **kwargs):
    notify.send(
        sender=modem,
        type=STUCK_IN_FLASH_MODE,
        target=modem.device,
        action_object=modem,
        usb_path=modem.usb_path or "-",
        usb_id=usb_id or "-",
        image=str(modem.image.build.version) if modem.image_id else "-",
    )


def connect_receivers():
    from .signals import (
        modem_batch_finished,
        modem_batch_stopped,
        modem_stuck_in_flash_mode,
        modem_upgrade_finished,
        unexplained_modem_change,
    )

    modem_stuck_in_flash_mode.connect(
        stuck_in_flash_mode, dispatch_uid="modem_upgrader.notify_stuck_in_flash_mode"
    )
    modem_batch_stopped.connect(
        batch_stopped, dispatch_uid="modem_upgrader.notify_batch_stopped"
    )
    modem_upgrade_finished.connect(
        upgrade_finished, dispatch_uid="modem_upgrader.notify_upgrade_finished"
    )
    modem_batch_finished.connect(
        batch_finished, dispatch_uid="modem_upgrader.notify_batch_finished"
    )
    unexplained_modem_change.connect(
        unexplained_change, dispatch_uid="modem_upgrader.notify_unexplained_change"
    )
