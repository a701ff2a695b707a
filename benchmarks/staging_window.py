#!/usr/bin/env python
"""Window time saved by staging an image ahead of the maintenance window.

Usage: .venv/bin/python benchmarks/staging_window.py [MEASURED_MB [TARGET_MB [MB_S]]]
(defaults: 40 MB measured, 200 MB target, a 5 MB/s cap; MB = 10**6 bytes)

Against an emulated router (real dropbear + busybox on 127.0.0.1), what the
window pays for the transfer step of one upgrade, measured with the
package's own transfer code (``transfer.py``, rate cap as the
``max_transfer_rate`` option sets it):

* without staging: the probe of the router's copy (absent), then the whole
  image streamed at the rate cap, inside the window;
* with staging: the image was streamed before the window (not counted);
  inside it only the probe runs, which hashes the router's copy
  (``sha256sum``) and finds it complete: nothing is sent.

The measured image is ``MEASURED_MB``; the figures for ``TARGET_MB`` scale
each part linearly in the size (the streaming at a fixed cap and the
hashing are both linear), and the script prints the measured rate so the
scaling can be checked. Run it with ``MEASURED_MB`` = ``TARGET_MB`` to
measure the target directly (200 MB at 5 MB/s takes about 45 s).
The flash itself (uxfp) takes the same time either way and is left out.
"""

import os
import sys
import tempfile
import time

import paramiko

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from openwisp_modem_upgrader.transfer import (  # noqa: E402
    parse_probe,
    plan_transfer,
    probe_command,
    stream_file_to_router,
)

MB = 10**6


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


def write_image(path, size):
    chunk = os.urandom(MB)
    with open(path, "wb") as image:
        for _ in range(size // MB):
            image.write(chunk)


def sha256_of(path):
    import hashlib

    with open(path, "rb") as image:
        return hashlib.file_digest(image, "sha256").hexdigest()


def transfer_step(client, image, remote, sha256, rate):
    """The upgrader's transfer step (probe, plan, stream what is missing):
    seconds spent, bytes sent."""
    size = os.path.getsize(image)
    started = time.monotonic()
    _, stdout, _ = client.exec_command(probe_command(remote))
    copy = parse_probe(stdout.read().decode())
    with open(image, "rb") as firmware:
        plan = plan_transfer(copy, firmware, size, sha256)
        sent = 0
        if not plan.skip:
            stream_file_to_router(
                client.get_transport(),
                firmware,
                size,
                remote,
                3600,
                offset=plan.offset,
                rate_limit=rate,
            )
            sent = size - plan.offset
    return time.monotonic() - started, sent


def main(measured_mb, target_mb, rate_mbps):
    from device.router import EmulatedRouter

    rate = int(rate_mbps * MB)
    scale = target_mb / measured_mb
    with EmulatedRouter() as router, tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, "image.bin")
        write_image(image, measured_mb * MB)
        sha256 = sha256_of(image)
        remote = os.path.join(router.tmp_dir, "staged.bin")
        client = connect(router)
        try:
            # without staging: everything inside the window
            plain_s, plain_sent = transfer_step(client, image, remote, sha256, rate)
            # with staging: the copy is on the router (staged before the
            # window, which is what the run above just did); in the window:
            staged_s, staged_sent = transfer_step(client, image, remote, sha256, rate)
        finally:
            client.close()
    assert plain_sent == measured_mb * MB and staged_sent == 0
    print(f"measured: {measured_mb} MB image, rate cap {rate_mbps} MB/s")
    print(
        f"  without staging, in the window: {plain_s:7.2f} s, "
        f"{plain_sent / MB:.0f} MB sent ({plain_sent / MB / plain_s:.2f} MB/s)"
    )
    print(
        f"  with staging, in the window:    {staged_s:7.2f} s, "
        f"{staged_sent} bytes sent (probe and sha256 only)"
    )
    print(f"scaled to {target_mb} MB (x{scale:g}, linear in the size):")
    plain_target, staged_target = plain_s * scale, staged_s * scale
    print(f"  without staging: {plain_target:7.1f} s of the window")
    print(f"  with staging:    {staged_target:7.1f} s of the window")
    print(
        f"  saved per device: {plain_target - staged_target:.1f} s "
        f"(nominal {target_mb / rate_mbps:.0f} s at {rate_mbps} MB/s)"
    )


if __name__ == "__main__":
    args = [float(arg) for arg in sys.argv[1:4]]
    defaults = [40, 200, 5]
    measured, target, rate_mbps = args + defaults[len(args) :]
    main(int(measured), int(target), rate_mbps)
