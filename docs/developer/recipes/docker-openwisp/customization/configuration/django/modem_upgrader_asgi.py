"""The websocket service's application: the routes of the image's
openwisp/asgi.py and openwisp-modem-upgrader's (live upgrade progress)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from openwisp.asgi import django_asgi_app, routes

from openwisp_modem_upgrader.routing import get_routes

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(routes + get_routes()))
        ),
    }
)
