import re

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from .. import settings as app_settings
from ..exceptions import IrrecoverableModemFailure, ModemUpgradeCancelled
from ..image_stream import open_image
from ..shell_values import OptionsValidator
from ..ssh import RouterShell
from ..transfer import stream_file_to_router

# the engine's recorder, for an upgrader built without one (by name: the
# contract imports nothing of the engine, the services or the models)
DEFAULT_RECORDER = "openwisp_modem_upgrader.recorder.OperationRecorder"

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

    A success is the server's to declare: once ``upgrade()`` returns (or
    ``poll()`` returns a message) the engine reads the flashed modem itself
    (``read_version()``, else modem detection over SSH) and records a
    success only when it reports the build's version; otherwise the
    operation fails as "version unverified".

    Everything the upgrader records goes through ``self.recorder``, handed
    in by the engine (``log()``, ``progress()``, ``point_of_no_return()``
    and ``save_state()`` use it).
    """

    label = None
    SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}
    # full-match regular expression of the modem models this upgrader can
    # flash: detection, image validation and start_upgrade use it. None: any
    # model (a catch-all such as the generic command upgrader, which
    # detection does not count as an upgrader made for the model)
    supported_models = None
    # before ``supported_models``: kept for upgraders that set it
    modem_model_pattern = r".+"
    # extra seconds granted after the flash and reboot timeouts
    outcome_margin = 120
    # True: ``start()`` returns ``FLASHING`` and ``poll()`` follows the flash
    # without a worker; False: ``upgrade()`` flashes while the worker waits
    detached = False
    # the modem family keeps several carrier images and selects one by AT
    # commands (carrier-select.sh, "select carrier image" operations)
    selects_carrier_images = False

    def __init__(self, operation, connection, recorder=None):
        self.operation = operation
        self.connection = connection
        self.recorder = recorder or import_string(DEFAULT_RECORDER)(operation)
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
    def model_pattern(cls):
        """The declared models (``supported_models``), or the catch-all."""
        return cls.supported_models or cls.modem_model_pattern

    @classmethod
    def declares_models(cls):
        """Whether the upgrader is made for particular models (detection
        does not count catch-all upgraders as knowing a model)."""
        return cls.model_pattern() not in (".+", ".*")

    @classmethod
    def supports_modem(cls, modem_model):
        return re.fullmatch(cls.model_pattern(), modem_model or "") is not None

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
        self.recorder.log(message, progress)

    def progress(self, percent):
        self.recorder.log(None, percent)

    def point_of_no_return(self):
        """Marks that the router is about to be told to flash.

        Raises ``ModemUpgradeCancelled`` when an operator cancelled meanwhile
        (nothing irreversible happened yet). Sets the outcome deadline and
        saves ``self.state`` with it: a worker that dies from here on leaves
        ``poll()`` (or ``outcome_after_worker_death()``) the state as it was.
        """
        if not self.recorder.point_of_no_return(self.outcome_timeout(), self.state):
            raise ModemUpgradeCancelled("cancelled before the flash started")
        self.operation.flash_started = True

    def save_state(self):
        """Saves ``self.state`` now (the engine also saves it after
        ``start()`` and every ``poll()``)."""
        self.recorder.save_state(self.state)

    def run(self, argv, timeout=30, exit_codes=(0,)):
        """Runs ``argv`` on the router, every item quoted for its shell;
        ``(output, exit code)``. Raises ``RecoverableModemFailure`` when the
        link fails or ``timeout`` seconds pass, or when the exit code is not
        one of ``exit_codes``."""
        return RouterShell(self.connection).run(
            argv, timeout=timeout, exit_codes=exit_codes
        )

    def send_image(self, image, remote_path, timeout=None):
        """Streams the image to ``remote_path`` on the router (never whole
        in memory), within ``timeout`` seconds (default: the
        ``transfer_timeout`` option, else 1800); the bytes sent are counted
        whatever happens."""
        timeout = timeout or int(self.options.get("transfer_timeout", 1800))
        sent = [0]

        def on_progress(done, total):
            sent[0] = done

        try:
            with open_image(image.file) as firmware:
                stream_file_to_router(
                    RouterShell(self.connection).transport,
                    firmware,
                    image.file.size,
                    remote_path,
                    timeout,
                    on_progress=on_progress,
                )
        finally:
            self.recorder.bytes_sent(sent[0])

    def read_version(self):
        """The firmware version the flashed modem reports, read by the
        upgrader its own way; ``None`` (the default): the engine reads it
        through modem detection (``modem-info.sh`` over SSH)."""
        return None

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
        no return inside ``start()``/``upgrade()``: a message when the flash
        may have succeeded (the engine then reads the modem's version and
        decides), or raises like ``poll()``. Called once the outcome
        deadline passed; upgraders that return ``FLASHING`` are followed
        with ``poll()`` instead."""
        return "the worker stopped during the flash"

    def stage(self, image):
        """Transfers the image and verifies it on the router without
        flashing (the ``stage_ahead`` option: the flash waits for the
        window, and its ``start()`` then sends nothing). Upgraders that
        offer the option in their ``SCHEMA`` implement it."""
        raise IrrecoverableModemFailure(
            "this upgrader cannot stage an image ahead of the window"
        )

    def clean_up(self, image):
        """Best effort after an outcome reported by the router itself (e.g.
        remove the image from the router); not called after a success.
        Never raises."""
