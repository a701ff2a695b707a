"""Shared pieces of the device-script tests: a router per test, the wrapper's
command line, journal checks and a recording report server."""

import json
import os
import subprocess
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from .firmware import write_firmware_stream
from .router import DEVICE_SCRIPTS, EmulatedRouter

UPGRADE = os.path.join(DEVICE_SCRIPTS, "modem-upgrade.sh")
MODEM_INFO = os.path.join(DEVICE_SCRIPTS, "modem-info.sh")
NEW_VERSION = "M0R.010000-B022"
OLD_VERSION = "M0R.010000-B020"
OPERATION_ID = "0b5e6a1c-4f7e-4d3a-9c1e-2a7b8c9d0e1f"
TERMINAL = {"success", "failed", "aborted"}


class RouterTestCase(unittest.TestCase):
    router_options = {}
    modem = {"flash_duration": 0.1, "reboot_delay": 0.1}

    def setUp(self):
        options = dict(ssh=False, uci={})
        options.update(self.router_options)
        self.router = EmulatedRouter(**options, **self.modem)
        self.router.start()
        self.addCleanup(self.router.stop)

    def firmware(self, version=NEW_VERSION, name="fw.bin", **kwargs):
        path = os.path.join(self.router.tmp_dir, name)
        return path, write_firmware_stream(path, version, **kwargs)

    def upgrade_args(self, operation_id=OPERATION_ID, **overrides):
        """The wrapper's arguments; ``overrides`` use option names with
        underscores, ``None`` drops an option, ``True`` makes it a flag."""
        if "firmware" not in overrides:
            path, sha = self.firmware()
            overrides.setdefault("sha256", sha)
            overrides["firmware"] = path
        options = {
            "operation_id": operation_id,
            "expected_version": NEW_VERSION,
            "expected_model": "FN990A28",
            "workdir": self.router.tmp_dir,
            "flash_timeout": "5",
            "reboot_timeout": "3",
            "report_interval": "0.2",
            "final_report_timeout": "0",
            "http_timeout": "2",
        }
        options.update(overrides)
        args = []
        for name, value in options.items():
            if value is None or value is False:
                continue
            args.append("--" + name.replace("_", "-"))
            if value is not True:
                args.append(value)
        return args

    def upgrade(self, timeout=30, env=None, **overrides):
        args = [UPGRADE, *self.upgrade_args(**overrides)]
        return self.router.run(args, timeout=timeout, env=env)

    def start_upgrade(self, **overrides):
        """Starts the wrapper without waiting (for busy and signal tests)."""
        args = [UPGRADE, *self.upgrade_args(**overrides)]
        process = subprocess.Popen(
            [os.path.join(self.router.bin_dir, "ash"), *args],
            env=self.router.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(_reap, process)
        return process

    def opdir(self, operation_id=OPERATION_ID):
        return os.path.join(self.router.tmp_dir, operation_id)

    def journal(self, operation_id=OPERATION_ID):
        path = os.path.join(self.opdir(operation_id), "journal")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [line.rstrip("\n").split("\t") for line in f]

    def assert_finished(self, result, code, status, operation_id=OPERATION_ID):
        """Checks the exit code and every journal invariant; returns the
        journal's messages."""
        self.assertEqual(result.returncode, code, (result.stderr, self.journal()))
        records = self.journal(operation_id)
        self.assertTrue(records)
        percent = 0
        for number, record in enumerate(records, start=1):
            self.assertEqual(len(record), 5, record)
            seq, epoch, state, pct, _ = record
            self.assertEqual(int(seq), number)
            self.assertGreater(int(epoch), 1_600_000_000)
            self.assertIn(state, TERMINAL | {"in-progress"})
            self.assertGreaterEqual(int(pct), percent, records)
            self.assertLessEqual(int(pct), 100)
            percent = int(pct)
            if number < len(records):
                self.assertEqual(state, "in-progress", records)
        self.assertEqual(records[-1][2], status, records[-1])
        opdir = self.opdir(operation_id)
        with open(os.path.join(opdir, "exit_code")) as f:
            self.assertEqual(f.read().strip(), str(code))
        self.assertFalse(os.path.exists(os.path.join(opdir, "pid")))
        self.assertFalse(os.path.exists(os.path.join(opdir, "lock")))
        self.assert_ports_released()
        return [record[4] for record in records]

    def assert_ports_released(self):
        state = self.router.modem_state()
        self.assertIsNone(state["inhibited_by"], "ModemManager left inhibited")
        self.assertEqual(state["daemon"], "running")

    def tool_calls(self):
        return [e[1:] for e in self.router.modem_state()["events"] if e[0] == "uxfp"]


def delivered_messages(bodies):
    """Journal messages as a server rebuilds them from reports: ``log`` has
    one line per record, the last one being record ``seq``; a record seen
    before (a report retried after a lost answer) is ignored."""
    messages, last_seq = [], 0
    for body in bodies:
        lines = body["log"].split("\n")
        first = body["seq"] - len(lines) + 1
        for seq, line in enumerate(lines, start=first):
            if seq > last_seq:
                messages.append(line)
                last_seq = seq
    return messages


def _reap(process):
    if process.poll() is None:
        process.kill()
    process.wait()


class ReportServer:
    """A stdlib HTTP server on 127.0.0.1 recording progress reports."""

    def __init__(self, port=0, status=200, host="127.0.0.1"):
        self.status = status
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                url = urlparse(self.path)
                server.requests.append(
                    {
                        "path": url.path,
                        "query": parse_qs(url.query),
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(body),
                    }
                )
                self.send_response(server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def bodies(self):
        return [r["body"] for r in self.requests]
