from django.utils.translation import gettext_lazy as _

from .wrapper import WrapperUpgrader, wrapper_options


class TelitFN990AUpgrader(WrapperUpgrader):
    label = _("Telit FN990A (uxfp)")
    # FN990A28, FN990A40... (the variant is checked against the build's model)
    modem_model_pattern = r"FN990A[0-9A-Z]*"
    SCHEMA = wrapper_options(
        "Telit FN990A upgrade options",
        tool_path={
            "title": "uxfp on the router: absolute path or command name",
            "default": "uxfp",
        },
        tool_args_title="Extra arguments for the tool (e.g. --speed 921600)",
    )
