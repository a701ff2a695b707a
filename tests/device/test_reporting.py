"""Progress reports of modem-upgrade.sh: format, catch-up after a link loss,
409, escaping, and the wget fallback."""

import os
import signal
import socket
import time

from openwisp_modem_upgrader.device_contract import REPORT_FIELDS, REPORT_STATES

from .helpers import OPERATION_ID, ReportServer, RouterTestCase, delivered_messages
from .test_modem_upgrade import wait_for

KEY = "devicekey0123456789abcdef"


class ReportTestCase(RouterTestCase):
    def serve(self, **kwargs):
        server = ReportServer(**kwargs)
        self.addCleanup(server.stop)
        return server

    def use_uci(self, url):
        self.router.set_uci(
            **{
                "openwisp.http.url": url,
                "openwisp.http.uuid": "5f0d2b0e-0000-4000-8000-000000000001",
                "openwisp.http.key": KEY,
            }
        )

    def assert_all_delivered(self, server):
        """Every journal record reached the server, in order, once the
        records it had already seen are ignored by seq."""
        records = self.journal()
        delivered = delivered_messages(server.bodies)
        self.assertEqual(delivered, [r[4] for r in records])
        final = server.bodies[-1]
        self.assertEqual(final["seq"], int(records[-1][0]))
        self.assertEqual(final["status"], records[-1][2])
        self.assertEqual(final["progress_percent"], int(records[-1][3]))
        with open(os.path.join(self.opdir(), "acked")) as f:
            self.assertEqual(f.read().strip(), records[-1][0])


class TestReports(ReportTestCase):
    def test_reports_use_uci_credentials(self):
        server = self.serve()
        self.use_uci(server.url)
        result = self.upgrade(final_report_timeout="5")
        self.assert_finished(result, 0, "success")
        self.assert_all_delivered(server)
        request = server.requests[-1]
        self.assertEqual(
            request["path"],
            f"/api/v1/modem-upgrader/upgrade-operation/{OPERATION_ID}/",
        )
        self.assertEqual(request["query"], {"key": [KEY]})
        self.assertEqual(request["content_type"], "application/json")
        self.assertEqual(server.bodies[-1]["status"], "success")
        self.assertEqual(server.bodies[-1]["progress_percent"], 100)
        # the fields and states the server's device-report view accepts
        for body in server.bodies:
            self.assertEqual(set(body), REPORT_FIELDS)
            self.assertIn(body["status"], REPORT_STATES)

    def test_arguments_win_over_uci(self):
        server = self.serve()
        self.use_uci("http://127.0.0.1:9")
        result = self.upgrade(
            report_url=server.url + "/", device_key="otherkey", final_report_timeout="5"
        )
        self.assert_finished(result, 0, "success")
        self.assertEqual(server.requests[-1]["query"], {"key": ["otherkey"]})
        self.assert_all_delivered(server)

    def test_catch_up_after_link_loss(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # nothing listens during the whole flash: the uplink is gone
        process = self.start_upgrade(
            report_url=f"http://127.0.0.1:{port}",
            device_key=KEY,
            final_report_timeout="20",
        )
        exit_code = os.path.join(self.opdir(), "exit_code")
        self.assertTrue(wait_for(lambda: os.path.exists(exit_code)))
        time.sleep(0.3)
        self.assertIsNone(process.poll(), "the reporter gave up while offline")
        server = self.serve(port=port)
        self.assertEqual(process.wait(timeout=60), 0)
        self.assertEqual(self.journal()[-1][2], "success")
        self.assert_all_delivered(server)

    def test_sigterm_while_waiting_for_the_link_keeps_the_outcome(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = self.start_upgrade(
            report_url=f"http://127.0.0.1:{port}",
            device_key=KEY,
            final_report_timeout="60",
        )
        exit_code = os.path.join(self.opdir(), "exit_code")
        self.assertTrue(wait_for(lambda: os.path.exists(exit_code)))
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=60), 0)
        self.assertEqual(self.journal()[-1][2], "success")
        self.assertFalse(os.path.exists(os.path.join(self.opdir(), "pid")))
        self.assertFalse(os.path.exists(os.path.join(self.opdir(), "lock")))

    def test_conflict_stops_reporting(self):
        server = self.serve(status=409)
        self.use_uci(server.url)
        result = self.upgrade(final_report_timeout="5")
        self.assert_finished(result, 0, "success")
        self.assertEqual(len(server.requests), 1)
        self.assertTrue(os.path.exists(os.path.join(self.opdir(), "report-stopped")))

    def test_log_is_json_escaped(self):
        server = self.serve()
        self.use_uci(server.url)
        result = self.upgrade(tool_args="--debug", final_report_timeout="5")
        self.assert_finished(result, 0, "success")
        log = "\n".join(body["log"] for body in server.bodies)
        self.assertIn('[d] device said "READY"\\ok baud=115200', log)
        self.assert_all_delivered(server)


class TestReportsWithWget(ReportTestCase):
    router_options = {"curl": False}

    def test_wget_fallback(self):
        server = self.serve()
        self.use_uci(server.url)
        result = self.upgrade(final_report_timeout="5")
        self.assert_finished(result, 0, "success")
        self.assert_all_delivered(server)

    def test_wget_conflict(self):
        server = self.serve(status=409)
        self.use_uci(server.url)
        result = self.upgrade(final_report_timeout="5")
        self.assert_finished(result, 0, "success")
        self.assertEqual(len(server.requests), 1)
