"""Hashes firmware uploads while they stream in.

Add ``openwisp_modem_upgrader.uploads.HashingUploadHandler`` in front of
Django's ``FILE_UPLOAD_HANDLERS``: every uploaded file is then spooled to a
temporary file (never kept in memory) and carries its sha256, so saving an
image does not read it again. Bytes past the maximum image size are counted
but not stored, and validation rejects the upload with a clear message.
"""

import hashlib

from django.core.files.uploadhandler import TemporaryFileUploadHandler

from . import settings as app_settings


class HashingUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.digest = hashlib.sha256()
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > app_settings.MAX_FILE_SIZE:
            return None  # oversized: keep counting, stop writing to disk
        self.digest.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        uploaded.size = self.received
        if self.received <= app_settings.MAX_FILE_SIZE:
            uploaded.modem_sha256 = self.digest.hexdigest()
        return uploaded
