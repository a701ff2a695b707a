"""Reads a firmware image's bytes from any offset, wherever it is stored.

Workers on other machines than the web server read images from object
storage (S3 through django-storages). django-storages' own ``S3File``
downloads the whole object on its first read, into memory unless
``AWS_S3_MAX_MEMORY_SIZE`` is set, so images on S3 are read here with
ranged GETs instead: one request from the current position on, streamed
as it is read, and a new one after each seek (``plan_transfer`` hashes a
prefix, then ``stream_file_to_router`` seeks to where the router's copy
ends). Memory stays flat in the image's size.
"""

import io

from .exceptions import IrrecoverableModemFailure, RecoverableModemFailure

try:
    from botocore.exceptions import BotoCoreError, ClientError
    from storages.backends.s3 import S3Storage
    from storages.utils import clean_name
except ImportError:  # the optional "s3" extra is not installed
    S3Storage = None


def is_object_storage(storage):
    """True for S3-compatible storages: their files are not on a local disk."""
    return S3Storage is not None and isinstance(storage, S3Storage)


def open_image(field_file, offset=0):
    """The image's content as a read-only binary file, positioned at ``offset``.

    Use it as a context manager. Local files are opened and seeked; objects
    on S3 are read with ranged GETs (see the module's docstring).
    """
    storage = field_file.storage
    if is_object_storage(storage):
        image = S3RangeReader(storage, field_file.name)
    else:
        image = storage.open(field_file.name, "rb")
    image.seek(offset)
    return image


class S3RangeReader(io.RawIOBase):
    """A seekable, read-only view of one S3 object, streamed by ranged GETs.

    A storage error while reading raises ``RecoverableModemFailure`` (the
    object store may answer the retry), a missing object
    ``IrrecoverableModemFailure``.
    """

    def __init__(self, storage, name):
        super().__init__()
        self.name = name
        self._object = storage.bucket.Object(storage._normalize_name(clean_name(name)))
        self._position = 0
        self._body = None  # the open GET, or None after a seek
        try:
            self.size = self._object.content_length  # one HEAD request
        except (BotoCoreError, ClientError) as error:
            raise _storage_failure(name, error) from error

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._position

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self.size
        if offset < 0:
            raise ValueError("negative seek position")
        if offset != self._position:
            self._close_body()
            self._position = offset
        return self._position

    def read(self, size=-1):
        left = self.size - self._position
        if left <= 0:
            return b""
        size = left if size is None or size < 0 else min(size, left)
        try:
            if self._body is None:
                # open-ended: the rest of the image streams in one request
                response = self._object.get(Range=f"bytes={self._position}-")
                self._body = response["Body"]
            chunk = self._body.read(size)
        except (BotoCoreError, ClientError) as error:
            self._close_body()
            raise _storage_failure(self.name, error) from error
        self._position += len(chunk)
        return chunk

    def readinto(self, buffer):
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self):
        self._close_body()
        super().close()

    def _close_body(self):
        if self._body is not None:
            self._body.close()
            self._body = None


def _storage_failure(name, error):
    if isinstance(error, ClientError) and error.response.get("Error", {}).get(
        "Code"
    ) in ("404", "NoSuchKey"):
        return IrrecoverableModemFailure(
            f"the image {name} is missing from the object storage"
        )
    return RecoverableModemFailure(
        f"reading the image from the object storage failed: {error}"
    )
