#!/usr/bin/env python
"""Do the engine's short tasks wait behind image transfers? Driver gaps and
follow-up latency while 8 long transfers hold the transfer workers.

Usage (as root, loopback only; one command runs both layouts):

    .venv/bin/python benchmarks/short_task_latency.py [--duration 90]

Real parts: PostgreSQL (the cluster of ``scripts/postgres.sh``, started if
needed; ``POSTGRES_PORT``, default 55446), Redis, Celery beat, the ASGI
server, Celery workers in their own processes and emulated routers
(dropbear + busybox + fake uxfp). For each layout it starts 8 upgrades whose
flash lasts longer than the run (followed by short follow-up tasks), then 8
upgrades whose transfer is rate-capped so that it lasts minutes, and
measures for ``--duration`` seconds:

* driver gaps: time between two starts of the periodic driver (beat asks
  every ``DRIVER`` seconds);
* follow-up latency: from the moment a flashing router is due a read (the
  previous read's end + ``FOLLOW_INTERVAL``) to the start of that read.

Layouts: "before", one worker of 2 processes consuming every queue (the
single-queue deployment, where short tasks share processes with
transfers); "after", a worker of 2 processes on ``modem_upgrader``
(transfers) and one of 1 process on ``modem_upgrader_control``. Both with
``--prefetch-multiplier 1 -O fair``. Goal: gaps <= 2 x DRIVER, latency p95
< 5 s.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [
    REPO,
    os.path.join(REPO, "tests"),
    os.path.join(REPO, "tests", "integration"),
]

DRIVER = 2  # seconds between two driver runs (beat)
FOLLOW_INTERVAL = 5  # seconds between two reads of a flashing router
FLASHING = 8
TRANSFERS = 8
TRANSFER_RATE = 64 * 1024  # bytes/s: an 8 MiB image takes ~2 minutes
IMAGE_SIZE = 8 * 1024 * 1024

LAYOUTS = {
    "before": [("all", "celery,modem_upgrader,modem_upgrader_control", 2)],
    "after": [
        ("transfers", "celery,modem_upgrader", 2),
        ("control", "modem_upgrader_control", None),  # --control-concurrency
    ],
}


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def ensure_postgres():
    if os.environ.get("DB") == "postgres":
        return
    env = dict(os.environ, POSTGRES_PORT=os.environ.get("POSTGRES_PORT", "55446"))
    output = subprocess.run(
        [os.path.join(REPO, "scripts", "postgres.sh"), "start"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for word in output.split():
        if "=" in word:
            name, value = word.split("=", 1)
            os.environ[name] = value


def run_layout(layout, duration, control_concurrency=1):
    """One layout in this process; returns the measurements (a dict)."""
    from real_stack import CELERY, Stack, new_router_device, wait_for

    stack = Stack()
    probe_file = os.path.join(stack.tmp, "probe.tsv")
    os.environ.update(
        MODEM_DRIVER_SCHEDULE=str(DRIVER),
        MODEM_FOLLOW_INTERVAL=str(FOLLOW_INTERVAL),
        MODEM_FOLLOW_START_GRACE="3",
        MODEM_FOLLOW_LEASE="120",
        MODEM_TASK_TIMEOUT="60",
        # transfers last minutes: no redelivery of a running task
        CELERY_VISIBILITY_TIMEOUT="3900",
        CELERY_UNACKED_MUTEX_EXPIRE="300",
        LATENCY_PROBE_FILE=probe_file,
    )
    routers = []
    try:
        stack.start(worker=None)
        for name, queues, concurrency in LAYOUTS[layout]:
            stack.spawn(
                name,
                [
                    CELERY,
                    "-A",
                    "openwisp2",
                    "worker",
                    "-Q",
                    queues,
                    "-c",
                    str(concurrency or control_concurrency),
                    "-l",
                    "info",
                    "-n",
                    f"{name}@%h",
                    "--prefetch-multiplier",
                    "1",
                    "-O",
                    "fair",
                    "--without-heartbeat",
                    "--without-mingle",
                    "--include",
                    "latency_probe",
                ],
                env={"PYTHONPATH": HERE},
            )
        import django

        django.setup()
        return measure(
            stack, routers, duration, probe_file, new_router_device, wait_for
        )
    finally:
        for router in routers:
            router.stop()
        stack.stop()


def measure(stack, routers, duration, probe_file, new_router_device, wait_for):
    from device.firmware import write_firmware_stream
    from django.core.files import File

    from openwisp_modem_upgrader.tests import TestModemUpgraderMixin
    from openwisp_modem_upgrader.upgrade import start_upgrade

    factory = TestModemUpgraderMixin()
    version = "M0R.010100-B024"
    firmware = os.path.join(stack.tmp, "fn990a.bin")
    write_firmware_stream(firmware, version, model="FN990A28", size=IMAGE_SIZE)
    build = factory._create_build(version=version, modem_model="FN990A28")
    with open(firmware, "rb") as stream:
        image = factory._create_image(build=build, file=File(stream, name="fn.bin"))

    def upgrade(index, flash_duration, rate):
        router, device = new_router_device(factory, routers, index)
        router.set_modem(flash_duration=flash_duration)
        options = {
            "remote_dir": router.tmp_dir,
            "tool_path": "uxfp",
            "transfer_timeout": 1200,
            "upgrade_timeout": 1200,
            "reboot_timeout": 60,
            "progress_interval": 5,
            "max_transfer_rate": rate,
        }
        return start_upgrade(device, image, options)

    flashing = [upgrade(i, 3600, 0) for i in range(FLASHING)]
    Operation = type(flashing[0])
    ids = [op.pk for op in flashing]
    wait_for(
        lambda: Operation.objects.filter(pk__in=ids, flash_started=True).count()
        == FLASHING,
        300,
        "the flashing routers",
    )
    transfers = [upgrade(100 + i, 60, TRANSFER_RATE) for i in range(TRANSFERS)]
    transfer_ids = [op.pk for op in transfers]
    wait_for(
        lambda: Operation.objects.filter(
            pk__in=transfer_ids, status="in-progress"
        ).count()
        >= 2,
        120,
        "the transfers to start",
    )
    started = time.time()
    time.sleep(duration)  # the measured window: the stack runs on its own
    ended = time.time()
    in_flight = Operation.objects.filter(
        pk__in=transfer_ids, status="in-progress", flash_started=False
    ).count()
    return summarize(probe_file, started, ended, {str(pk) for pk in ids}, in_flight)


def summarize(probe_file, started, ended, flashing_ids, transfers_running):
    drives, follows = [], {}
    with open(probe_file) as probe:
        for line in probe:
            event, task, at, operation = line.rstrip("\n").split("\t")
            at = float(at)
            if task == "drive" and event == "start":
                drives.append(at)
            elif task == "follow" and operation in flashing_ids:
                follows.setdefault(operation, []).append((at, event))
    # the window's ends count as runs: no run at all in it is one gap of
    # its whole length (a lower bound, like the first and last gaps)
    runs = [started] + sorted(at for at in drives if started < at < ended) + [ended]
    gaps = [b - a for a, b in zip(runs, runs[1:])]
    latencies = []
    for events in follows.values():
        events.sort()
        last_end = None
        for at, event in events:
            if event == "start" and last_end is not None and started <= at <= ended:
                latencies.append(max(0.0, at - (last_end + FOLLOW_INTERVAL)))
            elif event == "end":
                last_end = at
    # reads still waiting at the end of the window count as late as they are
    for events in follows.values():
        ends = [at for at, event in events if event == "end"]
        if ends and ends[-1] + FOLLOW_INTERVAL < ended and events[-1][1] == "end":
            latencies.append(ended - (ends[-1] + FOLLOW_INTERVAL))
    return {
        "driver_gaps": len(gaps),
        "gap_p50": percentile(gaps, 0.5),
        "gap_p95": percentile(gaps, 0.95),
        "gap_max": max(gaps) if gaps else float("nan"),
        "follow_ups": len(latencies),
        "latency_p50": percentile(latencies, 0.5),
        "latency_p95": percentile(latencies, 0.95),
        "latency_max": max(latencies) if latencies else float("nan"),
        "transfers_running_at_end": transfers_running,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=90)
    parser.add_argument("--layout", choices=sorted(LAYOUTS))
    parser.add_argument(
        "--control-concurrency",
        type=int,
        default=1,
        help="processes of the control-queue worker (after)",
    )
    args = parser.parse_args()
    ensure_postgres()
    if args.layout:  # one layout, in a process of its own
        result = run_layout(args.layout, args.duration, args.control_concurrency)
        print(json.dumps(result))
        return
    results = {}
    for layout in ("before", "after"):
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--layout",
                layout,
                "--duration",
                str(args.duration),
                "--control-concurrency",
                str(args.control_concurrency),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[layout] = json.loads(output.strip().splitlines()[-1])
    load = os.getloadavg()
    print(
        f"{FLASHING} routers flashing (read every {FOLLOW_INTERVAL} s), "
        f"{TRANSFERS} transfers capped at {TRANSFER_RATE // 1024} KiB/s, "
        f"driver every {DRIVER} s, {args.duration} s measured, control worker "
        f"-c {args.control_concurrency}; "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f}"
    )
    print(
        f"{'layout':8} {'driver gap p50/p95/max s':>26} "
        f"{'follow-up latency p50/p95/max s':>33} {'reads':>6}"
    )
    for layout, r in results.items():
        print(
            f"{layout:8} {r['gap_p50']:8.1f} {r['gap_p95']:8.1f} {r['gap_max']:8.1f} "
            f"{r['latency_p50']:10.1f} {r['latency_p95']:10.1f} "
            f"{r['latency_max']:10.1f} {r['follow_ups']:6d}"
        )
    after = results["after"]
    print(
        f"goal (after): driver gaps <= {2 * DRIVER} s: "
        f"{'met' if after['gap_max'] <= 2 * DRIVER else 'missed'}; "
        f"follow-up p95 < 5 s: {'met' if after['latency_p95'] < 5 else 'missed'}"
    )


if __name__ == "__main__":
    main()
