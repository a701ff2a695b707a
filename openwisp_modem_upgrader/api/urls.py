"""URLs of the operator API and of the device progress reports.

Included under ``api/v1/modem-upgrader/`` by ``openwisp_modem_upgrader.urls``.
``upgrade-operation/<pk>/`` serves both operators (GET) and the routers'
key-authenticated progress reports (POST/PATCH): the reports have a route of
their own, ``api_device_report``, first, which sends any other method on to
the operators' view (Django routes by path, not by method). Deployments
serve the reports before the URL resolver (``api/report_route.py``).
"""

from django.urls import include, path
from drf_yasg import openapi
from drf_yasg.views import get_schema_view
from rest_framework.permissions import AllowAny

from . import carrier, device, image_download, inventory, policy, views

app_name = "modem_upgrader"

API_PREFIX = "api/v1/modem-upgrader/"

operator_urlpatterns = [
    path("category/", views.category_list, name="api_category_list"),
    path("category/<uuid:pk>/", views.category_detail, name="api_category_detail"),
    path("build/", views.build_list, name="api_build_list"),
    path("policy/", policy.firmware_policy_list, name="api_firmware_policy_list"),
    path(
        "policy/<uuid:pk>/",
        policy.firmware_policy_detail,
        name="api_firmware_policy_detail",
    ),
    path("build/<uuid:pk>/", views.build_detail, name="api_build_detail"),
    path(
        "build/<uuid:pk>/image/",
        views.firmware_image_list,
        name="api_firmware_image_list",
    ),
    path(
        "build/<uuid:pk>/upgrade/",
        views.build_upgrade,
        name="api_build_upgrade",
    ),
    path(
        "firmware-image/<uuid:pk>/",
        views.firmware_image_detail,
        name="api_firmware_image_detail",
    ),
    path(
        "firmware-image/<uuid:pk>/download/",
        views.firmware_image_download,
        name="api_firmware_image_download",
    ),
    path(
        "batch-upgrade-operation/",
        views.batch_upgrade_operation_list,
        name="api_batch_upgrade_operation_list",
    ),
    path(
        "batch-upgrade-operation/<uuid:pk>/",
        views.batch_upgrade_operation_detail,
        name="api_batch_upgrade_operation_detail",
    ),
    path(
        "batch-upgrade-operation/<uuid:pk>/cancel/",
        views.batch_upgrade_operation_cancel,
        name="api_batch_upgrade_operation_cancel",
    ),
    path(
        "batch-upgrade-operation/<uuid:pk>/pause/",
        views.batch_upgrade_operation_pause,
        name="api_batch_upgrade_operation_pause",
    ),
    path(
        "batch-upgrade-operation/<uuid:pk>/resume/",
        views.batch_upgrade_operation_resume,
        name="api_batch_upgrade_operation_resume",
    ),
    path(
        "batch-upgrade-operation/<uuid:pk>/retry-failed/",
        views.batch_upgrade_operation_retry_failed,
        name="api_batch_upgrade_operation_retry_failed",
    ),
    path(
        "upgrade-operation/",
        views.upgrade_operation_list,
        name="api_upgrade_operation_list",
    ),
    path(
        "upgrade-operation/<uuid:pk>/",
        views.upgrade_operation_detail,
        name="api_upgrade_operation_detail",
    ),
    path(
        "upgrade-operation/<uuid:pk>/cancel/",
        views.upgrade_operation_cancel,
        name="api_upgrade_operation_cancel",
    ),
    path(
        "device-firmware/",
        views.device_modem_firmware_list,
        name="api_device_modem_firmware_list",
    ),
    path(
        "device/<uuid:pk>/modem-firmware/",
        views.device_modem_firmware,
        name="api_device_modem_firmware",
    ),
    path(
        "device/<uuid:pk>/modem-upgrade-operation/",
        views.device_upgrade_operation_list,
        name="api_device_upgrade_operation_list",
    ),
    path(
        "device/<uuid:pk>/detect-modems/",
        inventory.device_detect,
        name="api_device_detect_modems",
    ),
    path(
        "device/<uuid:pk>/select-carrier-image/",
        carrier.select_carrier_image,
        name="api_device_select_carrier_image",
    ),
    path(
        "device/<uuid:pk>/acknowledge-modem-change/",
        inventory.acknowledge,
        name="api_device_acknowledge_modem_change",
    ),
    path(
        "device/<uuid:pk>/recover-modem/",
        inventory.recover,
        name="api_device_recover_modem",
    ),
    path("detect-modems/", inventory.detect, name="api_detect_modems"),
    path("modem-history/", inventory.modem_history_list, name="api_modem_history_list"),
    path("compliance/", inventory.compliance, name="api_compliance"),
    path(
        "carrier-image-mismatch/",
        inventory.carrier_image_mismatch,
        name="api_carrier_image_mismatch",
    ),
]

schema_view = get_schema_view(
    openapi.Info(
        title="OpenWISP Modem Upgrader API",
        default_version="v1",
        description="Modem firmware catalogue, mass upgrades and operations.",
    ),
    public=True,
    permission_classes=(AllowAny,),
    patterns=[path(API_PREFIX, include((operator_urlpatterns, app_name)))],
)


def device_report_route(request, pk):
    """The routers' reports (POST/PATCH, ``?key=``); the operators' GET of
    the same URL goes on to their view."""
    if request.method in ("POST", "PATCH"):
        return device.device_report(request, pk=pk)
    return views.upgrade_operation_detail(request, pk=pk)


device_report_route.csrf_exempt = True

urlpatterns = [
    path(
        "upgrade-operation/<uuid:pk>/",
        device_report_route,
        name="api_device_report",
    ),
    path(
        "upgrade-operation/<uuid:pk>/image/",
        image_download.device_image,
        name="api_device_image",
    ),
    *operator_urlpatterns,
    path(
        "schema/",
        schema_view.without_ui(cache_timeout=0),
        name="api_schema",
    ),
    path(
        "docs/",
        schema_view.with_ui("swagger", cache_timeout=0),
        name="api_docs",
    ),
]
