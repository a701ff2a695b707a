"""Every value that reaches the router's shell, validated in one place.

The model fields, the upgraders' JSON schemas (and so the admin, the REST
API and the batch API) and the upgrader itself use these patterns. They are
written as ECMAScript-compatible ``^...$`` patterns (the admin's JSON editor
runs them in the browser) and applied in Python with ``re.fullmatch``: with
``re.search``, ``$`` also matches before a final newline, so ``"/tmp\\n"``
would pass. The commands are quoted as well (``ssh.RouterShell``); the
patterns keep values the wrapper would refuse, or that would write outside
sensible storage, from being accepted in the first place.
"""

import re

import jsonschema
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

# one path segment: no empty segment (//, trailing /), no "." nor ".."
_SEGMENT = r"/(?!\.\.?(?:/|$))[A-Za-z0-9._+-]{1,64}"
# a normalized absolute path, never "/" itself
ABSOLUTE_PATH = rf"^(?:{_SEGMENT}){{1,16}}$"
# a command looked up in the router's PATH, or an absolute path to it
COMMAND = rf"^(?:(?:{_SEGMENT}){{1,16}}|(?!\.\.?$)[A-Za-z0-9._+-]{{1,64}})$"
# system directories of OpenWrt: an image there would fill the flash
# overlay or break the system (RAM-backed /tmp, /mnt, /media... are fine)
SYSTEM_DIRECTORIES = (
    "bin",
    "boot",
    "dev",
    "etc",
    "lib",
    "overlay",
    "proc",
    "rom",
    "root",
    "sbin",
    "sys",
    "usr",
    "www",
)
STORAGE_DIR = rf"^(?!/(?:{'|'.join(SYSTEM_DIRECTORIES)})(?:/|$))(?:{_SEGMENT}){{1,16}}$"
# words of plain characters separated by single spaces, no ".."
TOOL_ARGS = r"^(?!.*\.\.)(?:[A-Za-z0-9._=/:+-]{1,64}(?: [A-Za-z0-9._=/:+-]{1,64})*)?$"
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
MODEM_MODEL = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# the image's name on the router is its sha256
SHA256 = r"^[0-9a-f]{64}$"
# a sysfs USB path (modem-upgrade.sh --usb-path)
USB_PATH = r"^[0-9]{1,3}-[0-9]{1,3}(?:\.[0-9]{1,3}){0,6}$"


# what each pattern allows, in words: shown instead of the pattern itself
PATTERN_MESSAGES = {
    ABSOLUTE_PATH: _(
        "an absolute path such as /tmp/modem.bin: parts of letters, digits "
        'and . _ + - separated by single "/", no "." or ".." part, no "/" at '
        "the end"
    ),
    COMMAND: _(
        "a command name such as uxfp, or its absolute path such as "
        "/usr/bin/uxfp: letters, digits and . _ + - only"
    ),
    STORAGE_DIR: format_lazy(
        _(
            "an absolute directory such as /tmp or /mnt/usb: parts of letters, "
            'digits and . _ + - separated by single "/", no "." or ".." part, '
            "and not a system directory ({system})"
        ),
        system=", ".join(f"/{name}" for name in SYSTEM_DIRECTORIES),
    ),
    TOOL_ARGS: _(
        "words of letters, digits and . _ = / : + - separated by single "
        'spaces, without ".."'
    ),
    VERSION: _("letters, digits and . _ + - only, e.g. M0R.010000-B022"),
    USB_PATH: _("a sysfs USB path such as 1-1.2"),
}


def pattern_message(pattern):
    """The shape ``pattern`` allows, in words (the pattern itself when it
    has no description)."""
    message = PATTERN_MESSAGES.get(pattern)
    if message:
        return str(message)
    return _("a value matching %(pattern)s") % {"pattern": pattern}


def full_match(pattern, value):
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


@deconstructible
class FullMatchValidator:
    """A model/serializer field validator applying ``pattern`` to the whole value."""

    def __init__(self, pattern, message):
        self.pattern = pattern
        self.message = message

    def __call__(self, value):
        if not full_match(self.pattern, value):
            raise ValidationError(self.message, code="invalid")

    def __eq__(self, other):
        return (
            isinstance(other, FullMatchValidator)
            and self.pattern == other.pattern
            and self.message == other.message
        )


version_validator = FullMatchValidator(
    VERSION, _("Letters, digits and . _ + - only, e.g. M0R.010000-B022.")
)
usb_path_validator = FullMatchValidator(USB_PATH, _("A sysfs USB path such as 1-1.2."))
modem_model_validator = FullMatchValidator(
    MODEM_MODEL,
    _("Use the exact model/variant reported by the modem, e.g. FN990A28."),
)


def _pattern_full_match(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not full_match(pattern, instance):
        yield jsonschema.ValidationError(
            _("%(value)s is not %(shape)s")
            % {"value": repr(instance), "shape": pattern_message(pattern)}
        )


# JSON schema validation of upgrade options: "pattern" is a full match
OptionsValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"pattern": _pattern_full_match}
)
