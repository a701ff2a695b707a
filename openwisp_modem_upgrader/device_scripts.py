"""Where the router-side scripts are.

The whole directory is uploaded at every upgrade so that the server and the script
versions never drift.
"""

import os
import sys

from django.conf import settings

_INSTALLED = os.path.join(
    sys.prefix, "share", "openwisp-modem-upgrader", "device-scripts"
)
_REPOSITORY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "device-scripts"
)


def scripts_dir():
    configured = getattr(settings, "OPENWISP_MODEM_UPGRADER_DEVICE_SCRIPTS_DIR", None)
    for candidate in (configured, _REPOSITORY, _INSTALLED):
        if candidate and os.path.isfile(os.path.join(candidate, "modem-upgrade.sh")):
            return candidate
    raise FileNotFoundError("device-scripts/modem-upgrade.sh not found")
