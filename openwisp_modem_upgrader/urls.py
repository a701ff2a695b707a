from django.urls import include, path

from . import settings as app_settings

urlpatterns = [path("", include("openwisp_modem_upgrader.private_storage.urls"))]

if app_settings.API_ENABLED:
    urlpatterns.append(
        path("api/v1/modem-upgrader/", include("openwisp_modem_upgrader.api.urls"))
    )
