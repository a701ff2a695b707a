#!/usr/bin/env python
"""A transfer over a link that drops three times: bytes sent and wall time,
restarting from zero on every retry (the behaviour before resumable
transfers) versus continuing from what the router holds.

Usage: .venv/bin/python benchmarks/resume_benchmark.py [SIZE_MB] [DROP_FRACTION]

The image goes to a real dropbear + busybox router on 127.0.0.1. Each attempt
loses its SSH session once DROP_FRACTION (default 0.3) of the image went out
in that attempt; three attempts drop, the fourth completes. "resume" reads
the router's copy (size + sha256, one command), compares the prefix locally
and sends the rest, as the upgrader does.
"""

import hashlib
import os
import sys
import tempfile
import time

import paramiko

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from openwisp_modem_upgrader.exceptions import RecoverableModemFailure  # noqa
from openwisp_modem_upgrader.transfer import (  # noqa
    parse_probe,
    plan_transfer,
    probe_command,
    stream_file_to_router,
)

DROPS = 3


def connect(router):
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
    return client


def probe(client, remote):
    _, stdout, _ = client.exec_command(probe_command(remote))
    return parse_probe(stdout.read().decode())


def transfer(router, image, remote, sha256, drop_fraction, resume):
    size = os.path.getsize(image)
    sent_total, attempts = 0, 0
    started = time.monotonic()
    with open(image, "rb") as f:
        while True:
            attempts += 1
            client = connect(router)
            transport = client.get_transport()
            offset = 0
            if resume:
                plan = plan_transfer(probe(client, remote), f, size, sha256)
                if plan.skip:
                    client.close()
                    break
                offset = plan.offset
            drop_at = offset + int(size * drop_fraction)
            sent = [offset]

            def on_progress(done, total):
                sent[0] = done
                if attempts <= DROPS and done >= drop_at:
                    transport.close()  # the link drops

            try:
                stream_file_to_router(
                    transport,
                    f,
                    size,
                    remote,
                    3600,
                    offset=offset,
                    on_progress=on_progress,
                )
                done = True
            except RecoverableModemFailure:
                done = False
            sent_total += sent[0] - offset
            client.close()
            if done:
                break
    elapsed = time.monotonic() - started
    with open(remote, "rb") as received:
        digest = hashlib.file_digest(received, "sha256").hexdigest()
    assert digest == sha256, "the router's copy is not the image"
    return sent_total, elapsed, attempts


def main(size_mb, drop_fraction):
    from device.router import EmulatedRouter

    with EmulatedRouter() as router, tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, "image.bin")
        chunk = os.urandom(1024 * 1024)
        with open(image, "wb") as f:
            for _ in range(size_mb):
                f.write(chunk)
        with open(image, "rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        size = size_mb * 1024 * 1024
        print(
            f"{size_mb} MB image, the link drops {DROPS} times "
            f"(after {drop_fraction:.0%} of the image in each attempt)"
        )
        print(
            f"{'mode':>10} {'attempts':>9} {'MB sent':>9} {'x image':>8} {'seconds':>8}"
        )
        for mode, resume in (("from zero", False), ("resume", True)):
            remote = os.path.join(router.tmp_dir, f"{mode.replace(' ', '-')}.bin")
            sent, elapsed, attempts = transfer(
                router, image, remote, sha256, drop_fraction, resume
            )
            print(
                f"{mode:>10} {attempts:>9} {sent / 2**20:>9.1f} "
                f"{sent / size:>8.2f} {elapsed:>8.1f}"
            )
            os.unlink(remote)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 200, float(args[1]) if len(args) > 1 else 0.3)
