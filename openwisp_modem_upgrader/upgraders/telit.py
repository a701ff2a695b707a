from django.utils.translation import gettext_lazy as _

from .wrapper import WrapperUpgrader

# Absolute paths and plain words only: these values reach the router's shell.
SAFE_PATH = r"^/[A-Za-z0-9._/+-]{0,254}$"
# an absolute path, or a bare command name looked up in the router's PATH
SAFE_COMMAND = r"^(/[A-Za-z0-9._/+-]{0,254}|[A-Za-z0-9._+-]{1,64})$"
SAFE_ARGS = r"^[A-Za-z0-9 ._=/:+-]{0,200}$"


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
                "pattern": SAFE_COMMAND,
                "default": "uxfp",
            },
            "tool_args": {
                "type": "string",
                "title": "Extra arguments for the tool (e.g. --speed 921600)",
                "pattern": SAFE_ARGS,
                "default": "",
            },
            "remote_dir": {
                "type": "string",
                "title": "Directory on the router receiving the image",
                "pattern": SAFE_PATH,
                "default": "/tmp",
            },
            "transfer_timeout": {
                "type": "integer",
                "title": "Transfer timeout (seconds)",
                "minimum": 10,
                "maximum": 14400,
                "default": 1800,
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
