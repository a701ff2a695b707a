#!/usr/bin/env python
"""Streaming SCP to an emulated router: worker memory and throughput.

Usage: .venv/bin/python benchmarks/transfer_benchmark.py [SIZE_MB ...]

For each size, a child process streams a generated image with
``openwisp_modem_upgrader.transfer.stream_file_to_router`` to a real dropbear
on 127.0.0.1 and reports its peak RSS; ``scp -O`` (OpenSSH, legacy protocol)
sends the same file for comparison. Memory must stay flat in the size.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

CHILD = r"""
import json, os, resource, sys, time
import paramiko
sys.path[:0] = [sys.argv[1]]
from openwisp_modem_upgrader.transfer import stream_file_to_router
host, port, key_path, path, remote = sys.argv[2:7]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect(host, port=int(port), username="root", key_filename=key_path,
               look_for_keys=False, allow_agent=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
size = os.path.getsize(path)
start = time.monotonic()
with open(path, "rb") as f:
    stream_file_to_router(client.get_transport(), f, size, remote, 3600)
elapsed = time.monotonic() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "rss_before_kib": before, "peak_rss_kib": peak}))
"""


def write_image(path, size_mb):
    chunk = os.urandom(1024 * 1024)
    with open(path, "wb") as f:
        for _ in range(size_mb):
            f.write(chunk)


def main(sizes):
    from device.router import EmulatedRouter

    with EmulatedRouter() as router, tempfile.TemporaryDirectory() as tmp:
        print(
            f"{'size':>8} {'stream MB/s':>12} {'peak RSS MiB':>13} "
            f"{'RSS growth MiB':>15} {'scp -O MB/s':>12}"
        )
        for size_mb in sizes:
            image = os.path.join(tmp, f"image-{size_mb}.bin")
            write_image(image, size_mb)
            remote = os.path.join(router.tmp_dir, "bench.bin")
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    REPO,
                    router.host,
                    str(router.port),
                    router.private_key_path,
                    image,
                    remote,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = json.loads(out)
            assert os.path.getsize(remote) == size_mb * 1024 * 1024
            os.unlink(remote)
            start = time.monotonic()
            subprocess.run(
                [
                    "scp",
                    "-O",
                    "-q",
                    "-i",
                    router.private_key_path,
                    "-P",
                    str(router.port),
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    image,
                    f"root@{router.host}:{remote}",
                ],
                check=True,
            )
            scp_seconds = time.monotonic() - start
            os.unlink(remote)
            os.unlink(image)
            print(
                f"{size_mb:>6}MB {size_mb / result['seconds']:>12.1f} "
                f"{result['peak_rss_kib'] / 1024:>13.1f} "
                f"{(result['peak_rss_kib'] - result['rss_before_kib']) / 1024:>15.1f} "
                f"{size_mb / scp_seconds:>12.1f}"
            )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [50, 500])
