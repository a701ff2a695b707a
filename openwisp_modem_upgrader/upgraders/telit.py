from django.utils.translation import gettext_lazy as _

from ..shell_values import COMMAND, STORAGE_DIR, TOOL_ARGS
from .wrapper import WrapperUpgrader


class TelitFN990AUpgrader(WrapperUpgrader):
    label = _("Telit FN990A (uxfp)")
    # FN990A28, FN990A40... (the variant is checked against the build's model)
    modem_model_pattern = r"FN990A[0-9A-Z]*"
    SCHEMA = {
        "type": "object",
        "title": "Telit FN990A upgrade options",
        "additionalProperties": False,
        "properties": {
            "tool_path": {
                "type": "string",
                "title": "uxfp on the router: absolute path or command name",
                "pattern": COMMAND,
                "maxLength": 255,
                "default": "uxfp",
            },
            "tool_args": {
                "type": "string",
                "title": "Extra arguments for the tool (e.g. --speed 921600)",
                "pattern": TOOL_ARGS,
                "maxLength": 200,
                "default": "",
            },
            "remote_dir": {
                "type": "string",
                "title": (
                    "Directory on the router receiving the image: RAM-backed "
                    "/tmp or a mounted USB/extroot path"
                ),
                "pattern": STORAGE_DIR,
                "maxLength": 255,
                "default": "/tmp",
            },
            "transfer_timeout": {
                "type": "integer",
                "title": "Transfer timeout (seconds)",
                "minimum": 10,
                "maximum": 14400,
                "default": 1800,
            },
            "max_transfer_rate": {
                "type": "integer",
                "title": (
                    "Transfer rate cap in bytes per second (0: unlimited), for "
                    "metered or shared cellular uplinks"
                ),
                "minimum": 0,
                "maximum": 10**10,
                "default": 0,
            },
            "upgrade_timeout": {
                "type": "integer",
                "title": "Flash timeout (seconds)",
                "minimum": 60,
                "maximum": 14400,
                "default": 1800,
            },
            "reboot_timeout": {
                "type": "integer",
                "title": "Time allowed for the modem to come back (seconds)",
                "minimum": 10,
                "maximum": 3600,
                "default": 300,
            },
            "verify_checksum": {
                "type": "boolean",
                "title": "Verify the image checksum on the router",
                "default": True,
            },
            "progress_interval": {
                "type": "integer",
                "title": "Seconds between progress reports of the router",
                "minimum": 1,
                "maximum": 600,
                "default": 10,
            },
        },
    }
