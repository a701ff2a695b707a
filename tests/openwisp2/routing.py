from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application

from openwisp_controller.routing import get_routes as get_controller_routes
from openwisp_modem_upgrader.routing import get_routes as get_modem_upgrader_routes

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter(get_controller_routes() + get_modem_upgrader_routes())
            )
        ),
    }
)
