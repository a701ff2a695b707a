from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.core.asgi import get_asgi_application
from openwisp_firmware_upgrader.routing import get_routes as get_upgrader_routes
from openwisp_network_topology.routing import (
    websocket_urlpatterns as network_topology_routes,
)

from openwisp_controller.routing import get_routes as get_controller_routes

routes = get_controller_routes() + network_topology_routes + get_upgrader_routes()
if "openwisp_modem_upgrader" in settings.INSTALLED_APPS:
    from openwisp_modem_upgrader.routing import get_routes

    routes += get_routes()

application = ProtocolTypeRouter(
    {
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(routes))
        ),
        "http": get_asgi_application(),
    }
)
