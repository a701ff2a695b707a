from django.urls import path

from .websockets import BatchModemUpgradeConsumer, DeviceModemUpgradeConsumer


def get_routes():
    return [
        path(
            "ws/modem-upgrader/device/<uuid:pk>/",
            DeviceModemUpgradeConsumer.as_asgi(),
        ),
        path(
            "ws/modem-upgrader/batch/<uuid:pk>/",
            BatchModemUpgradeConsumer.as_asgi(),
        ),
    ]
