"""A real S3-compatible server for the tests: ``moto_server`` on 127.0.0.1.

Started and stopped (by PID) by the test class that needs it; each test
takes a bucket of its own.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

# credentials and region are always given explicitly: boto3 must never look
# for them on the network (the instance metadata address)
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

HOST = "127.0.0.1"
CREDENTIALS = {
    "access_key": "testing",
    "secret_key": "testing",
    "region_name": "us-east-1",
}


def free_port():
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class MotoS3Server:
    def __init__(self):
        self.process = None
        self.port = None
        self.log = None

    @property
    def endpoint_url(self):
        return f"http://{HOST}:{self.port}"

    def start(self, timeout=20):
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        executable = os.path.join(os.path.dirname(sys.executable), "moto_server")
        env = dict(os.environ)
        # objects above 1 MiB are kept on moto's disk, not in its memory
        env.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(1024 * 1024))
        self.process = subprocess.Popen(
            [executable, "-H", HOST, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("moto_server did not start")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def storage_options(self, bucket):
        """What ``ModemFirmwareS3Storage`` needs to use ``bucket`` here."""
        return dict(
            CREDENTIALS,
            bucket_name=bucket,
            endpoint_url=self.endpoint_url,
            addressing_style="path",
        )

    def create_bucket(self):
        bucket = f"modem-images-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def storage(self, bucket=None, **options):
        from ..private_storage.s3 import ModemFirmwareS3Storage

        bucket = bucket or self.create_bucket()
        return ModemFirmwareS3Storage(**self.storage_options(bucket), **options)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["access_key"],
            aws_secret_access_key=CREDENTIALS["secret_key"],
            region_name=CREDENTIALS["region_name"],
        )
