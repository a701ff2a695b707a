"""Failures an upgrader raises; ``engine.settle`` turns each into a status
or a retry."""


class ModemUpgradeError(Exception):
    """Base class of every failure raised while upgrading a modem."""


class RecoverableModemFailure(ModemUpgradeError):
    """Nothing was written to the modem yet: the upgrade may be retried.

    Examples: connection refused or timed out, transfer interrupted.
    """


class RouterUnreachable(RecoverableModemFailure):
    """The router cannot be reached (offline, no working connection): it is
    waited for, within the deadline, without counting an attempt."""


class ModemUntouched(RecoverableModemFailure):
    """Nothing was written to the modem even though the point of no return
    was crossed (the router's wrapper says so, or never started): retried."""


class IrrecoverableModemFailure(ModemUpgradeError):
    """Retrying cannot help (checksum mismatch, wrong model, tool error...)."""


class ModemUpgradeAborted(ModemUpgradeError):
    """The flash was interrupted: the modem may be left in a flashing mode."""


class ModemUpgradeCancelled(ModemUpgradeError):
    """An operator cancelled the operation before the point of no return."""


class UpgradeNotAllowed(Exception):
    """Starting or cancelling an upgrade was refused; the message says why."""


class PreflightRefused(RecoverableModemFailure):
    """The pre-flight gate refused the upgrade ("not started: <reason>"):
    nothing was sent to the router nor changed on the modem; retried."""


class ServiceNotRestored(ModemUpgradeError):
    """The new firmware was flashed and verified, but the cellular service
    did not come back ("flashed, service not restored: <what failed>")."""
