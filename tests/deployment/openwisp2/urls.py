"""The URLs of an ansible-openwisp2 deployment with monitoring, network
topology and the firmware upgrader enabled, and this module's URLs where the
recipe adds them (``openwisp2_extra_urls``)."""

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path, reverse_lazy
from django.views.generic import RedirectView
from openwisp_firmware_upgrader.private_storage.urls import (
    urlpatterns as firmware_private_storage_urls,
)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("openwisp_controller.urls")),
    path("api/v1/", include("openwisp_utils.api.urls")),
    path("api/v1/", include("openwisp_users.api.urls")),
    path("", include("openwisp_network_topology.urls")),
    path("", include("openwisp_firmware_upgrader.urls")),
    path(
        "", include((firmware_private_storage_urls, "firmware"), namespace="firmware")
    ),
    path("", include("openwisp_monitoring.urls")),
]
if "openwisp_modem_upgrader" in settings.INSTALLED_APPS:
    urlpatterns.append(path("", include("openwisp_modem_upgrader.urls")))
urlpatterns += [
    path("", RedirectView.as_view(url=reverse_lazy("admin:index")), name="index"),
]
urlpatterns += staticfiles_urlpatterns()
