"""The upgrader write port: everything an upgrader records goes through here.

The engine hands each upgrader an ``OperationRecorder`` of its operation, so
the upgrader contract (``upgraders/base.py``) imports nothing of the engine,
the services or the models: third-party upgraders are coupled to these few
calls only. The recorder also keeps the server's own reading of the flashed
modem, which the engine requires before it records a success.
"""

from .detection import read_router_modems, record_modems
from .device_contract import detected_version, flashed_modem
from .statuses import ModemChangeSource
from .upgrade import (
    add_bytes_sent,
    journal_seq,
    mark_flash_started,
    modem_version_before,
    record_health,
    record_journal,
    record_progress,
    save_upgrader_state,
)


class OperationRecorder:
    def __init__(self, operation):
        self.operation = operation
        # the version the server read on the flashed modem (``modems_read``)
        self.read_version = None

    def log(self, message=None, progress=None):
        """Appends a line to the operation's log; raises its progress."""
        return record_progress(self.operation.pk, progress=progress, message=message)

    def point_of_no_return(self, outcome_timeout, state):
        """Crosses the point of no return, the upgrader's state saved with
        it; False when the operation was cancelled meanwhile."""
        return mark_flash_started(self.operation.pk, outcome_timeout, state)

    def save_state(self, state):
        return save_upgrader_state(self.operation.pk, state)

    def journal(self, last_seq, messages, progress=None):
        """Applies router journal records (``upgrade.record_journal``)."""
        return record_journal(self.operation.pk, last_seq, messages, progress)

    def journal_seq(self):
        return journal_seq(self.operation.pk)

    def health(self, key, reading):
        """Stores a service health reading (``baseline``, ``remediation``,
        ``after``) on the operation, and on the copy the upgrader holds.
        The baseline carries the firmware version the modem ran before (what
        a re-flash of the previous build installs again)."""
        if key == "baseline":
            # the router's only modem when none was chosen: as the reading says
            usb_path = self.operation.usb_path or reading.get("usb_path", "")
            before = modem_version_before(self.operation, usb_path)
            reading = dict(reading, firmware=before)
        record_health(self.operation.pk, key, reading)
        self.operation.health = dict(self.operation.health or {}, **{key: reading})

    def bytes_sent(self, count):
        add_bytes_sent(self.operation.pk, count)

    def modems_read(self, modems):
        """Records modem-info entries the server read on the router (modem
        rows and history, through detection); the flashed modem's entry,
        ``None`` when it is not listed in normal mode."""
        record_modems(
            self.operation.device,
            modems,
            ModemChangeSource.UPGRADE,
            operation=self.operation,
        )
        try:
            info = flashed_modem(
                modems, self.operation.usb_path, self.operation.image.build.modem_model
            )
        except LookupError:
            return None
        self.read_version = detected_version(info)
        return info

    def read_modems(self):
        """The server's own reading of the router's modems, through
        detection (one SSH session): ``(entry of the flashed modem or
        None, why it could not be read)``."""
        status, reason, modems = read_router_modems(self.operation.device)
        if modems is None:
            return None, f"{status}: {reason}"
        info = self.modems_read(modems)
        return info, "" if info else "the flashed modem is not listed"
