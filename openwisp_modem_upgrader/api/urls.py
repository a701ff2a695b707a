from django.urls import path

from . import device

app_name = "modem_upgrader"

urlpatterns = [
    path(
        "upgrade-operation/<uuid:pk>/",
        device.device_report,
        name="api_upgrade_operation_detail",
    ),
]
