"""The routers' progress reports, routed before Django's URL resolver and
middleware (docs/developer/sizing.rst).

A report is authenticated by its device key and answered by
``device.device_report`` alone: no session, user, CSRF token or message
middleware concerns it, and resolving its URL through the project's URL
list cost a quarter of a report's CPU. Two documented ways skip both:

- ``route_device_reports(application)`` wraps the project's WSGI
  application (``wsgi.py``), so a report skips Django's request signals and
  middleware too;
- ``DeviceReportMiddleware``, first in ``MIDDLEWARE``, for projects that
  keep their WSGI file.

Either serves exactly what the URL ``modem_upgrader:api_device_report``
serves to POST and PATCH; every other request goes on unchanged.
"""

import re
import uuid
from functools import lru_cache

from django.conf import settings
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import (
    WSGIHandler,
    WSGIRequest,
    get_path_info,
    get_script_name,
)
from django.urls import get_script_prefix, reverse, set_script_prefix

from .device import device_report

REPORT_METHODS = ("POST", "PATCH")
# Django's <uuid:...> converter
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@lru_cache(maxsize=1)
def _report_path():
    """The report URL's path (after the script name) as a regex, from the
    URLconf: wherever the project includes this app's URLs."""
    placeholder = str(uuid.UUID(int=0))
    url = reverse("modem_upgrader:api_device_report", args=[placeholder])
    path = "/" + url[len(get_script_prefix()) :]
    before, after = path.split(placeholder)
    return re.compile(f"{re.escape(before)}(?P<pk>{_UUID}){re.escape(after)}")


def report_operation(method, path_info):
    """The operation id when this is a device report, else ``None``."""
    if method not in REPORT_METHODS:
        return None
    match = _report_path().fullmatch(path_info)
    return uuid.UUID(match["pk"]) if match else None


def serve_report(request, pk):
    """The report's response, rendered; an unexpected error becomes the
    response Django would have given (and is logged)."""
    try:
        response = device_report(request, pk=pk)
        if callable(getattr(response, "render", None)):
            response = response.render()  # DRF's responses (general path)
    except Exception as error:
        response = response_for_exception(request, error)
    return response


class DeviceReportMiddleware:
    """Serves device reports before the rest of the middleware and the URL
    resolver; put it first in ``MIDDLEWARE``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        pk = report_operation(request.method, request.path_info)
        if pk is None or _needs_ssl_redirect(request):
            return self.get_response(request)
        return serve_report(request, pk)


def _needs_ssl_redirect(request):
    # SecurityMiddleware would redirect a plain HTTP request: let it
    return settings.SECURE_SSL_REDIRECT and not request.is_secure()


def route_device_reports(application):
    """A WSGI application that answers device reports itself and passes
    every other request to ``application`` (Django's)::

        application = route_device_reports(get_wsgi_application())
    """

    def entry(environ, start_response):
        pk = report_operation(environ.get("REQUEST_METHOD"), get_path_info(environ))
        if pk is None:
            return application(environ, start_response)
        set_script_prefix(get_script_name(environ))
        request = WSGIRequest(environ)
        if _needs_ssl_redirect(request):
            return application(environ, start_response)
        response = serve_report(request, pk)
        # response.close() sends request_finished, which closes a database
        # connection past CONN_MAX_AGE as after any request
        response._handler_class = WSGIHandler
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            list(response.items()),
        )
        return response

    return entry
