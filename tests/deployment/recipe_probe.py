"""Loads one deployment's Django project and reports what it became.

Run by check_recipes.py in a fresh interpreter per service, with the
project's directory first on sys.path, its environment, and a JSON request
as the only argument; prints one JSON line. Nothing here connects anywhere:
django.setup() opens no database or broker connection.
"""

import io
import json
import sys
import traceback
from importlib import import_module

# the project's directory first: the deployment check's own test project
# beside this script (tests/deployment/openwisp2) would shadow ansible's
# openwisp2, since a script's directory comes before PYTHONPATH
sys.path.append(sys.path.pop(0))


def offline_tldextract():
    # docker-openwisp's settings call tldextract.extract(), which would fetch
    # the public suffix list: use the list bundled with tldextract
    try:
        from tldextract import tldextract
    except ImportError:
        return
    tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(
        cache_dir=None, suffix_list_urls=()
    )


def influxdb_stand_in():
    """openwisp-monitoring creates its InfluxDB database when Django starts:
    a loopback HTTP stand-in answers (empty results), in place of the
    InfluxDB the deployment runs."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = b'{"results": [{"statement_id": 0}]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def queue_of(app, name):
    return app.amqp.router.route({}, name)["queue"].name


def find_url_router(application, depth=0):
    from channels.routing import URLRouter

    if isinstance(application, URLRouter) or depth > 10:
        return application
    for attribute in ("application_mapping", "inner", "application", "app"):
        inner = getattr(application, attribute, None)
        if isinstance(inner, dict):
            inner = inner.get("websocket")
        if inner is not None:
            found = find_url_router(inner, depth + 1)
            if found is not None:
                return found
    return None


def upload_with_configured_handlers():
    """A multipart upload parsed as a request to the project would be."""
    import hashlib

    from django.http.multipartparser import MultiPartParser
    from django.test import RequestFactory

    content = b"\x7fFIRMWARE" * 1000
    request = RequestFactory().post(
        "/", {"file": io.BytesIO(content)}, format="multipart"
    )
    request.upload_handlers  # built from FILE_UPLOAD_HANDLERS
    parser = MultiPartParser(
        request.META,
        io.BytesIO(request.body),
        request.upload_handlers,
        request.encoding,
    )
    _, files = parser.parse()
    uploaded = files["file"]
    return {
        "handlers": [
            type(h).__module__ + "." + type(h).__name__ for h in request.upload_handlers
        ],
        "sha256_while_streaming": getattr(uploaded, "modem_sha256", None)
        == hashlib.sha256(content).hexdigest(),
        "spooled_to_disk": hasattr(uploaded, "temporary_file_path"),
    }


def device_report_route(project):
    """How the project's WSGI application answers a router's report: the
    report route (api/report_route.py) stubbed to answer 299, and the URL
    resolver watched. Served by the fast route: 299, nothing resolved."""
    from unittest import mock
    from wsgiref.util import setup_testing_defaults

    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import reverse
    from django.urls.resolvers import URLResolver

    from openwisp_modem_upgrader.api import report_route

    try:
        application = import_module(f"{project}.wsgi").application
    except ImportError:
        application = WSGIHandler()
    path = reverse(
        "modem_upgrader:api_device_report",
        args=["00000000-0000-0000-0000-000000000001"],
    )
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "HTTPS": "on"}
    environ["wsgi.url_scheme"] = "https"
    setup_testing_defaults(environ)
    answered = []
    resolve = URLResolver.resolve
    resolved = []

    def watched(self, *args, **kwargs):
        resolved.append(True)
        return resolve(self, *args, **kwargs)

    with mock.patch.object(
        report_route, "serve_report", lambda request, pk: HttpResponse(status=299)
    ), mock.patch.object(URLResolver, "resolve", watched):
        try:
            body = application(environ, lambda status, headers: answered.append(status))
            b"".join(body)
        except Exception as error:  # a DB or host error: not the fast route
            answered.append(f"error {error!r}"[:300])
    return {"status": answered[0] if answered else None, "resolved": bool(resolved)}


def worker_options(app, command):
    """Parses a worker command line as the celery program does."""
    from celery.bin.celery import celery as celery_cli

    args = command[command.index("worker") + 1 :]
    worker = celery_cli.commands["worker"]
    from celery.bin.base import CLIContext

    parent = celery_cli.make_context(
        "celery", ["-A", "x", "worker"], resilient_parsing=True
    )
    parent.obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    context = worker.make_context("worker", list(args), parent=parent)
    return {
        key: list(value) if isinstance(value, (list, tuple)) else value
        for key, value in context.params.items()
        if isinstance(value, (str, int, list, tuple)) or value is None
    }


def main():
    request = json.loads(sys.argv[1])
    offline_tldextract()
    project = import_module(request["project"])  # builds the Celery app
    app = project.celery_app
    stock_beat = set((getattr(app, "_preconf", {}) or {}).get("beat_schedule", {}))
    stock_routes = dict(
        getattr(import_module(request["project"] + ".celery"), "task_routes", {}) or {}
    )
    report = {"stock_beat": sorted(stock_beat), "stock_routes": stock_routes}
    import django
    from django.conf import settings

    # the stock entries, before the module adds its own to the same dict
    report["stock_beat"] = sorted(
        stock_beat | set(getattr(settings, "CELERY_BEAT_SCHEDULE", {}) or {})
    )
    if hasattr(settings, "TIMESERIES_DATABASE"):
        report["timeseries_database_host"] = settings.TIMESERIES_DATABASE["HOST"]
        settings.TIMESERIES_DATABASE.update(HOST="127.0.0.1", PORT=influxdb_stand_in())
    django.setup()

    import openwisp_modem_upgrader
    from openwisp_modem_upgrader import settings as module_settings

    report["module_file"] = openwisp_modem_upgrader.__file__
    report["module_max_file_size"] = module_settings.MAX_FILE_SIZE
    report["installed_apps"] = list(settings.INSTALLED_APPS)
    report["root_urlconf"] = settings.ROOT_URLCONF
    report["max_request_size"] = getattr(settings, "MAX_REQUEST_SIZE", None)
    report["file_upload_handlers"] = list(settings.FILE_UPLOAD_HANDLERS)
    report["upload"] = upload_with_configured_handlers()

    app.loader.import_default_modules()  # what a worker does: autodiscovery
    names = sorted(n for n in app.tasks if n.startswith("openwisp_modem_upgrader."))
    report["module_task_queues"] = {n: queue_of(app, n) for n in names}
    report["probe_queues"] = {
        n: queue_of(app, n) for n in request.get("route_probes", [])
    }
    report["broker_transport_options"] = dict(app.conf.broker_transport_options or {})

    from celery.beat import Scheduler

    scheduler = Scheduler(app=app, lazy=False)
    report["beat"] = {name: entry.task for name, entry in scheduler.schedule.items()}

    from django.urls import Resolver404, resolve

    report["urls"] = {}
    for path in request.get("urls", []):
        try:
            report["urls"][path] = resolve(path).func.__module__
        except Resolver404:
            report["urls"][path] = None

    report["device_report_route"] = device_report_route(request["project"])

    if request.get("asgi"):
        application = import_module(request["asgi"]).application
        router = find_url_router(application)
        report["websocket_routes"] = (
            [str(route.pattern) for route in router.routes] if router else None
        )
    report["workers"] = [worker_options(app, c) for c in request.get("workers", [])]
    return report


if __name__ == "__main__":
    try:
        result = main()
    except Exception:
        result = {"error": traceback.format_exc()}
    sys.stdout.flush()
    print("PROBE " + json.dumps(result, default=str))
