"""The image's own URLs (openwisp/urls.py) and openwisp-modem-upgrader's."""

from django.urls import include, path
from openwisp.urls import urlpatterns as image_urlpatterns

urlpatterns = image_urlpatterns + [path("", include("openwisp_modem_upgrader.urls"))]
