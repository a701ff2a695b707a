import os

from django.conf import settings
from private_storage.storage.files import PrivateFileSystemStorage

# Kept apart from other modules' private files (e.g. router firmware) so that
# the download view of this module can only ever serve modem images.
modem_firmware_storage = PrivateFileSystemStorage(
    location=os.path.join(settings.PRIVATE_STORAGE_ROOT, "modem-firmware"),
    base_url="/modem-firmware/",
)
