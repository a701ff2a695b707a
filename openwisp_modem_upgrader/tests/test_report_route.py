"""The routers' progress reports on their own route, served before Django's
URL resolver and middleware (``api/report_route.py``), with the same
answers as through the URLconf."""

import json
from unittest import mock, skipUnless

from django.contrib.sessions.middleware import SessionMiddleware
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connection
from django.test import RequestFactory, TestCase, TransactionTestCase
from django.urls import reverse
from django.urls.resolvers import URLResolver

from ..api.report_route import report_operation, route_device_reports
from ..base.models import OperationStatus
from ..upgrade import mark_in_progress, start_upgrade
from . import ModemUpgradeOperation, TestModemUpgraderMixin

REPORT = {"progress_percent": 40, "status": "in-progress", "log": "a", "seq": 1}


class ReportMixin(TestModemUpgraderMixin):
    def setUp(self):
        self.device = self._create_modem_device()
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            self.operation = start_upgrade(self.device, self._create_image())
        mark_in_progress(self.operation.pk)
        self.url = reverse("modem_upgrader:api_device_report", args=[self.operation.pk])

    def _reload(self):
        return ModemUpgradeOperation.objects.get(pk=self.operation.pk)


class TestReportRoute(ReportMixin, TestCase):
    def test_same_path_for_operators_and_routers(self):
        self.assertEqual(
            self.url,
            reverse(
                "modem_upgrader:api_upgrade_operation_detail", args=[self.operation.pk]
            ),
        )
        # the operators' GET of the same URL: their view and permissions
        self.assertIn(self.client.get(self.url).status_code, (401, 403))
        self.client.force_login(self._get_admin())
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["id"], str(self.operation.pk))

    def test_report_skips_the_resolver_and_the_other_middleware(self):
        with mock.patch.object(
            URLResolver, "resolve", side_effect=AssertionError("resolved")
        ), mock.patch.object(
            SessionMiddleware, "process_request", side_effect=AssertionError("session")
        ):
            response = self.client.post(
                f"{self.url}?key={self.device.key}",
                json.dumps(REPORT),
                content_type="application/json",
            )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual((self._reload().progress, self._reload().device_seq), (40, 1))

    def test_matches_only_reports(self):
        pk = self.operation.pk
        self.assertEqual(report_operation("POST", self.url), pk)
        self.assertEqual(report_operation("PATCH", self.url), pk)
        for method, path in (
            ("GET", self.url),
            ("PUT", self.url),
            ("POST", self.url.rstrip("/")),
            ("POST", self.url + "cancel/"),
            ("POST", self.url.replace(str(pk), str(pk).upper())),
            ("POST", "/x" + self.url),
        ):
            with self.subTest(method=method, path=path):
                self.assertIsNone(report_operation(method, path))


class TestWsgiEntry(ReportMixin, TestCase):
    """``route_device_reports`` answers reports itself, exactly as the
    URLconf would, and passes everything else to Django."""

    def setUp(self):
        super().setUp()
        # as Django's test client: a request's start and end must not close
        # the test's transaction
        for signal in (signals.request_started, signals.request_finished):
            signal.disconnect(close_old_connections)
            self.addCleanup(signal.connect, close_old_connections)
        self.django = mock.Mock(side_effect=WSGIHandler())
        self.entry = route_device_reports(self.django)

    def _call(self, method, path, body=None, **params):
        factory = RequestFactory()
        data = json.dumps(body) if isinstance(body, dict) else (body or "")
        request = getattr(factory, method.lower())(
            path + ("?" + "&".join(f"{k}={v}" for k, v in params.items())),
            data=data,
            content_type="application/json",
        )
        answer = {}

        def start_response(status, headers):
            answer["status"], answer["headers"] = int(status.split()[0]), headers

        response = self.entry(request.environ, start_response)
        body = b"".join(response)
        response.close()
        return answer["status"], body

    def test_report_answered_without_django_handler(self):
        status, body = self._call("POST", self.url, REPORT, key=self.device.key)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"applied": True, "status": "in-progress"})
        self.django.assert_not_called()
        # the replay takes the general path (DRF), rendered the same way
        status, body = self._call("PATCH", self.url, REPORT, key=self.device.key)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["applied"], False)
        self.django.assert_not_called()
        self.assertEqual(self._reload().device_seq, 1)

    def test_refusals_unchanged_and_nothing_written(self):
        other_org = self._create_org(name="other", slug="other")
        foreign = self._create_modem_device(
            organization=other_org, name="foreign", mac_address="00:00:00:00:0f:01"
        )
        cases = [
            (REPORT, {"key": "wrong"}, 403),
            (REPORT, {}, 403),
            # another organization's device key
            (REPORT, {"key": foreign.key}, 403),
            ({"progress_percent": 101, "status": "in-progress"}, None, 400),
            ({"status": "in-progress"}, None, 400),
            ("{not json", None, 400),
            (dict(REPORT, extra=1), None, 400),
        ]
        for body, params, expected in cases:
            params = {"key": self.device.key} if params is None else params
            with self.subTest(body=body, params=params):
                status, content = self._call("POST", self.url, body, **params)
                self.assertEqual(status, expected, content)
        operation = self._reload()
        self.assertEqual((operation.progress, operation.device_seq), (0, 0))
        status, _ = self._call(
            "POST",
            reverse("modem_upgrader:api_device_report", args=[foreign.pk]),
            REPORT,
            key=self.device.key,
        )
        self.assertEqual(status, 404)
        self.django.assert_not_called()

    def test_finished_operation_refused(self):
        ModemUpgradeOperation.objects.filter(pk=self.operation.pk).update(
            status=OperationStatus.SUCCESS
        )
        status, _ = self._call("POST", self.url, REPORT, key=self.device.key)
        self.assertEqual(status, 409)

    def test_other_requests_go_to_django(self):
        self._call("GET", self.url)
        self._call("POST", self.url + "cancel/", {})
        self.assertEqual(self.django.call_count, 2)


class TestHealthCheckNotPaidPerReport(ReportMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        # a persistent connection checked before reuse, as deployments run
        patcher = mock.patch.dict(connection.settings_dict, CONN_HEALTH_CHECKS=True)
        patcher.start()
        self.addCleanup(patcher.stop)
        connection.health_check_enabled = True
        self.addCleanup(setattr, connection, "health_check_enabled", False)

    def _post(self, seq):
        return self.client.post(
            f"{self.url}?key={self.device.key}",
            json.dumps(dict(REPORT, seq=seq)),
            content_type="application/json",
        )

    def test_no_health_check_round_trip(self):
        connection.ensure_connection()
        with mock.patch.object(
            connection, "is_usable", wraps=connection.is_usable
        ) as is_usable:
            for seq in (1, 2, 3):
                self.assertEqual(self._post(seq).status_code, 200)
        is_usable.assert_not_called()
        self.assertEqual(self._reload().device_seq, 3)

    @skipUnless(
        connection.vendor == "postgresql",
        "SQLite's in-memory test database dies with its connection",
    )
    def test_dead_connection_reopened_and_report_applied(self):
        connection.ensure_connection()
        # the server side went away (PostgreSQL restarted) without Django knowing
        connection.connection.close()
        response = self._post(1)
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["applied"], True)
        self.assertEqual(self._reload().device_seq, 1)
