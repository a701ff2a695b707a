"""Reads a firmware image's bytes from any offset, wherever it is stored.

Workers on other machines than the web server read images from object
storage (S3 through django-storages). django-storages' own ``S3File``
downloads the whole object on its first read, into memory unless
``AWS_S3_MAX_MEMORY_SIZE`` is set, so images on S3 are read here with
ranged GETs instead: requests of up to 64 MiB from the current position
on, streamed as they are read, and a new one after each seek
(``plan_transfer`` hashes a prefix, then ``stream_file_to_router`` seeks to
where the router's copy ends). Memory stays flat in the image's size.
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

    Each GET covers at most ``window`` bytes: a transfer capped to a
    cellular link's rate reads one image for hours, longer than object
    stores keep a slow response open.

    A storage error while reading raises ``RecoverableModemFailure`` (the
    object store may answer the retry), a missing object
    ``IrrecoverableModemFailure``.
    """

    window = 64 * 1024 * 1024

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
        if size is None or size < 0:  # the rest, as io's readall()
            return b"".join(iter(lambda: self.read(1024 * 1024), b""))
        size = min(size, self.size - self._position)
        if size <= 0:
            return b""
        chunk = self._read_body(size)
        if not chunk:
            # the end of this GET's window: the next one starts here
            self._close_body()
            chunk = self._read_body(size)
        self._position += len(chunk)
        return chunk

    def _read_body(self, size):
        try:
            if self._body is None:
                last = min(self._position + self.window, self.size) - 1
                response = self._object.get(Range=f"bytes={self._position}-{last}")
                self._body = response["Body"]
            return self._body.read(size)
        except (BotoCoreError, ClientError) as error:
            self._close_body()
            raise _storage_failure(self.name, error) from error

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
