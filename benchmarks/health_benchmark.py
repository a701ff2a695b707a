#!/usr/bin/env python
"""The time a health-verified upgrade adds: one ``modem-health.sh`` reading
for the pre-flight gate and one for the post-flash verification (when the
service is back at the first look), over an open SSH session as the
upgrader runs them.

Usage: .venv/bin/python benchmarks/health_benchmark.py [ROUNDS]

The router is a real dropbear + busybox router on 127.0.0.1 with the
emulated FN990A (AT answers through the fake sms_tool, netifd's ifstatus,
a real ``ping -I lo 127.0.0.1``, a real ``curl --interface lo`` to an HTTP
target on the router's loopback side). Prints the median and the worst
reading, without and with the data session and a ping or an HTTP
reachability check, and the total a gate plus one verification adds per
upgrade.
"""

import os
import shlex
import statistics
import sys
import time

import paramiko

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from device.router import DEVICE_SCRIPTS, EmulatedRouter  # noqa: E402

from openwisp_modem_upgrader.health import parse_health  # noqa: E402


def connect(router):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        router.host,
        port=router.port,
        username="root",
        key_filename=router.private_key_path,
        allow_agent=False,
        look_for_keys=False,
    )
    return client


def reading_seconds(client, args):
    command = " ".join(
        shlex.quote(a) for a in ["sh", f"{DEVICE_SCRIPTS}/modem-health.sh", *args]
    )
    start = time.monotonic()
    stdin, stdout, stderr = client.exec_command(command, timeout=60)
    output = stdout.read().decode()
    stdout.channel.recv_exit_status()
    elapsed = time.monotonic() - start
    for stream in (stdin, stdout, stderr):
        stream.close()
    stdout.channel.close()  # dropbear allows few channels per connection
    parse_health(output)  # a real reading, or this fails
    return elapsed


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    # the router's real defaults (no FAST_SCRIPT_ENV shortcuts but AT_TIMEOUT)
    with EmulatedRouter(ssh=True, script_env={"AT_TIMEOUT": "5"}) as router:
        client = connect(router)
        try:
            cases = {
                "modem only (defaults)": [],
                "with data session + ping": [
                    "--interface",
                    "wwan",
                    "--target",
                    "127.0.0.1",
                ],
                "with data session + HTTP": [
                    "--interface",
                    "wwan",
                    "--target",
                    router.serve_http(),
                ],
            }
            medians = {}
            for name, args in cases.items():
                times = [reading_seconds(client, args) for _ in range(rounds)]
                medians[name] = statistics.median(times)
                print(
                    f"{name:36} median {medians[name]:.2f} s, "
                    f"worst {max(times):.2f} s ({rounds} readings)"
                )
            for name, median in medians.items():
                added = 2 * median
                print(f"added per upgrade, {name}: {added:.2f} s (gate + 1 check)")
        finally:
            client.close()


if __name__ == "__main__":
    main()
