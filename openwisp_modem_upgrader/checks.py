"""System checks for settings that look right but are never read.

The design document spells swappable model settings ``OPENWISP_MODEM_BUILD_MODEL``;
swapper (and Django) read ``MODEM_UPGRADER_MODEMBUILD_MODEL``. A project
following the document would silently keep the default models.
"""

import re

from django.conf import settings
from django.core.checks import Warning
from swapper import swappable_setting

from .swapper import APP_LABEL

MISNAMED_SWAPPABLE_SETTING = "modem_upgrader.W001"
# the concrete models of models.py (a project that swaps them does not
# install this app's label, so they cannot be read from the app registry)
SWAPPABLE_MODELS = (
    "ModemCategory",
    "ModemBuild",
    "ModemFirmwareImage",
    "DeviceModemFirmware",
    "DeviceModemDetection",
    "ModemHistory",
    "ModemUpgradeOperation",
    "ModemBatchUpgradeOperation",
    "ModemFirmwarePolicy",
)


def snake_upper(name):
    """``ModemFirmwareImage`` -> ``MODEM_FIRMWARE_IMAGE``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def misspellings(model_name):
    """Setting names a reader of the design document may write for a model."""
    snake = snake_upper(model_name)
    upper = model_name.upper()
    prefix = APP_LABEL.upper()
    return {
        f"OPENWISP_{snake}_MODEL",  # the design document's spelling
        f"OPENWISP_{upper}_MODEL",
        f"OPENWISP_{prefix}_{upper}_MODEL",
        f"OPENWISP_{prefix}_{snake}_MODEL",
        f"{prefix}_{snake}_MODEL",
    }


def swappable_settings():
    """``{model name: the setting swapper reads}``."""
    return {name: swappable_setting(APP_LABEL, name) for name in SWAPPABLE_MODELS}


def check_misnamed_swappable_settings(app_configs=None, **kwargs):
    errors = []
    for model_name, setting in sorted(swappable_settings().items()):
        for wrong in sorted(misspellings(model_name) - {setting}):
            if not hasattr(settings, wrong):
                continue
            value = getattr(settings, wrong)
            errors.append(
                Warning(
                    f"{wrong} is set but never read: the {model_name} model "
                    f"is swapped with {setting}.",
                    hint=f"Rename it: {setting} = {value!r}",
                    obj="settings",
                    id=MISNAMED_SWAPPABLE_SETTING,
                )
            )
    return errors
