from django.utils.translation import gettext_lazy as _

from .wrapper import WrapperUpgrader, wrapper_options


class GenericCommandUpgrader(WrapperUpgrader):
    """Runs a customer-installed flashing command through the same wrapper.

    The command must accept ``--file <image> --port <port>`` and may print
    progress lines in the documented format (see the device contract).
    """

    label = _("Generic flashing command")
    # any model: a catch-all that detection does not count as knowing one
    supported_models = None
    SCHEMA = wrapper_options(
        "Generic flashing command options",
        tool_path={"title": "Flashing command on the router: absolute path or name"},
        tool_args_title="Extra arguments for the command",
        required=["tool_path"],
    )
