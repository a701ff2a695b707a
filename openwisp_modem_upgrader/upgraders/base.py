import re

from django.core.exceptions import ValidationError

from ..exceptions import IrrecoverableModemFailure, ModemUpgradeCancelled
from ..shell_values import OptionsValidator
from ..upgrade import mark_flash_started, record_progress

# what ``start()`` returns
FINISHED = "finished"  # the upgrade is over and succeeded
FLASHING = "flashing"  # the flash goes on without a worker: ``poll()`` follows


class BaseModemUpgrader:
    """Interface of every modem upgrader (docs/user/upgraders.rst).

    A subclass declares the JSON schema of its options in ``SCHEMA`` and
    either:

    * implements ``upgrade()``, which flashes while the worker waits and
      returns on success (simple upgraders; the worker is held throughout),
    * or overrides ``start()`` and ``poll()``: ``start()`` does what needs a
      worker (prepare, send the image, start the flash on the router) and
      returns ``FLASHING``; the engine frees the worker and calls ``poll()``
      in short follow-up tasks until it returns a message (success) or
      raises. ``self.state`` (a JSON-serialisable dict) is kept in the
      database between ``start()`` and every ``poll()``.

    Failures are raised as the exceptions of
    ``openwisp_modem_upgrader.exceptions``; only the engine turns them into
    statuses. Before anything irreversible the upgrader calls
    ``point_of_no_return()``: from then on the operation cannot be cancelled
    and a failure is not retried (unless ``ModemUntouched`` says so).
    """

    label = None
    SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}
    # regular expression of the modem models this upgrader can flash
    modem_model_pattern = r".+"
    # extra seconds granted after the flash and reboot timeouts
    outcome_margin = 120
    # True: ``start()`` returns ``FLASHING`` and ``poll()`` follows the flash
    # without a worker; False: ``upgrade()`` flashes while the worker waits
    detached = False

    def __init__(self, operation, connection):
        self.operation = operation
        self.connection = connection
        self.options = self.get_options(operation.upgrade_options)
        self.state = dict(operation.follow_state or {})

    # -- options -----------------------------------------------------------

    @classmethod
    def validate_upgrade_options(cls, options):
        """Raises ``ValidationError`` with a readable reason.

        Patterns are full matches (``shell_values``): option values reach
        the router's shell.
        """
        validator = OptionsValidator(cls.SCHEMA)
        errors = sorted(validator.iter_errors(options or {}), key=lambda e: e.path)
        if errors:
            messages = []
            for error in errors:
                where = ".".join(str(part) for part in error.absolute_path)
                messages.append(f"{where}: {error.message}" if where else error.message)
            raise ValidationError({"upgrade_options": messages})

    # -- the image, at upload ------------------------------------------------

    @classmethod
    def check_image(cls, head, size, build):
        """Refuses, at upload, a file this upgrader could never flash.

        Called by the image model's validation (admin and REST API alike)
        for every new image of this upgrader's type, before it is saved.
        ``head`` is the file's first ``IMAGE_HEAD_SIZE`` bytes (64 KiB; all
        of it when shorter): an upload is never read whole. ``size`` is the
        file's size in bytes (never 0: empty files are refused before),
        ``build`` the build the image belongs to (not saved yet when the
        admin adds it with its images; ``None`` when not known). Raise
        ``ValidationError`` with a message that tells the operator what is
        wrong; return to accept. The default accepts every file.
        """

    @classmethod
    def supports_modem(cls, modem_model):
        return re.fullmatch(cls.modem_model_pattern, modem_model or "") is not None

    @classmethod
    def get_options(cls, options):
        """The options with the schema's defaults filled in."""
        result = {
            name: spec["default"]
            for name, spec in cls.SCHEMA.get("properties", {}).items()
            if "default" in spec
        }
        result.update(options or {})
        return result

    @classmethod
    def worker_time_limit(cls, options):
        """Seconds the worker's part may take (``start()``); the task's soft
        time limit. The transfer dominates it."""
        from .. import settings as app_settings

        options = cls.get_options(options)
        limit = int(options.get("transfer_timeout", 0)) + app_settings.TASK_TIMEOUT
        if not cls.detached:
            limit += cls.outcome_timeout_for(options)
        return limit

    @classmethod
    def outcome_timeout_for(cls, options):
        return (
            int(options.get("upgrade_timeout", 1800))
            + int(options.get("reboot_timeout", 300))
            + cls.outcome_margin
        )

    def outcome_timeout(self):
        """Seconds after the point of no return within which the outcome
        must be known; past them the operation fails as unknown."""
        return self.outcome_timeout_for(self.options)

    # -- what an upgrader calls --------------------------------------------

    def log(self, message, progress=None):
        """Appends a line to the operation's log (and raises its progress)."""
        record_progress(self.operation.pk, progress=progress, message=message)

    def progress(self, percent):
        record_progress(self.operation.pk, progress=percent)

    def point_of_no_return(self):
        """Marks that the router is about to be told to flash.

        Raises ``ModemUpgradeCancelled`` when an operator cancelled meanwhile
        (nothing irreversible happened yet). Sets the outcome deadline.
        """
        if not mark_flash_started(self.operation.pk, self.outcome_timeout()):
            raise ModemUpgradeCancelled("cancelled before the flash started")
        self.operation.flash_started = True

    # -- what the engine calls ---------------------------------------------

    def start(self, image):
        """The worker's part; ``FINISHED`` (success) or ``FLASHING``."""
        self.upgrade(image)
        return FINISHED

    def upgrade(self, image):
        raise NotImplementedError()

    def poll(self, image):
        """One look at a flash that goes on without a worker: ``None`` while
        it runs, a message on verified success; raises otherwise.
        ``RecoverableModemFailure`` means the router cannot be read now (the
        engine tries again until the outcome deadline)."""
        raise IrrecoverableModemFailure(
            "this upgrader cannot follow a flash: the modem state is unknown, "
            "check the device"
        )

    def outcome_after_worker_death(self, image):
        """What became of an operation whose worker died after the point of
        no return inside ``start()``/``upgrade()``; raises like ``poll()``.
        Upgraders that return ``FLASHING`` are followed with ``poll()``."""
        raise IrrecoverableModemFailure(
            "the worker stopped during the flash: the modem state is unknown, "
            "check the device"
        )

    def clean_up(self, image):
        """Best effort after an outcome reported by the router itself (e.g.
        remove the image from the router). Never raises."""
