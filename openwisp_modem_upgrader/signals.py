"""Signals of the module, sent once the change they announce is committed.

``modem_upgrade_finished``: an operation reached a terminal status
(``operation``, ``status``). ``modem_batch_finished``: a mass upgrade closed
(``batch``). ``modem_batch_stopped``: a mass upgrade stopped starting
devices because its failures reached the threshold (``batch``, ``reason``).
``unexplained_modem_change``: a detection flagged a modem whose
revision, firmware version or IMEI changed with no upgrade explaining it
(``modem``: the ``DeviceModemFirmware`` row; its history row is written in
the same transaction). ``modem_stuck_in_flash_mode``: a detection found a
modem in a flashing mode while no upgrade of its router runs (``modem``,
``usb_id``).
"""

import logging

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

modem_upgrade_finished = Signal()
modem_batch_finished = Signal()
modem_batch_stopped = Signal()
unexplained_modem_change = Signal()
modem_stuck_in_flash_mode = Signal()


def send_after_commit(signal, sender, **kwargs):
    """Sends ``signal`` once the current transaction commits (at once in
    autocommit). A failing receiver (a notification that cannot be sent)
    is logged: it must never undo or interrupt what the signal announces."""

    def send():
        for receiver, result in signal.send_robust(sender=sender, **kwargs):
            if isinstance(result, Exception):
                logger.error(
                    "receiver %r of a modem upgrader signal failed: %r",
                    receiver,
                    result,
                    exc_info=result,
                )

    transaction.on_commit(send)
