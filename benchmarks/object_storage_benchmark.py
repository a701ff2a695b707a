#!/usr/bin/env python
"""Images on S3-compatible storage: worker and web memory against image size.

Usage: .venv/bin/python benchmarks/object_storage_benchmark.py [SIZE_MB ...]
(default: 64 1024)

Starts ``moto_server`` on 127.0.0.1 and an emulated router (dropbear +
busybox). For each size, separate processes with empty local directories of
their own:

* upload: ``ModemFirmwareS3Storage.save()`` of a local file, as the web
  process stores an upload (multipart, s3transfer);
* stream: the worker of the tests (``object_storage_worker.py``) reads the
  object with ranged GETs (``image_stream``) and streams it to the router;
  the router's copy is then checked (size and sha256);
* S3File (sizes up to 256 MB): django-storages' own ``storage.open()`` read
  in 1 MiB chunks, for reference: it downloads the whole object first.

Peak RSS is the process's ``VmHWM``; growth is the peak less the RSS once
imports, the S3 client and the SSH session are ready. Memory must be flat in
the size for upload and stream.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")

import django  # noqa: E402

django.setup()

from device.router import EmulatedRouter  # noqa: E402

from openwisp_modem_upgrader.tests.s3_server import MotoS3Server  # noqa: E402

WORKER = os.path.join(
    REPO, "openwisp_modem_upgrader", "tests", "object_storage_worker.py"
)
MIB = 1024 * 1024

# one child per measurement: argv[1] is the repository, argv[2] a JSON object
CHILD_PRELUDE = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
args = json.loads(sys.argv[2])
from django.conf import settings
settings.configure(MEDIA_ROOT=os.path.join(args["root"], "media"),
                   PRIVATE_STORAGE_ROOT=os.path.join(args["root"], "private"))
import django
django.setup()
def peak():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
"""

UPLOAD_CHILD = CHILD_PRELUDE + r"""
from django.core.files import File
from openwisp_modem_upgrader.private_storage.s3 import ModemFirmwareS3Storage
storage = ModemFirmwareS3Storage(**args["storage"])
storage.exists("warm-up")
before = peak()
start = time.monotonic()
with open(args["path"], "rb") as image:
    name = storage.save(args["name"], File(image))
print(json.dumps({"name": name, "seconds": time.monotonic() - start,
                  "rss_before_kib": before, "peak_rss_kib": peak()}))
"""

S3FILE_CHILD = CHILD_PRELUDE + r"""
from storages.backends.s3 import S3Storage
storage = S3Storage(**args["storage"])
storage.exists("warm-up")
before = peak()
start = time.monotonic()
with storage.open(args["key"], "rb") as image:
    while image.read(1024 * 1024):
        pass
print(json.dumps({"seconds": time.monotonic() - start,
                  "rss_before_kib": before, "peak_rss_kib": peak()}))
"""


def run_child(arguments, code=None):
    command = [sys.executable, WORKER, json.dumps(arguments)]
    if code:
        command = [sys.executable, "-c", code, REPO, json.dumps(arguments)]
    with tempfile.TemporaryDirectory(prefix="bench-process-") as root:
        arguments["root"] = root
        command[-1] = json.dumps(arguments)
        out = subprocess.run(
            command, check=True, capture_output=True, text=True, cwd=root
        ).stdout
    return json.loads(out.splitlines()[-1])


def write_image(path, size_mb):
    """A generated image; returns its sha256."""
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with open(path, "wb") as image:
        for index in range(size_mb):
            chunk = index.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            image.write(chunk)
    return digest.hexdigest()


def growth(result):
    return (result["peak_rss_kib"] - result["rss_before_kib"]) / 1024


def main(sizes):
    with MotoS3Server() as s3, EmulatedRouter() as router, tempfile.TemporaryDirectory(
        prefix="bench-images-"
    ) as tmp:
        options = s3.storage_options(s3.create_bucket())
        print(
            f"{'size':>7} {'what':>7} {'MB/s':>7} {'peak RSS MiB':>13} "
            f"{'growth MiB':>11}"
        )

        def row(size_mb, what, result):
            print(
                f"{size_mb:>5}MB {what:>7} {size_mb / result['seconds']:>7.1f} "
                f"{result['peak_rss_kib'] / 1024:>13.1f} {growth(result):>11.1f}"
            )

        for size_mb in sizes:
            path = os.path.join(tmp, "image.bin")
            sha256 = write_image(path, size_mb)
            upload = run_child(
                {"storage": options, "path": path, "name": f"bench/{size_mb}.bin"},
                UPLOAD_CHILD,
            )
            os.unlink(path)
            row(size_mb, "upload", upload)
            remote = os.path.join(router.tmp_dir, "bench.bin")
            stream = run_child(
                {
                    "storage": options,
                    "name": upload["name"],
                    "size": size_mb * MIB,
                    "sha256": sha256,
                    "remote_path": remote,
                    "router": {
                        "host": router.host,
                        "port": router.port,
                        "key_path": router.private_key_path,
                    },
                }
            )
            with open(remote, "rb") as received:
                digest = hashlib.file_digest(received, "sha256").hexdigest()
            assert digest == sha256, "the router's copy differs from the image"
            os.unlink(remote)
            row(size_mb, "stream", stream)
            if size_mb <= 64:
                key = f"modem-firmware/{upload['name']}"
                row(
                    size_mb,
                    "S3File",
                    run_child({"storage": options, "key": key}, S3FILE_CHILD),
                )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [64, 1024])
