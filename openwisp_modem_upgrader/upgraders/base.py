import re

from django.core.exceptions import ValidationError

from ..shell_values import OptionsValidator


class BaseModemUpgrader:
    """Interface of every modem upgrader.

    A subclass declares the JSON schema of its options in ``SCHEMA`` and
    implements ``upgrade()``, which returns on success and raises one of the
    exceptions of ``openwisp_modem_upgrader.exceptions`` otherwise: only
    ``upgrade.py`` turns them into statuses.
    """

    label = None
    SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}
    # regular expression of the modem models this upgrader can flash
    modem_model_pattern = r".+"

    def __init__(self, operation, connection):
        self.operation = operation
        self.connection = connection
        self.options = self.get_options(operation.upgrade_options)

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

    def upgrade(self, image):
        raise NotImplementedError()
