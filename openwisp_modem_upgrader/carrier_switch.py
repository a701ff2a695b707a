"""The worker's part of a "select carrier image" operation: no image is
transferred; ``carrier-select.sh`` makes a stored carrier image active on
the router, waits for the modem to answer again and reads the active image
back, then the server reads the modems itself (detection's ``modem-info.sh``)
and records them: the modem row, its history row linked to the operation.

The engine calls ``switch_carrier_image`` instead of an upgrader's
``start()`` and maps what it raises to a status like for an upgrade
(``engine.settle``): the same log, retries, notifications and history.
"""

import shlex

from django.utils import timezone

from . import settings as app_settings
from .carriers import stored_image_index
from .detection import read_router_modems, record_modems
from .device_contract import (
    CARRIER_SELECT_SCRIPT,
    CARRIER_SELECT_UNTOUCHED,
    GarbageOutput,
    excerpt,
    parse_carrier_select,
)
from .device_scripts import bundled_script
from .exceptions import IrrecoverableModemFailure, RecoverableModemFailure
from .shell_values import USB_PATH, full_match
from .ssh import RouterShell
from .statuses import ModemChangeSource, OperationStatus
from .swapper import load_model
from .transfer import one_line
from .upgrade import mark_flash_started, record_progress, save_follow_state

SESSION_LOST = "read again after the session ended"


class ModemNotRead(IrrecoverableModemFailure):
    """The server could not read the router's modems to verify the switch."""


# how long the modem may take to reboot into the image and answer again
MODEM_WAIT = 90
# the SSH command's own limit: the script's wait, its AT reads, a margin
SCRIPT_TIMEOUT = MODEM_WAIT + 60
# after the switch was sent the outcome is due within this (a worker that
# died meanwhile: engine._follow fails the operation past it)
OUTCOME_TIMEOUT = SCRIPT_TIMEOUT + 60


def carrier_select_script():
    """carrier-select.sh with its libraries inlined (``bundled_script``)."""
    return bundled_script(CARRIER_SELECT_SCRIPT, "CARRIER_SELECT_BUNDLED")


def script_arguments(index, name, usb_path):
    """``set --`` line giving the script its arguments: each value checked
    again here (full match) and quoted."""
    args = ["--image", index, "--name", name, "--wait", str(MODEM_WAIT)]
    if usb_path:
        if not full_match(USB_PATH, usb_path):
            raise IrrecoverableModemFailure("invalid modem USB path")
        args += ["--usb-path", usb_path]
    return "set -- " + " ".join(shlex.quote(arg) for arg in args) + "\n"


def switch_carrier_image(operation, device_connection):
    """Runs the switch on the router; returns the success message, raises
    ``IrrecoverableModemFailure`` (failed, with the reason) or
    ``RecoverableModemFailure`` (before the switch was sent: retried)."""
    name = operation.target_carrier_image
    modem = (
        load_model("DeviceModemFirmware")
        .objects.filter(device_id=operation.device_id, usb_path=operation.usb_path)
        .first()
    )
    index = stored_image_index(modem.carrier_images if modem else [], name)
    if not index:
        raise IrrecoverableModemFailure(
            f"the modem's last reading lists no stored carrier image {name}: "
            "nothing was changed"
        )
    record_progress(
        operation.pk,
        progress=10,
        message=f"selecting the stored carrier image {name} (index {index}) "
        f"on modem {operation.usb_path or '(the only one)'}",
    )
    script = script_arguments(index, name, operation.usb_path) + carrier_select_script()
    if not mark_flash_started(operation.pk, OUTCOME_TIMEOUT):
        return None  # cancelled meanwhile: nothing was sent
    shell = RouterShell(device_connection)
    try:
        output, code = shell.run_script(script, timeout=SCRIPT_TIMEOUT)
    except RecoverableModemFailure as error:
        # the modem may be the router's uplink: the session drops with its
        # reboot. The server's own reading decides.
        record_progress(
            operation.pk,
            message=f"the SSH session ended during the switch ({one_line(error)})",
        )
        try:
            return _verified(operation, name, SESSION_LOST)
        except ModemNotRead as unread:
            # the router is away with its uplink: the follow-ups read it
            # again until the outcome deadline (``follow_switch``)
            record_progress(operation.pk, message=f"{unread}; reading it again later")
            save_follow_state(
                operation.pk, {"session_lost": True}, app_settings.FOLLOW_INTERVAL
            )
            return None
    try:
        outcome = parse_carrier_select(output, code)
    except GarbageOutput as error:
        raise IrrecoverableModemFailure(
            f"unexpected answer of {CARRIER_SELECT_SCRIPT}: {error}"
        )
    detail = excerpt(outcome["detail"], 200)
    record_progress(operation.pk, progress=80, message=f"router: {detail}")
    if code == CARRIER_SELECT_UNTOUCHED:
        raise IrrecoverableModemFailure(
            f"refused on the router, nothing changed: {detail}"
        )
    if code != 0:
        raise IrrecoverableModemFailure(
            f"carrier image not switched ({outcome['result']}): {detail}"
        )
    return _verified(operation, name, detail)


def _verified(operation, name, context):
    """The server's own reading of the router's modems (recorded as a
    reading of this operation): the modem must list ``name`` as active."""
    status, reason, modems = read_router_modems(operation.device)
    if modems is None:
        raise ModemNotRead(
            f"carrier image unverified: the server could not read the modem "
            f"({status}: {reason}), check the device"
        )
    record_modems(
        operation.device, modems, ModemChangeSource.UPGRADE, operation=operation
    )
    entry = next(
        (
            m
            for m in modems
            if m["mode"] == "normal"
            and (m["usb_path"] == operation.usb_path or not operation.usb_path)
        ),
        None,
    )
    carrier = (entry or {}).get("carrier") or {}
    by_index = {image["index"]: image["name"] for image in carrier.get("images", [])}
    active = by_index.get(carrier.get("active", ""), "")
    if active != name:
        raise IrrecoverableModemFailure(
            f"carrier image unverified: the modem reports {active or 'no image'} "
            f"active, expected {name}"
        )
    return f"carrier image {name} active ({context}); verified by the server's reading"


def follow_switch(operation):
    """One follow-up of a switch past the worker: ``(status, message)`` to
    finish it, or ``(None, seconds)`` until the next look. After a lost
    session the router is read until the outcome deadline; otherwise the
    worker holds the switch, and past the deadline it died."""
    past_deadline = timezone.now() >= operation.outcome_deadline
    if (operation.follow_state or {}).get("session_lost"):
        try:
            name = operation.target_carrier_image
            return OperationStatus.SUCCESS, _verified(operation, name, SESSION_LOST)
        except ModemNotRead as error:
            if past_deadline:
                return OperationStatus.FAILED, f"{error}; until the outcome deadline"
            return None, app_settings.FOLLOW_INTERVAL
        except IrrecoverableModemFailure as error:
            return OperationStatus.FAILED, str(error)
    if not past_deadline:
        remaining = (operation.outcome_deadline - timezone.now()).total_seconds()
        return None, remaining
    return OperationStatus.FAILED, (
        "the worker stopped during the carrier image switch: the active image "
        "is unknown, detect the device's modems"
    )
