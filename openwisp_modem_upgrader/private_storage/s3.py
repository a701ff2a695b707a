"""Modem images on S3-compatible object storage (the optional "s3" extra).

Set ``OPENWISP_MODEM_UPGRADER_PRIVATE_STORAGE_INSTANCE`` to
``"openwisp_modem_upgrader.private_storage.s3.modem_firmware_s3_storage"``
and configure django-storages' ``AWS_*`` settings (bucket, endpoint,
credentials); docs/developer/object-storage.rst has the details.
"""

from boto3.s3.transfer import TransferConfig
from django.core.files import File
from django.urls import reverse
from storages.backends.s3 import S3Storage

from ..exceptions import IrrecoverableModemFailure
from ..image_stream import S3RangeReader


class ModemFirmwareS3Storage(S3Storage):
    """django-storages' S3 storage with what private modem images need.

    - ``url()`` is the download view's (as for local images, e.g. the
      admin's link), which checks the user's organization and only then
      redirects to ``presigned_url()``, presigned and short-lived;
    - an upload never replaces another image's object of the same name;
    - objects sit under their own prefix, apart from other files;
    - reading streams with ranged GETs instead of downloading the whole
      object first (``S3File``), so no code path keeps a full copy;
    - an upload holds at most a few parts in memory (see below).
    """

    def get_default_settings(self):
        defaults = super().get_default_settings()
        defaults.update(
            querystring_auth=True,
            querystring_expire=300,
            file_overwrite=False,
            location="modem-firmware",
            transfer_config=upload_transfer_config(),
        )
        return defaults

    def url(self, name, parameters=None, expire=None, http_method=None):
        return reverse("serve_private_modem_firmware", kwargs={"path": name})

    def presigned_url(self, name, parameters=None):
        return super().url(name, parameters=parameters)

    def _open(self, name, mode="rb"):
        if mode != "rb":
            return super()._open(name, mode)
        try:
            return File(S3RangeReader(self, name), name=name)
        except IrrecoverableModemFailure as error:  # the object is missing
            raise FileNotFoundError(f"File does not exist: {name}") from error


def upload_transfer_config():
    """Multipart uploads holding at most two 8 MiB parts in memory.

    s3transfer reads the parts of a file object into memory ahead of the
    threads that send them, up to ten parts: about 100 MiB more per upload
    in a web process, measured (benchmarks/object_storage_benchmark.py).
    """
    config = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)
    # not a TransferConfig argument, but read by s3transfer's manager
    config.max_in_memory_upload_chunks = 2
    return config


modem_firmware_s3_storage = ModemFirmwareS3Storage()
