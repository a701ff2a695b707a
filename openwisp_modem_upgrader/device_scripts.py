"""Where the router-side scripts are.

The whole directory is uploaded at every upgrade so that the server and the script
versions never drift. Built packages carry the scripts as package data
(``openwisp_modem_upgrader/device-scripts/``, copied from the repository's
``device-scripts/`` by setup.py), so they are found wherever pip put the
package: site-packages, ``--user``, ``--prefix`` or ``--target``.
"""

import os
from functools import lru_cache
from importlib import resources

from django.conf import settings

UPGRADE_SCRIPT = "modem-upgrade.sh"

# a source checkout or an editable install: the repository's own directory
_REPOSITORY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "device-scripts"
)


def shipped_scripts_dir():
    """The scripts inside the installed package, or None (a source checkout)."""
    shipped = resources.files("openwisp_modem_upgrader") / "device-scripts"
    # zip_safe=False: an installed package is a directory on disk
    return os.fspath(shipped) if isinstance(shipped, os.PathLike) else None


def scripts_dir():
    # read at each call, not in settings.py: tests point it elsewhere
    configured = getattr(settings, "OPENWISP_MODEM_UPGRADER_DEVICE_SCRIPTS_DIR", None)
    for candidate in (configured, shipped_scripts_dir(), _REPOSITORY):
        if candidate and os.path.isfile(os.path.join(candidate, UPGRADE_SCRIPT)):
            return candidate
    raise FileNotFoundError(
        f"device-scripts/{UPGRADE_SCRIPT} not found in the installed package "
        f"nor in {_REPOSITORY}"
    )


@lru_cache(maxsize=None)
def bundled_script(name, bundled_flag):
    """The router script ``name`` with lib/common.sh, lib/carrier.sh and
    at-command.sh inlined, for the standard input of ``sh -s`` (nothing is
    uploaded). ``bundled_flag`` (``MODEM_INFO_BUNDLED``...) set to 1 tells
    the script that its libraries are defined already."""

    def read(relative):
        with open(os.path.join(scripts_dir(), relative)) as f:
            return f.read()

    # the helper becomes a function: its first line is the shebang
    at_command = read("at-command.sh").split("\n", 1)[1]
    return (
        f"{bundled_flag}=1\n"
        "at_command_bundled() {\n"
        f"{at_command}\n"
        "}\n"
        "AT_HELPER=${AT_HELPER:-at_command_bundled}\n"
        f"{read('lib/common.sh')}\n"
        f"{read('lib/carrier.sh')}\n"
        f"{read(name)}"
    )
