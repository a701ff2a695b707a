# registers this module's admin pages for the swapped models
from openwisp_modem_upgrader.admin import *  # noqa
