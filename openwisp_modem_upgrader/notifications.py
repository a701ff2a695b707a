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
from .statuses import FAILED_STATUSES, OperationStatus
from .swapper import load_model

UPGRADE_FAILED = "modem_upgrade_failed"
BATCH_FINISHED = "modem_mass_upgrade_finished"
BATCH_STOPPED = "modem_mass_upgrade_stopped"
UNEXPLAINED_CHANGE = "modem_unexplained_change"


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
                "as {status}: {success} succeeded, {failed} failed, {aborted} "
                "aborted, {cancelled} cancelled out of {total} devices."
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


def upgrade_finished(operation, status, **kwargs):
    if status not in FAILED_STATUSES:
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


def connect_receivers():
    from .signals import (
        modem_batch_finished,
        modem_batch_stopped,
        modem_upgrade_finished,
        unexplained_modem_change,
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
