#!/usr/bin/env python
"""One image to one router, pushed over SSH by a worker versus pulled by
the router itself: how long a worker is held and how many image bytes go
through the worker's SSH connection.

Usage: .venv/bin/python benchmarks/pull_vs_push.py [SIZE_MB]   (default 64)

The router is a real dropbear + busybox one on 127.0.0.1 (tests/device).
Push is the upgrader's ``stream_file_to_router``. Pull is what the worker
does in the pull mode: one SSH command that starts the download in the
background (the wrapper does it with curl -C -) and returns; the download
then runs without the worker. The HTTP side of this script is a small
stand-in server streaming the file in the view's 64 KiB chunks with Range
support, not Django (the view itself is tested end to end in
openwisp_modem_upgrader/tests/test_router_pull.py).
"""

import hashlib
import os
import shlex
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paramiko

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from openwisp_modem_upgrader.transfer import stream_file_to_router  # noqa

CHUNK = 64 * 1024


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


def image_server(path):
    served = [0]
    size = os.path.getsize(path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            first = 0
            header = self.headers.get("Range")
            if header:
                first = int(header.split("=")[1].split("-")[0])
            self.send_response(206 if header else 200)
            self.send_header("Content-Length", str(size - first))
            if header:
                self.send_header("Content-Range", f"bytes {first}-{size - 1}/{size}")
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(first)
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    self.wfile.write(chunk)
                    served[0] += len(chunk)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, served


def push(router, image, remote):
    size = os.path.getsize(image)
    sent = [0]
    client = connect(router)
    started = time.monotonic()
    with open(image, "rb") as f:
        stream_file_to_router(
            client.get_transport(),
            f,
            size,
            remote,
            600,
            on_progress=lambda done, total: sent.__setitem__(0, done),
        )
    held = time.monotonic() - started
    client.close()
    return held, held, sent[0]


def pull(router, image, remote):
    size = os.path.getsize(image)
    server, served = image_server(image)
    url = f"http://127.0.0.1:{server.server_address[1]}/image"
    marker = remote + ".done"
    command = (
        f"(curl -s -f -C - -o {shlex.quote(remote)} {shlex.quote(url)};"
        f" echo $? > {shlex.quote(marker)}) </dev/null >/dev/null 2>&1 &"
    )
    client = connect(router)
    started = time.monotonic()
    _, stdout, _ = client.exec_command(command)
    stdout.channel.recv_exit_status()
    held = time.monotonic() - started  # the worker is free from here
    client.close()
    while not os.path.exists(marker):
        time.sleep(0.05)
    wall = time.monotonic() - started
    server.shutdown()
    assert os.path.getsize(remote) == size
    return held, wall, 0, served[0]


def main(size_mb):
    from device.router import EmulatedRouter

    with EmulatedRouter() as router, tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, "image.bin")
        chunk = os.urandom(1024 * 1024)
        with open(image, "wb") as f:
            for _ in range(size_mb):
                f.write(chunk)
        with open(image, "rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        print(f"{size_mb} MiB image, one emulated router on loopback")
        print(
            f"{'mode':>5} {'worker held s':>14} {'until on router s':>18} "
            f"{'image MiB via SSH':>18} {'MiB via HTTP':>13}"
        )
        for mode in ("push", "pull"):
            remote = os.path.join(router.tmp_dir, f"{mode}.bin")
            if mode == "push":
                held, wall, ssh_bytes = push(router, image, remote)
                http_bytes = 0
            else:
                held, wall, ssh_bytes, http_bytes = pull(router, image, remote)
            with open(remote, "rb") as received:
                digest = hashlib.file_digest(received, "sha256").hexdigest()
            assert digest == sha256, f"{mode}: the router's copy is not the image"
            print(
                f"{mode:>5} {held:>14.3f} {wall:>18.2f} "
                f"{ssh_bytes / 2**20:>18.1f} {http_bytes / 2**20:>13.1f}"
            )
            os.unlink(remote)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 64)
