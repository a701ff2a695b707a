"""A worker on another machine: sends an image from object storage to a router.

Run as a separate process (``python object_storage_worker.py '<json>'``) with
its own MEDIA_ROOT and private storage root, and no database: it knows the
image only by its storage name, size and sha256, as the worker's task reads
them from the database. It does what ``WrapperUpgrader.transfer_firmware``
does (probe the router's copy, plan, stream from the offset) and prints one
JSON line: the plan, the worker's memory, and the files left in its root.
"""

import json
import os
import sys
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_rss_kib():
    """This process's peak RSS (``VmHWM``).

    Not ``getrusage``: its ``ru_maxrss`` carries the parent's peak across
    fork and exec, so a child of the test process would report the latter.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(arguments):
    sys.path.insert(0, REPO)
    import django
    from django.conf import settings

    root = arguments["root"]
    settings.configure(
        MEDIA_ROOT=os.path.join(root, "media"),
        PRIVATE_STORAGE_ROOT=os.path.join(root, "private"),
        FILE_UPLOAD_TEMP_DIR=os.path.join(root, "tmp"),
    )
    django.setup()
    import paramiko

    from openwisp_modem_upgrader.image_stream import open_image
    from openwisp_modem_upgrader.private_storage.s3 import ModemFirmwareS3Storage
    from openwisp_modem_upgrader.transfer import (
        parse_probe,
        plan_transfer,
        probe_command,
        stream_file_to_router,
    )

    storage = ModemFirmwareS3Storage(**arguments["storage"])
    image = types.SimpleNamespace(storage=storage, name=arguments["name"])
    router = arguments["router"]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        router["host"],
        port=router["port"],
        username="root",
        key_filename=router["key_path"],
        look_for_keys=False,
        allow_agent=False,
    )
    remote = arguments["remote_path"]
    size, sha256 = arguments["size"], arguments["sha256"]
    _, stdout, _ = client.exec_command(probe_command(remote), timeout=30)
    copy = parse_probe(stdout.read().decode())
    # the S3 client's service model takes megabytes, once: load it before
    # measuring what streaming costs
    storage.size(image.name)
    rss_before = peak_rss_kib()
    started = time.monotonic()
    with open_image(image) as firmware:
        plan = plan_transfer(copy, firmware, size, sha256)
        if not plan.skip:
            stream_file_to_router(
                client.get_transport(), firmware, size, remote, 120, plan.offset
            )
    seconds = time.monotonic() - started
    client.close()
    left = [
        os.path.join(directory, name)
        for directory, _, names in os.walk(root)
        for name in names
    ]
    print(
        json.dumps(
            {
                "reason": plan.reason,
                "offset": plan.offset,
                "seconds": seconds,
                "rss_before_kib": rss_before,
                "peak_rss_kib": peak_rss_kib(),
                "local_files": left,
            }
        )
    )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
