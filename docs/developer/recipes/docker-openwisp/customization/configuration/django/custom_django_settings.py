"""openwisp-modem-upgrader in docker-openwisp (docs/developer/deployment.rst).

docker-openwisp's settings.py ends with ``from .configuration.custom_django_settings
import *``: this module does not see the names settings.py defined, so it
imports the ones it changes (as the images' module_settings.py do).
"""

from openwisp.celery import task_routes
from openwisp.settings import (
    CELERY_BROKER_TRANSPORT_OPTIONS,
    INSTALLED_APPS,
    MIDDLEWARE,
)

# after openwisp_controller.connection and openwisp_controller.geo
INSTALLED_APPS.insert(
    INSTALLED_APPS.index("openwisp_controller.connection") + 1,
    "openwisp_modem_upgrader",
)

# firmware uploads spooled to disk and hashed while they stream in
FILE_UPLOAD_HANDLERS = ["openwisp_modem_upgrader.uploads.HashingUploadHandler"]

# routers' progress reports answered before the URL resolver and the rest of
# the middleware (docs/developer/sizing.rst)
MIDDLEWARE.insert(0, "openwisp_modem_upgrader.api.report_route.DeviceReportMiddleware")

# the module's URLs (admin downloads, REST API, routers' progress reports) and
# websocket routes, added to those of each image (files beside this one)
ROOT_URLCONF = "openwisp.configuration.modem_upgrader_urls"

# Celery takes CELERY_TASK_ROUTES from here over the routes openwisp/celery.py
# passes to Celery(): keep those (network, monitoring, firmware_upgrader)
_CONTROL = {"queue": "modem_upgrader_control"}
CELERY_TASK_ROUTES = {
    **task_routes,
    # short tasks: the driver, dispatch, follow-ups, the batch fan-out
    "openwisp_modem_upgrader.drive_modem_upgrades": _CONTROL,
    "openwisp_modem_upgrader.fail_stuck_operations": _CONTROL,
    "openwisp_modem_upgrader.dispatch_modem_upgrades": _CONTROL,
    "openwisp_modem_upgrader.follow_modem_upgrade": _CONTROL,
    "openwisp_modem_upgrader.fan_out_batch": _CONTROL,
    # the transfers, and every other task of the module (modem detection)
    "openwisp_modem_upgrader.*": {"queue": "modem_upgrader"},
}

# above the longest worker part of an upgrade (see "Worker count and time limits")
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = 3900
