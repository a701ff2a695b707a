"""ASGI entry point of the test project for servers that import it directly
(uvicorn, daphne): Django is set up before the routes are imported."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
django_application = get_asgi_application()

from .routing import application  # noqa: E402,F401
