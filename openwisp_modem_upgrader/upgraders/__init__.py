"""Registry of modem upgraders, keyed by the firmware image's upgrader type."""

from django.utils.module_loading import import_string

from .. import settings as app_settings


def get_upgrader_class(upgrader_type):
    """Returns the upgrader class registered for ``upgrader_type``.

    Raises ``LookupError`` when the type is not in OPENWISP_MODEM_UPGRADERS_MAP.
    """
    try:
        path = app_settings.UPGRADERS_MAP[upgrader_type]
    except KeyError:
        raise LookupError(f'No modem upgrader registered for type "{upgrader_type}"')
    return import_string(path)


def get_upgrader_choices():
    choices = []
    for upgrader_type in app_settings.UPGRADERS_MAP:
        label = getattr(get_upgrader_class(upgrader_type), "label", upgrader_type)
        choices.append((upgrader_type, label))
    return choices
