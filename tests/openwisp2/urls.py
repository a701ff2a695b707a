from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path, reverse_lazy
from django.views.generic import RedirectView

from openwisp_users.api.urls import get_api_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("openwisp_controller.urls")),
    path("", include("openwisp_modem_upgrader.urls")),
    path("api/v1/", include((get_api_urls(), "users"), namespace="users")),
    path("", RedirectView.as_view(url=reverse_lazy("admin:index")), name="index"),
]

urlpatterns += staticfiles_urlpatterns()
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
