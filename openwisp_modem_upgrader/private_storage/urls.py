from django.urls import path

from .. import settings as app_settings
from . import views

urlpatterns = [
    path(
        f"{app_settings.PRIVATE_STORAGE_URL_PATH}<path:path>",
        views.modem_firmware_download,
        name="serve_private_modem_firmware",
    ),
]
