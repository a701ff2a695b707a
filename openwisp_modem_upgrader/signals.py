"""Signals of the module, sent once the change they announce is committed.

``modem_upgrade_finished``: an operation reached a terminal status
(``operation``, ``status``). ``modem_batch_finished``: a mass upgrade closed
(``batch``). ``unexplained_modem_change``: a detection flagged a modem whose
revision, firmware version or IMEI changed with no upgrade explaining it
(``modem``, the ``DeviceModemFirmware`` row, and ``history``).
"""

from django.dispatch import Signal

modem_upgrade_finished = Signal()
modem_batch_finished = Signal()
unexplained_modem_change = Signal()
