#!/usr/bin/env python
"""Device-facing load: progress reports from many routers at once.

Usage (as root, from the repository; takes about 2 minutes):

    .venv/bin/python benchmarks/device_report_load.py [--operations 1000]
        [--connections 16] [--duration 30] [--server gunicorn]
        [--compare-servers] [--skip-controller]

Starts, on loopback only, everything it needs and stops it at the end: the
PostgreSQL cluster of ``scripts/postgres.sh`` (port ``POSTGRES_PORT``,
database ``modem_upgrader_load``, migrated and seeded with ``--operations``
operations in progress, one per router), a Redis server (``--redis-port``)
for the channel layer and the cache, and the test project
(``tests/openwisp2``, ``openwisp2.load_settings``: DEBUG off, persistent
database connections) under a production-style server with 2 workers:

- ``gunicorn``: gunicorn WSGI, gthread workers (keep-alive connections);
- ``gunicorn-sync``: gunicorn WSGI, sync workers (a connection per request);
- ``uvicorn``: uvicorn ASGI (``openwisp2.asgi:application``), 2 workers;
- ``daphne``: daphne ASGI, one process (daphne has no worker processes).

The client simulates routers the way ``device-scripts/lib/report.sh``
reports: each operation POSTs (sometimes PATCHes) ``{"seq",
"progress_percent", "status", "log"}`` to its
``/api/v1/modem-upgrader/upgrade-operation/<id>/?key=<device key>``, with
one to three journal lines per report, the ``seq`` of the last one, and one
report in twenty replayed (as after a link loss: the server must answer 200
with ``applied: false``). A router sends its next report only after the
answer to the previous one. The client is a plain asyncio HTTP/1.1 client
with keep-alive connections; its CPU use is printed, so it can be told apart
from the server's.

For ``--duration`` seconds each, it then measures this module's endpoint and,
on the same server, openwisp-controller's own device endpoint
(``POST /controller/device/report-status/<id>/`` with ``key`` and
``status=applied``) as the reference, and prints requests/s, p50/p99
latency, errors, the CPU each process group used (cores), the Redis
commands and channel-layer messages per report, and finally where the time
of one report goes (SQL queries and their time, a cProfile of the request in
one process).
"""

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TESTS = os.path.join(ROOT, "tests")
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
DB_NAME = "modem_upgrader_load"
REPORT_PATH = "/api/v1/modem-upgrader/upgrade-operation/{pk}/?key={key}"
CONTROLLER_PATH = "/controller/device/report-status/{pk}/"
REPLAY_EVERY = 20
# the cluster of scripts/postgres.sh (PG_DIR, as that script reads it)
PG_DIR = os.environ.get("PG_DIR") or os.path.join(ROOT, ".pg")
SERVER_LOG = os.path.join(PG_DIR, "load-server.log")
SERVERS = ("gunicorn", "gunicorn-sync", "uvicorn", "daphne")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--server", choices=SERVERS, default="gunicorn")
    parser.add_argument(
        "--compare-servers",
        action="store_true",
        help="measure this module's endpoint under every server in turn",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="gthread threads")
    parser.add_argument("--port", type=int, default=58000)
    parser.add_argument("--redis-port", type=int, default=56390)
    parser.add_argument("--skip-controller", action="store_true")
    parser.add_argument(
        "--code",
        default=ROOT,
        help="checkout whose openwisp_modem_upgrader the server runs "
        "(e.g. an export of an older commit, for a before/after comparison)",
    )
    parser.add_argument("--profile-reports", type=int, default=300)
    parser.add_argument(
        "--keep-postgres", action="store_true", help="leave PostgreSQL running"
    )
    return parser.parse_args()


# --- services --------------------------------------------------------------


def start_postgres():
    output = subprocess.run(
        [os.path.join(ROOT, "scripts", "postgres.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # "export DB=postgres POSTGRES_HOST=... POSTGRES_PORT=..."
    for assignment in output.split()[1:]:
        name, _, value = assignment.partition("=")
        os.environ[name] = value
    os.environ["POSTGRES_DB"] = DB_NAME


def postmaster_pid():
    with open(os.path.join(PG_DIR, "data", "postmaster.pid")) as pidfile:
        return int(pidfile.readline())


def create_database():
    import psycopg2

    connection = psycopg2.connect(
        host=os.environ["POSTGRES_HOST"],
        port=os.environ["POSTGRES_PORT"],
        user=os.environ["POSTGRES_USER"],
        dbname="postgres",
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME])
        if not cursor.fetchone():
            cursor.execute(f"CREATE DATABASE {DB_NAME}")
    connection.close()


def wait_for_port(port, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def start_redis(port):
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    return process


def server_command(name, args):
    bind = f"127.0.0.1:{args.port}"
    if name.startswith("gunicorn"):
        command = [
            os.path.join(VENV_BIN, "gunicorn"),
            "--bind",
            bind,
            "--workers",
            str(args.workers),
            "--keep-alive",
            "30",
            "--backlog",
            "2048",
        ]
        if name == "gunicorn":
            command += ["--worker-class", "gthread", "--threads", str(args.threads)]
        return command + ["openwisp2.wsgi:application"]
    if name == "uvicorn":
        return [
            os.path.join(VENV_BIN, "uvicorn"),
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--timeout-keep-alive",
            "30",
            "--lifespan",
            "off",
            "openwisp2.asgi:application",
        ]
    return [
        os.path.join(VENV_BIN, "daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(args.port),
        "openwisp2.asgi:application",
    ]


def start_server(name, args):
    process = subprocess.Popen(
        server_command(name, args),
        cwd=TESTS,
        # this checkout's code, whatever the virtualenv has installed
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([args.code, TESTS])),
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(SERVER_LOG), "a"),
        # own process group: stopped with its workers, and only them
        start_new_session=True,
    )
    wait_for_port(args.port, process)
    # workers import Django after the master listens: wait for an answer
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", args.port), timeout=5) as s:
                s.sendall(b"GET /admin/login/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            pass
        time.sleep(0.2)
    return process


def stop_process(process, group=False):
    if process is None or process.poll() is not None:
        return
    try:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()


# --- CPU accounting ---------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children():
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree_cpu_seconds(root_pid):
    """utime + stime of a process and of its descendants still alive."""
    children = _children()
    total, pending = 0, [root_pid]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def machine_cpu_seconds():
    """CPU time all processes of the machine used (busy jiffies)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    # idle and iowait are not busy; guest time is counted in user already
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- seeding ----------------------------------------------------------------


def setup_django(code):
    # the test project's celery app puts the working directory first on
    # sys.path: make it one without a checkout, or --code loses
    os.chdir(TESTS)
    sys.path[:0] = [code, TESTS]
    os.environ["DJANGO_SETTINGS_MODULE"] = "openwisp2.load_settings"
    os.environ.pop("TESTING", None)
    import django

    django.setup()


def migrate():
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def seed(count):
    """``count`` routers with a config and an operation in progress."""
    import swapper
    from django.db import transaction
    from django.utils import timezone

    from openwisp_modem_upgrader.swapper import load_model

    Organization = swapper.load_model("openwisp_users", "Organization")
    Device = swapper.load_model("config", "Device")
    Config = swapper.load_model("config", "Config")
    Operation = load_model("ModemUpgradeOperation")
    org, _ = Organization.objects.get_or_create(
        slug="load-benchmark", defaults={"name": "load benchmark"}
    )
    existing = Device.objects.filter(organization=org).count()
    with transaction.atomic():
        devices = [
            Device(
                organization=org,
                name=f"router-{number:05d}",
                mac_address=f"02:00:00:{number >> 16 & 255:02x}:"
                f"{number >> 8 & 255:02x}:{number & 255:02x}",
                key=uuid.uuid4().hex,
            )
            for number in range(existing, count)
        ]
        Device.objects.bulk_create(devices)
        Config.objects.bulk_create(
            Config(device=device, backend="netjsonconfig.OpenWrt", config={})
            for device in devices
        )
        now = timezone.now()
        Operation.objects.bulk_create(
            Operation(device=device, status="in-progress", started_at=now)
            for device in devices
        )
    operations = list(
        Operation.objects.filter(device__organization=org)
        .order_by("device__name")
        .values_list("pk", "device_id", "device__key")[:count]
    )
    return [(str(op), str(device), key) for op, device, key in operations]


def reset_operations():
    """Every benchmark operation in progress again, with an empty journal."""
    from django.db import connection
    from django.utils import timezone

    from openwisp_modem_upgrader.swapper import load_model

    load_model("ModemUpgradeOperation").objects.filter(
        device__organization__slug="load-benchmark"
    ).update(
        status="in-progress",
        progress=0,
        log="",
        device_seq=0,
        finished_at=None,
        modified=timezone.now(),
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.close()


# --- the client -------------------------------------------------------------


class Router:
    """One simulated router: its journal and the report it would send."""

    LINES = (
        "[+] transferring [modem] {p}%, transferred {b} B",
        "[+] flashing [modem] {p}%",
        "uxfp: block {b} written",
    )

    def __init__(self, operation, key):
        self.path = REPORT_PATH.format(pk=operation, key=key)
        self.seq = 0
        self.progress = 0
        self.sent = 0
        self.last_body = None

    def next_report(self):
        """(method, body, whether the server must apply it)."""
        self.sent += 1
        if self.last_body and self.sent % REPLAY_EVERY == 0:
            return "POST", self.last_body, False
        count = 1 + self.sent % 3
        self.progress = min(99, self.progress + 1)
        lines = []
        for _ in range(count):
            self.seq += 1
            line = random.choice(self.LINES)
            lines.append(line.format(p=self.progress, b=self.seq * 4096))
        body = json.dumps(
            {
                "seq": self.seq,
                "progress_percent": self.progress,
                "status": "in-progress",
                "log": "\n".join(lines),
            }
        ).encode()
        self.last_body = body
        return ("PATCH" if self.sent % 10 == 3 else "POST"), body, True


class ControllerDevice:
    def __init__(self, device, key):
        self.path = CONTROLLER_PATH.format(pk=device)
        self.body = f"key={key}&status=applied".encode()

    def next_report(self):
        return "POST", self.body, None


class Stats:
    def __init__(self):
        self.latencies = []
        self.errors = {}
        self.recording = False

    def error(self, kind):
        if self.recording:
            self.errors[kind] = self.errors.get(kind, 0) + 1


async def http_request(connection, port, method, path, body, content_type):
    """One request on a keep-alive connection; (status, body, reusable)."""
    reader, writer = connection
    writer.write(
        (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        payload = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        payload = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if not size:
                break
            payload += chunk[:-2]
    else:
        payload = await reader.read()
    reusable = headers.get("connection", "").lower() != "close"
    return status, payload, reusable


async def connection_loop(port, queue, stats, stop, content_type):
    connection = None
    while not stop.is_set():
        router = await queue.get()
        method, body, must_apply = router.next_report()
        started = time.perf_counter()
        try:
            if connection is None:
                connection = await asyncio.open_connection("127.0.0.1", port)
            status, payload, reusable = await asyncio.wait_for(
                http_request(connection, port, method, router.path, body, content_type),
                timeout=30,
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
            stats.error(type(error).__name__)
            if connection:
                connection[1].close()
            connection = None
            queue.put_nowait(router)
            continue
        elapsed = time.perf_counter() - started
        if status != 200:
            stats.error(f"HTTP {status}")
        elif must_apply is not None and json.loads(payload)["applied"] != must_apply:
            stats.error("applied != expected")
        elif stats.recording:
            stats.latencies.append(elapsed)
        if not reusable:
            connection[1].close()
            connection = None
        queue.put_nowait(router)
    if connection:
        connection[1].close()


async def drive(args, routers, content_type, pids):
    queue = asyncio.Queue()
    for router in routers:
        queue.put_nowait(router)
    stats, stop = Stats(), asyncio.Event()
    tasks = [
        asyncio.ensure_future(
            connection_loop(args.port, queue, stats, stop, content_type)
        )
        for _ in range(args.connections)
    ]
    await asyncio.sleep(args.warmup)
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    client_before = own_cpu_seconds()
    machine_before = machine_cpu_seconds()
    redis_before = redis_info(args.redis_port)
    stats.recording = True
    started = time.monotonic()
    await asyncio.sleep(args.duration)
    stats.recording = False
    elapsed = time.monotonic() - started
    cpu = {
        name: (tree_cpu_seconds(pid) - cpu_before[name]) / elapsed
        for name, pid in pids.items()
    }
    cpu["client"] = (own_cpu_seconds() - client_before) / elapsed
    # other engineers' work on the same cores: the noise of this run
    cpu["others"] = max(
        0.0,
        (machine_cpu_seconds() - machine_before) / elapsed - sum(cpu.values()),
    )
    redis_after = redis_info(args.redis_port)
    stop.set()
    await asyncio.wait(tasks, timeout=35)
    return stats, elapsed, cpu, redis_before, redis_after


# --- Redis: commands and channel-layer messages -----------------------------


def redis_info(port):
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    info = {"commands": {}, "channel_keys": 0}
    for name, value in client.info("commandstats").items():
        info["commands"][name.replace("cmdstat_", "")] = value["calls"]
    # channels_redis keeps the channel layer in database 1 (settings.py)
    info["channel_keys"] = redis.Redis(host="127.0.0.1", port=port, db=1).dbsize()
    client.close()
    return info


# channels_redis sends a message with ZADD (send) or a Lua script (group_send)
CHANNEL_LAYER_COMMANDS = ("zadd", "evalsha", "eval")


def redis_per_report(before, after, reports):
    delta = {
        name: calls - before["commands"].get(name, 0)
        for name, calls in after["commands"].items()
    }
    # our own INFO/DBSIZE calls are not the server's
    for ours in ("info", "dbsize", "select", "client|setinfo", "hello"):
        delta.pop(ours, None)
    total = sum(delta.values())
    channel = sum(delta.get(name, 0) for name in CHANNEL_LAYER_COMMANDS)
    reports = max(reports, 1)
    return total / reports, channel / reports, after["channel_keys"]


# --- reporting --------------------------------------------------------------


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    return sorted_values[
        min(len(sorted_values) - 1, int(len(sorted_values) * fraction))
    ]


def run_case(label, args, routers, content_type, pids):
    stats, elapsed, cpu, redis_before, redis_after = asyncio.run(
        drive(args, routers, content_type, pids)
    )
    latencies = sorted(stats.latencies)
    errors = sum(stats.errors.values())
    done = len(latencies) + errors
    redis_commands, channel_messages, channel_keys = redis_per_report(
        redis_before, redis_after, done
    )
    row = {
        "label": label,
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "errors": errors,
        "error_kinds": stats.errors,
        "cpu": cpu,
        "redis": redis_commands,
        "channel": channel_messages,
        "channel_keys": channel_keys,
    }
    print(
        f"  {label}: {row['rps']:.0f} req/s, p50 {row['p50']:.1f} ms, "
        f"p99 {row['p99']:.1f} ms, errors {errors} {stats.errors or ''}"
        f"(other processes: {cpu['others']:.2f} cores)",
        flush=True,
    )
    return row


def print_table(rows, args):
    print()
    print(
        f"{args.operations} operations in progress, {args.connections} connections, "
        f"{args.duration:.0f} s each, {os.cpu_count()} cores"
    )
    header = (
        f"{'endpoint / server':44} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6}  CPU cores (server, postgres, redis, client, others)  "
        f"redis cmds/report  channel msgs/report"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        cpu = row["cpu"]
        print(
            f"{row['label']:44} {row['rps']:7.0f} {row['p50']:7.1f} "
            f"{row['p99']:7.1f} {row['errors']:6d}  "
            f"{cpu['server']:.2f}, {cpu['postgres']:.2f}, {cpu['redis']:.2f}, "
            f"{cpu['client']:.2f}, {cpu['others']:.2f}{'':10}  "
            f"{row['redis']:.2f}{'':14}  "
            f"{row['channel']:.3f} (keys in layer: {row['channel_keys']})"
        )


# --- where the time goes ----------------------------------------------------


def query_shape(sql):
    """A query without its values: ``UPDATE table SET a, b``."""
    sql = re.sub(r"'(?:[^']|'')*'|\b\d+\b", "?", sql.split(" WHERE ")[0])
    sql = re.sub(r" = [^,]*?(?=, \"|$)", "", sql)
    return sql[:110]


def profile_one_report(operations, reports):
    """Queries and in-process time of one report (Django test client, no
    network), on an operation the load did not use."""
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    operation, _device, key = operations[-1]
    router = Router(operation, key)
    client = Client()
    # warm up imports and the connection
    for _ in range(20):
        _method, body, _apply = router.next_report()
        client.post(router.path, body, "application/json")
    # CPU of the request in this process, without profiler: other processes
    # on the machine do not change it, unlike wall time
    cpu_started = time.process_time()
    wall_started = time.perf_counter()
    for _ in range(reports):
        method, body, _apply = router.next_report()
        client.generic(method, router.path, body, "application/json")
    cpu_per_report = (time.process_time() - cpu_started) * 1000 / reports
    wall_per_report = (time.perf_counter() - wall_started) * 1000 / reports
    queries, sql_time, shapes = [], 0.0, {}
    profiler = cProfile.Profile()
    started = time.perf_counter()
    for _ in range(reports):
        method, body, _apply = router.next_report()
        with CaptureQueriesContext(connection) as captured:
            profiler.enable()
            response = client.generic(method, router.path, body, "application/json")
            profiler.disable()
        assert response.status_code == 200, response.content
        queries.append(len(captured))
        for query in captured.captured_queries:
            sql_time += float(query["time"])
            shape = query_shape(query["sql"])
            shapes[shape] = shapes.get(shape, 0) + 1
        reset_queries()
    elapsed = time.perf_counter() - started
    print()
    print(f"One report, in one process ({reports} reports, Django test client):")
    print(
        f"  without profiler: {cpu_per_report:.2f} ms CPU of the web process, "
        f"{wall_per_report:.2f} ms wall time per report"
    )
    print(f"  wall time per report: {elapsed * 1000 / reports:.2f} ms (with profiler)")
    print(
        f"  SQL queries per report: min {min(queries)}, max {max(queries)}, "
        f"mean {sum(queries) / len(queries):.2f}; "
        f"SQL time per report {sql_time * 1000 / reports:.2f} ms"
    )
    for shape, count in sorted(shapes.items(), key=lambda item: -item[1]):
        print(f"    {count / reports:5.2f} x {shape}")
    output = io.StringIO()
    stats = pstats.Stats(profiler, stream=output)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    print("  cProfile, cumulative then own time (test client frames included):")
    print(
        "\n".join(
            "    " + line
            for line in output.getvalue().splitlines()
            if line.strip() and not line.startswith("   Ordered")
        )
    )


def main():
    args = parse_args()
    os.environ.setdefault("POSTGRES_PORT", "55443")
    start_postgres()
    create_database()
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{args.redis_port}"
    setup_django(args.code)
    redis_process = server = None
    rows = []
    try:
        redis_process = start_redis(args.redis_port)
        print("migrating and seeding...", flush=True)
        migrate()
        operations = seed(args.operations)
        servers = SERVERS if args.compare_servers else (args.server,)
        for name in servers:
            reset_operations()
            print(f"starting {name}...", flush=True)
            server = start_server(name, args)
            pids = {
                "server": server.pid,
                "postgres": postmaster_pid(),
                "redis": redis_process.pid,
            }
            routers = [Router(op, key) for op, _device, key in operations[:-1]]
            rows.append(
                run_case(
                    f"modem-upgrader report ({name})",
                    args,
                    routers,
                    "application/json",
                    pids,
                )
            )
            if not args.skip_controller and name == servers[0]:
                devices = [ControllerDevice(dev, key) for _op, dev, key in operations]
                rows.append(
                    run_case(
                        f"controller report-status ({name})",
                        args,
                        devices,
                        "application/x-www-form-urlencoded",
                        pids,
                    )
                )
            stop_process(server, group=True)
            server = None
        print_table(rows, args)
        reset_operations()
        profile_one_report(operations, args.profile_reports)
    finally:
        stop_process(server, group=True)
        stop_process(redis_process)
        from django.db import connections

        connections.close_all()
        if not args.keep_postgres:
            subprocess.run([os.path.join(ROOT, "scripts", "postgres.sh"), "stop"])


if __name__ == "__main__":
    main()
