"""WSGI entry point of the test project (gunicorn in the load benchmark)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
# the routers' progress reports before Django's middleware and URL resolver
# (docs/developer/sizing.rst); imported once Django is set up
application = get_wsgi_application()

from openwisp_modem_upgrader.api.report_route import (  # noqa: E402
    route_device_reports,
)

application = route_device_reports(application)
