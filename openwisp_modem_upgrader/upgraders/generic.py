from django.utils.translation import gettext_lazy as _

from ..shell_values import COMMAND, TOOL_ARGS
from .telit import TelitFN990AUpgrader


class GenericCommandUpgrader(TelitFN990AUpgrader):
    """Runs a customer-installed flashing command through the same wrapper.

    The command must accept ``--file <image> --port <port>`` and may print
    progress lines in the documented format (see the device contract).
    """

    label = _("Generic flashing command")
    modem_model_pattern = r".+"
    SCHEMA = {
        **TelitFN990AUpgrader.SCHEMA,
        "title": "Generic flashing command options",
        "required": ["tool_path"],
        "properties": {
            **TelitFN990AUpgrader.SCHEMA["properties"],
            "tool_path": {
                "type": "string",
                "title": "Flashing command on the router: absolute path or name",
                "pattern": COMMAND,
                "maxLength": 255,
            },
            "tool_args": {
                "type": "string",
                "title": "Extra arguments for the command",
                "pattern": TOOL_ARGS,
                "maxLength": 200,
                "default": "",
            },
        },
    }
