#!/usr/bin/env python
"""Many routers on a cellular link: what 2 worker processes can push at once.

Usage (as root): .venv/bin/python benchmarks/fleet_throughput.py
    [--routers 200] [--processes 2] [--rate-kbit 1000] [--image-kib 256]
    [--threads N] [--modes prefork,threads]

Each emulated router (dropbear + busybox, tests/device/) runs in a network
namespace of its own whose veth is shaped with ``tc tbf`` to ``--rate-kbit``
in both directions: the server reaches it only through that link. Two worker
processes (``--processes``) send every router the same image with the
module's own code (the device connection's paramiko client, the probe of the
router's copy, ``transfer.stream_file_to_router``), as an upgrade task does:

- ``prefork``: each process carries one transfer at a time, as a Celery
  prefork pool of 2 processes does (main's deployment);
- ``threads``: each process carries its share of the routers at once on
  threads (``--threads`` at most), as ``celery worker -P threads -c N`` does.

For each mode it prints the transfers in progress at once (connecting or
streaming) and the routers receiving image bytes at once (peaks), the image
bytes and the wire bytes the server sent, the wall time of the batch, each
process's CPU time and peak RSS, the machine's busy cores (the workers, the
emulated routers' dropbear and shells, anything else running), and from
those the computed time of 10,000 routers taking 1 GiB at 10 Mbit/s.
Traffic stays in the namespaces created here; everything is removed at the
end.
"""

import argparse
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

GIB = 1024**3
FLEET = 10_000


# -- the worker processes ------------------------------------------------------


def transfer(job, image, size, sha256):
    """One upgrade's transfer: connect, read the router's copy, send the rest."""
    import paramiko

    from openwisp_modem_upgrader.transfer import (
        parse_probe,
        plan_transfer,
        probe_command,
        stream_file_to_router,
    )

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    began = time.monotonic()
    client.connect(
        job["host"],
        port=job["port"],
        username="root",
        key_filename=job["key"],
        look_for_keys=False,
        allow_agent=False,
        timeout=120,
        banner_timeout=120,
        auth_timeout=120,
    )
    try:
        transport = client.get_transport()
        _, stdout, _ = client.exec_command(probe_command(job["path"]), timeout=120)
        copy = parse_probe(stdout.read().decode())
        stdout.channel.recv_exit_status()
        stdout.channel.close()
        sent = [0]
        with open(image, "rb") as firmware:
            plan = plan_transfer(copy, firmware, size, sha256)
            streaming = time.monotonic()
            stream_file_to_router(
                transport,
                firmware,
                size,
                job["path"],
                3600,
                offset=plan.offset,
                on_progress=lambda done, total: sent.__setitem__(0, done - plan.offset),
            )
        return {
            "began": began,
            "streaming": streaming,
            "ended": time.monotonic(),
            "sent": sent[0],
            "cipher": transport.local_cipher,
            "mac": transport.local_mac,
        }
    finally:
        client.close()


def worker(mode, threads):
    """A worker process: the jobs on stdin, one JSON line of results out."""
    import paramiko  # noqa: F401 (imported before the baseline is taken)

    import openwisp_modem_upgrader.transfer  # noqa: F401

    task = json.load(sys.stdin)
    image, size, sha256 = task["image"], task["size"], task["sha256"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_before = usage.ru_maxrss
    cpu_before = usage.ru_utime + usage.ru_stime
    results, errors = [], []
    lock = threading.Lock()

    def run(job):
        try:
            result = transfer(job, image, size, sha256)
        except Exception as error:  # counted and printed, not fatal
            with lock:
                errors.append(f"{job['host']}: {error!r}")
            return
        with lock:
            results.append(result)

    if mode == "prefork":
        for job in task["jobs"]:
            run(job)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, task["jobs"]))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    json.dump(
        {
            "results": results,
            "errors": errors,
            "cpu": usage.ru_utime + usage.ru_stime - cpu_before,
            "rss_before_kib": rss_before,
            "peak_rss_kib": usage.ru_maxrss,
        },
        sys.stdout,
    )


# -- the driver --------------------------------------------------------------


def shape(router, rate_kbit):
    """tbf at ``rate_kbit`` on both ends of the router's veth."""
    rule = ["root", "tbf", "rate", f"{rate_kbit}kbit"]
    rule += ["burst", "16kb", "latency", "400ms"]
    netns = router.netns
    subprocess.run(["tc", "qdisc", "add", "dev", netns.host_if, *rule], check=True)
    subprocess.run(
        ["ip", "netns", "exec", netns.name, "tc", "qdisc", "add", "dev", netns.inner]
        + rule,
        check=True,
    )


def wire_bytes(routers):
    total = 0
    for router in routers:
        path = f"/sys/class/net/{router.netns.host_if}/statistics/tx_bytes"
        with open(path) as f:
            total += int(f.read())
    return total


def machine_cpu():
    """CPU seconds the whole machine spent busy so far (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(value) for value in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def peak_overlap(intervals):
    """The most intervals open at one instant."""
    edges = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    )
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def run_mode(mode, routers, args, image, size, sha256):
    for router in routers:  # every router starts without the image
        path = os.path.join(router.tmp_dir, "fleet.bin")
        if os.path.exists(path):
            os.unlink(path)
    shares = [routers[i :: args.processes] for i in range(args.processes)]
    threads = args.threads or max(len(share) for share in shares)
    wire_before = wire_bytes(routers)
    busy_before = machine_cpu()
    started = time.monotonic()
    processes = []
    for share in shares:
        jobs = [
            {
                "host": router.host,
                "port": router.port,
                "key": router.private_key_path,
                "path": os.path.join(router.tmp_dir, "fleet.bin"),
            }
            for router in share
        ]
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", mode, "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        process.stdin.write(
            json.dumps({"jobs": jobs, "image": image, "size": size, "sha256": sha256})
        )
        process.stdin.close()
        processes.append(process)
    outputs = [json.loads(process.stdout.read()) for process in processes]
    for process in processes:
        process.wait()
    busy = machine_cpu() - busy_before
    elapsed = time.monotonic() - started
    results = [result for output in outputs for result in output["results"]]
    # from the first connection to the last byte (not the processes' start-up)
    wall = (
        max(r["ended"] for r in results) - min(r["began"] for r in results)
        if results
        else time.monotonic() - started
    )
    complete = sum(
        os.path.exists(path) and os.path.getsize(path) == size
        for path in (os.path.join(r.tmp_dir, "fleet.bin") for r in routers)
    )
    streams = [(r["streaming"], r["ended"]) for r in results]
    return {
        "mode": mode,
        "threads": 1 if mode == "prefork" else threads,
        "transfers": len(results),
        "complete": complete,
        "errors": [error for output in outputs for error in output["errors"]],
        "peak_at_once": peak_overlap(streams),
        # upgrades holding the worker at once (connecting or streaming)
        "peak_tasks": peak_overlap([(r["began"], r["ended"]) for r in results]),
        "image_bytes": sum(r["sent"] for r in results),
        "wire_bytes": wire_bytes(routers) - wire_before,
        "wall": wall,
        "per_transfer": sorted(r["ended"] - r["began"] for r in results),
        "connecting": sorted(r["streaming"] - r["began"] for r in results),
        "cpu": [output["cpu"] for output in outputs],
        # the emulated routers (dropbear, their shells) and any other work
        # share the machine with the workers
        "machine_cores": busy / elapsed,
        "peak_rss_mib": [output["peak_rss_kib"] / 1024 for output in outputs],
        "rss_growth_mib": [
            (output["peak_rss_kib"] - output["rss_before_kib"]) / 1024
            for output in outputs
        ],
        "cipher": results[0]["cipher"] + " + " + results[0]["mac"] if results else "",
    }


def calibrate(image_mib=64):
    """CPU seconds a worker spends per byte it streams, on an unshaped link."""
    import paramiko
    from device.router import EmulatedRouter

    from openwisp_modem_upgrader.transfer import stream_file_to_router

    chunk = os.urandom(1024 * 1024)
    with EmulatedRouter(modem_manager=False, curl=False) as router:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            router.host,
            port=router.port,
            username="root",
            key_filename=router.private_key_path,
            look_for_keys=False,
            allow_agent=False,
        )
        with tempfile.TemporaryFile() as image:
            for _ in range(image_mib):
                image.write(chunk)
            size = image.tell()
            cpu = time.process_time()  # every thread of this process
            stream_file_to_router(
                client.get_transport(),
                image,
                size,
                os.path.join(router.tmp_dir, "calibration.bin"),
                600,
            )
            cpu = time.process_time() - cpu
        client.close()
    return cpu / size


def fleet_figure(row, processes, cpu_per_byte):
    """10,000 routers, 1 GiB each at 10 Mbit/s, from this run's figures."""
    link_seconds = GIB * 8 / 10e6
    at_once = processes * row["threads"]
    # a transfer's CPU: connection, probe and session (this run, minus its
    # bytes), then every byte at the calibrated cost; a Python process
    # uses one core at most
    fixed = max(
        (sum(row["cpu"]) - row["image_bytes"] * cpu_per_byte)
        / max(row["transfers"], 1),
        0,
    )
    by_links = math.ceil(FLEET / at_once) * link_seconds
    by_cpu = FLEET * (fixed + GIB * cpu_per_byte) / processes
    return {
        "at_once": at_once,
        "by_links_h": by_links / 3600,
        "by_cpu_h": by_cpu / 3600,
        "hours": max(by_links, by_cpu) / 3600,
        "fixed_ms": fixed * 1000,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routers", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rate-kbit", type=int, default=1000)
    parser.add_argument("--image-kib", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--modes", default="prefork,threads")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads)
        return
    if os.geteuid():
        sys.exit("needs root: network namespaces and tc")
    from device.router import EmulatedRouter

    size = args.image_kib * 1024
    routers = []
    with tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, "image.bin")
        with open(image, "wb") as f:
            f.write(os.urandom(size))
        with open(image, "rb") as f:
            sha256 = hashlib.sha256(f.read()).hexdigest()
        try:
            started = time.monotonic()
            for _ in range(args.routers):
                router = EmulatedRouter(netns=True, modem_manager=False, curl=False)
                routers.append(router.start())
                shape(router, args.rate_kbit)
            print(
                f"{len(routers)} routers in namespaces, links shaped to "
                f"{args.rate_kbit} kbit/s, ready in "
                f"{time.monotonic() - started:.0f} s; "
                f"image {size} bytes; {args.processes} worker processes",
                flush=True,
            )
            rows = [
                run_mode(mode, routers, args, image, size, sha256)
                for mode in args.modes.split(",")
            ]
        finally:
            for router in routers:
                router.stop()
    report(rows, args, size, calibrate())


def report(rows, args, size, cpu_per_byte):
    link_s = size * 8 / (args.rate_kbit * 1000)
    print(f"link time of one image at {args.rate_kbit} kbit/s: {link_s:.1f} s")
    print(f"cipher negotiated with dropbear: {rows[0]['cipher']}")
    header = (
        f"{'mode':<8} {'per proc':>8} {'tasks':>5} {'at once':>7} {'done':>5} "
        f"{'errors':>6} "
        f"{'image MB':>8} {'wire MB':>8} {'wall s':>7} {'p50 s':>6} {'max s':>6} "
        f"{'connect p50 s':>13} "
        f"{'CPU s':>11} {'peak RSS MiB':>13} {'machine cores':>13}"
    )
    print(header)
    for row in rows:
        times = row["per_transfer"] or [0]
        print(
            f"{row['mode']:<8} {row['threads']:>8} {row['peak_tasks']:>5} "
            f"{row['peak_at_once']:>7} {row['complete']:>5} {len(row['errors']):>6} "
            f"{row['image_bytes'] / 1e6:>8.1f} {row['wire_bytes'] / 1e6:>8.1f} "
            f"{row['wall']:>7.1f} {times[len(times) // 2]:>6.1f} {times[-1]:>6.1f} "
            f"{(row['connecting'] or [0])[len(times) // 2]:>13.1f} "
            f"{'/'.join(f'{c:.1f}' for c in row['cpu']):>11} "
            f"{'/'.join(f'{m:.0f}' for m in row['peak_rss_mib']):>13} "
            f"{row['machine_cores']:>13.2f}"
        )
        for error in row["errors"][:3]:
            print(f"   error: {error}")
    print(
        f"\n{FLEET} routers, 1 GiB each at 10 Mbit/s ({GIB * 8 / 10e6:.0f} s of link "
        f"each), on {args.processes} worker processes:"
    )
    for row in rows:
        figure = fleet_figure(row, args.processes, cpu_per_byte)
        print(
            f"  {row['mode']:<8} {figure['at_once']:>5} at once: "
            f"{figure['hours']:,.1f} h (bound by the links: "
            f"{figure['by_links_h']:,.1f} h;"
            f" by the workers' CPU: {figure['by_cpu_h']:,.1f} h at "
            f"{cpu_per_byte * 2**20 * 1000:.1f} ms/MiB + "
            f"{figure['fixed_ms']:.0f} ms per transfer)"
        )
    print(
        f"  the server's egress alone: {FLEET} GiB at 1 Gbit/s = "
        f"{FLEET * GIB * 8 / 1e9 / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
