from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .stream_checks import archive_kind, header_version, is_text
from .wrapper import WrapperUpgrader, wrapper_options


class TelitFN990AUpgrader(WrapperUpgrader):
    label = gettext_lazy("Telit FN990A (uxfp)")
    # FN990A28, FN990A40... (the variant is checked against the build's model)
    supported_models = r"FN990A[0-9A-Z]*"
    # the software version in an FN990A stream's header starts so (the
    # wrapper gets it too: --stream-prefix)
    stream_version_prefix = "45."
    # AT#GETFW / AT#ACTIVEFW (docs/user/device-contract.rst, assumed answers)
    selects_carrier_images = True
    SCHEMA = wrapper_options(
        "Telit FN990A upgrade options",
        tool_path={
            "title": "uxfp on the router: absolute path or command name",
            "default": "uxfp",
        },
        tool_args_title="Extra arguments for the tool (e.g. --speed 921600)",
    )

    @classmethod
    def check_image(cls, head, size, build):
        """An FN990A image is one binary stream ``.bin`` whose header carries
        the software version (``45.`` prefix): archives, text files and
        streams whose header names another chipset are refused. A header
        with no readable version is accepted (the stream format is not
        public); the router's wrapper and uxfp check again."""
        kind = archive_kind(head)
        if kind:
            raise ValidationError(
                _(
                    "This file is a %(kind)s archive, not a firmware stream: "
                    "upload the stream (.bin) it contains."
                )
                % {"kind": kind}
            )
        if is_text(head):
            start = head[:40].decode("utf-8", "replace").strip()
            raise ValidationError(
                _(
                    'This file is text ("%(start)s"), not a firmware stream: '
                    "upload the binary stream (.bin) uxfp flashes."
                )
                % {"start": " ".join(start.split())}
            )
        version = header_version(head)
        if version and not version.startswith(cls.stream_version_prefix):
            raise ValidationError(
                _(
                    "This stream's header carries the software version "
                    "%(version)s, which is for another chipset: FN990A streams "
                    'carry a version starting with "%(prefix)s".'
                )
                % {"version": version, "prefix": cls.stream_version_prefix}
            )
