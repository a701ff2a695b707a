"""Images on S3-compatible object storage, against a real moto_server.

The web side (this process) uploads through the API and serves downloads
after the organization check; the worker side reads the image with ranged
GETs and streams it to a real emulated router, in this process (the whole
upgrade) and in a separate one with local directories of its own, so that
nothing can pass through a shared disk.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import types
import urllib.request
from unittest import mock

from botocore.config import Config
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.exceptions import ValidationError
from django.test import SimpleTestCase, TestCase, override_settings, tag
from django.urls import reverse
from django.utils.module_loading import import_string
from storages.backends.s3 import S3Storage

from ..base.models import OperationStatus
from ..exceptions import IrrecoverableModemFailure, RecoverableModemFailure
from ..image_stream import S3RangeReader, open_image
from ..transfer import prefix_sha256
from ..upgraders.stream_checks import IMAGE_HEAD_SIZE
from . import NEW_VERSION, ModemBuild, ModemFirmwareImage
from .s3_server import MotoS3Server, free_port
from .test_admin import admin_url
from .test_api import ApiTestMixin, api_url
from .test_engine import EngineTestMixin

MIB = 1024 * 1024
WORKER_SCRIPT = os.path.join(os.path.dirname(__file__), "object_storage_worker.py")


class MotoServerMixin:
    """One moto_server per test class; each test gets a bucket of its own."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.s3 = MotoS3Server().start()
        cls.addClassCleanup(cls.s3.stop)

    def setUp(self):
        self.bucket = self.s3.create_bucket()
        self.storage = self.s3.storage(self.bucket)
        # before the other mixins' setUp, which may already create images
        self.store_images_here()
        super().setUp()

    def store_images_here(self):
        pass

    def put_object(self, name, content):
        key = f"{self.storage.location}/{name}"
        self.s3.client().put_object(Bucket=self.bucket, Key=key, Body=content)

    def object_bytes(self, name):
        key = f"{self.storage.location}/{name}"
        return self.s3.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()


class WebSideMixin(MotoServerMixin):
    """Images are stored on S3; the web process has empty local roots of its own."""

    def store_images_here(self):
        field = ModemFirmwareImage._meta.get_field("file")
        patcher = mock.patch.object(field, "storage", self.storage)
        patcher.start()
        self.addCleanup(patcher.stop)
        web_root = tempfile.TemporaryDirectory(prefix="web-")
        self.addCleanup(web_root.cleanup)
        self.web_root = web_root.name
        local_roots = override_settings(
            MEDIA_ROOT=os.path.join(self.web_root, "media"),
            PRIVATE_STORAGE_ROOT=os.path.join(self.web_root, "private"),
            FILE_UPLOAD_TEMP_DIR=self.web_root,
        )
        local_roots.enable()
        self.addCleanup(local_roots.disable)

    def assertNothingLocal(self, root):
        files = [
            os.path.join(directory, name)
            for directory, _, names in os.walk(root)
            for name in names
        ]
        self.assertEqual(files, [])


class TestImageStream(MotoServerMixin, SimpleTestCase):
    def setUp(self):
        super().setUp()
        self.content = os.urandom(3 * MIB + 7)
        self.put_object("build/image.bin", self.content)
        self.image = types.SimpleNamespace(storage=self.storage, name="build/image.bin")

    def test_reads_from_any_offset(self):
        with open_image(self.image, offset=MIB + 3) as image:
            self.assertEqual(image.tell(), MIB + 3)
            self.assertEqual(image.read(10), self.content[MIB + 3 : MIB + 13])
            self.assertEqual(image.read(), self.content[MIB + 13 :])
            self.assertEqual(image.read(1), b"")
            # what plan_transfer then stream_file_to_router do
            self.assertEqual(
                prefix_sha256(image, 2 * MIB),
                hashlib.sha256(self.content[: 2 * MIB]).hexdigest(),
            )
            image.seek(3 * MIB)
            self.assertEqual(image.read(MIB), self.content[3 * MIB :])
            self.assertEqual(image.seek(-7, io.SEEK_END), 3 * MIB)

    def test_reads_across_get_windows(self):
        with mock.patch.object(S3RangeReader, "window", MIB):
            with open_image(self.image, offset=100) as image:
                chunks = list(iter(lambda: image.read(700 * 1024), b""))
        self.assertEqual(b"".join(chunks), self.content[100:])
        # the second read stopped at the end of the first GET's window (1 MiB
        # from where it started)
        self.assertEqual(len(chunks[1]), MIB - 700 * 1024)

    def test_never_downloads_the_whole_object(self):
        # S3File copies the whole object on its first read: it must not be used,
        # neither through open_image nor through the storage's own open()
        with mock.patch(
            "storages.backends.s3.S3File", side_effect=AssertionError("full copy")
        ):
            with open_image(self.image, offset=3 * MIB) as image:
                self.assertEqual(image.read(), self.content[3 * MIB :])
            with self.storage.open("build/image.bin") as image:
                image.seek(MIB)
                self.assertEqual(image.read(5), self.content[MIB : MIB + 5])
            # a plain django-storages S3 storage configured by the operator
            plain = S3Storage(**self.s3.storage_options(self.bucket))
            plain_image = types.SimpleNamespace(
                storage=plain, name="modem-firmware/build/image.bin"
            )
            with open_image(plain_image, offset=5) as image:
                self.assertIsInstance(image, S3RangeReader)
                self.assertEqual(image.read(5), self.content[5:10])

    def test_missing_object_is_irrecoverable(self):
        missing = types.SimpleNamespace(storage=self.storage, name="build/none.bin")
        with self.assertRaisesRegex(IrrecoverableModemFailure, "missing"):
            open_image(missing)
        with self.assertRaises(FileNotFoundError):
            self.storage.open("build/none.bin")

    def test_unreachable_storage_is_recoverable(self):
        options = self.s3.storage_options(self.bucket)
        options["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
        storage = type(self.storage)(
            client_config=Config(retries={"max_attempts": 1}), **options
        )
        image = types.SimpleNamespace(storage=storage, name="build/image.bin")
        with self.assertRaisesRegex(RecoverableModemFailure, "object storage"):
            open_image(image)


class TestModemFirmwareS3Storage(SimpleTestCase):
    @override_settings(
        AWS_QUERYSTRING_AUTH=False,
        AWS_S3_FILE_OVERWRITE=True,
        AWS_LOCATION="public",
        AWS_STORAGE_BUCKET_NAME="images",
    )
    def test_private_defaults_win_over_aws_settings(self):
        from ..private_storage.s3 import ModemFirmwareS3Storage

        storage = import_string(
            "openwisp_modem_upgrader.private_storage.s3.modem_firmware_s3_storage"
        )
        self.assertIsInstance(storage, ModemFirmwareS3Storage)
        for storage in (storage, ModemFirmwareS3Storage()):
            self.assertTrue(storage.querystring_auth)
            self.assertFalse(storage.file_overwrite)
            self.assertEqual(storage.location, "modem-firmware")
            self.assertEqual(storage.querystring_expire, 300)
            self.assertEqual(storage.transfer_config.max_in_memory_upload_chunks, 2)
        self.assertEqual(ModemFirmwareS3Storage().bucket_name, "images")
        self.assertEqual(
            ModemFirmwareS3Storage(bucket_name="other").bucket_name, "other"
        )


class TestObjectStorageWeb(WebSideMixin, ApiTestMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.build = self._create_build(category=self._create_category())
        self.content = os.urandom(2 * MIB + 5)

    def upload(self):
        self._login(self._manager())
        response = self.client.post(
            api_url("firmware_image_list", self.build.pk),
            {"type": "telit-fn990a", "file": self._upload(content=self.content)},
        )
        self.assertEqual(response.status_code, 201, response.data)
        return ModemFirmwareImage.objects.get()

    def test_upload_goes_to_the_object_store_hashed(self):
        image = self.upload()
        self.assertEqual(image.sha256, hashlib.sha256(self.content).hexdigest())
        self.assertEqual(image.size, len(self.content))
        self.assertEqual(self.object_bytes(image.file.name), self.content)
        # nothing stayed on the web server's disk, not even the upload's spool
        self.assertNothingLocal(self.web_root)

    def test_download_redirects_to_a_presigned_url_after_the_org_check(self):
        image = self.upload()
        for url in (
            api_url("firmware_image_download", image.pk),
            reverse("serve_private_modem_firmware", args=[image.file.name]),
        ):
            with self.subTest(url=url):
                response = self.client.get(url)
                self.assertEqual(response.status_code, 302)
                location = response["Location"]
                self.assertTrue(location.startswith(self.s3.endpoint_url), location)
                self.assertIn("Signature=", location)
                self.assertIn("no-store", response["Cache-Control"])
                with urllib.request.urlopen(location, timeout=30) as download:
                    self.assertEqual(download.read(), self.content)
                    self.assertIn("attachment", download.headers["Content-Disposition"])

    def test_admin_upload_and_link(self):
        self._login(self._get_admin())
        response = self.client.post(
            admin_url(ModemBuild, "add"),
            {
                "category": str(self.build.category.pk),
                "modem_model": self.build.modem_model,
                "version": "M0R.020000-B001",
                "images-TOTAL_FORMS": "1",
                "images-INITIAL_FORMS": "0",
                "images-0-file": self._upload(content=self.content),
                "images-0-type": "telit-fn990a",
                "images-0-boards": "[]",
            },
        )
        self.assertEqual(response.status_code, 302, response.content[:3000])
        image = ModemFirmwareImage.objects.get(build__version="M0R.020000-B001")
        self.assertEqual(image.sha256, hashlib.sha256(self.content).hexdigest())
        self.assertEqual(self.object_bytes(image.file.name), self.content)
        self.assertNothingLocal(self.web_root)
        # the admin links the org-checked download view, never the bucket
        page = self.client.get(admin_url(ModemFirmwareImage, "change", image.pk))
        view_url = reverse("serve_private_modem_firmware", args=[image.file.name])
        self.assertContains(page, f'href="{view_url}"')
        self.assertNotContains(page, self.s3.endpoint_url)

    def test_download_refused_to_another_organization(self):
        image = self.upload()
        self._login(self._manager(org=self.org_b, username="manager_b"))
        response = self.client.get(api_url("firmware_image_download", image.pk))
        self.assertEqual(response.status_code, 404)
        response = self.client.get(
            reverse("serve_private_modem_firmware", args=[image.file.name])
        )
        self.assertEqual(response.status_code, 403)
        self.assertNotIn("Location", response)
        self.client.logout()
        response = self.client.get(
            reverse("serve_private_modem_firmware", args=[image.file.name])
        )
        self.assertEqual(response.status_code, 401)

    def test_uploads_of_the_same_name_keep_their_own_objects(self):
        first = self.upload()
        other_build = self._create_build(
            category=self.build.category, version="M0R.010200-B025"
        )
        second = self._create_image(
            # binary: the Telit upgrader refuses text at upload
            build=other_build,
            file=self._upload(content=b"other\0"),
        )
        same_build = self._create_image(
            build=self.build, type="generic", file=self._upload(content=b"third")
        )
        self.assertNotEqual(same_build.file.name, first.file.name)
        self.assertEqual(self.object_bytes(first.file.name), self.content)
        self.assertEqual(self.object_bytes(second.file.name), b"other\0")
        self.assertEqual(self.object_bytes(same_build.file.name), b"third")

    def test_stored_object_checked_by_its_start_only(self):
        """An image put in the bucket directly is checked at validation with
        ranged reads of its first 64 KiB, never downloaded whole."""
        text = b"<html>not firmware</html>\n" * 100_000  # 2.6 MB of text
        self.put_object("direct/junk.bin", text)
        image = ModemFirmwareImage(build=self.build, type="telit-fn990a")
        image.file.name = "direct/junk.bin"
        read = []
        original = S3RangeReader.read

        def counting_read(reader, size=-1):
            chunk = original(reader, size)
            read.append(len(chunk))
            return chunk

        with mock.patch.object(S3RangeReader, "read", counting_read):
            with self.assertRaisesMessage(ValidationError, "This file is text"):
                image.full_clean()
        self.assertEqual(sum(read), IMAGE_HEAD_SIZE)

    def test_delete_removes_the_object(self):
        image = self.upload()
        name = image.file.name
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.delete(api_url("firmware_image_detail", image.pk))
        self.assertEqual(response.status_code, 204)
        self.assertFalse(self.storage.exists(name))


@tag("router")
class TestWorkerStreamsFromObjectStorage(
    WebSideMixin, EngineTestMixin, StaticLiveServerTestCase
):
    def router_image(self):
        return os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", f"{self.image.sha256}.bin"
        )

    def place_on_router(self, path, length):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with self.image.file.open("rb") as source, open(path, "wb") as target:
            target.write(source.read(length))

    def test_upgrade_resumes_from_object_storage(self):
        self.image = self._create_firmware_image(size=4 * MIB)
        self.assertTrue(self.storage.exists(self.image.file.name))
        self.place_on_router(self.router_image(), MIB)
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("holds the first 1048576 bytes intact", operation.log)
        self.assertIn("sha256 verified", operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)
        self.assertNothingLocal(self.web_root)

    def run_worker(self, worker_root, remote_path):
        arguments = {
            "root": worker_root,
            "storage": self.s3.storage_options(self.bucket),
            "name": self.image.file.name,
            "size": self.image.size,
            "sha256": self.image.sha256,
            "remote_path": remote_path,
            "router": {
                "host": self.router.host,
                "port": self.router.port,
                "key_path": self.router.private_key_path,
            },
        }
        tmp = os.path.join(worker_root, "tmp")
        os.makedirs(tmp, exist_ok=True)
        result = subprocess.run(
            [sys.executable, WORKER_SCRIPT, json.dumps(arguments)],
            cwd=worker_root,
            env=dict(os.environ, TMPDIR=tmp),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout.splitlines()[-1])

    def test_worker_process_resumes_from_the_object_store(self):
        size = 16 * MIB
        self.image = self._create_firmware_image(size=size)
        worker_root = tempfile.TemporaryDirectory(prefix="worker-")
        self.addCleanup(worker_root.cleanup)
        remote = os.path.join(self.remote_dir, "image.bin")
        # a dropped link left the router with the first part of the image
        self.place_on_router(remote, 5 * MIB + 3)
        outcome = self.run_worker(worker_root.name, remote)
        self.assertEqual(
            (outcome["reason"], outcome["offset"]), ("resume", 5 * MIB + 3)
        )
        self.assertEqual(self.router_sha256(remote), self.image.sha256)
        # memory flat in the image's size: a local copy in memory would grow
        # by the whole image (about 1 MiB measured)
        growth = (outcome["peak_rss_kib"] - outcome["rss_before_kib"]) * 1024
        self.assertLess(growth, size / 4)
        self.assertEqual(outcome["local_files"], [])
        self.assertNothingLocal(self.web_root)

    def router_sha256(self, path):
        listing = subprocess.run(
            self.router.ssh_command(f"sha256sum {path}"),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return listing.stdout.split()[0]
