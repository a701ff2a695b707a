"""Query-string filters of the list endpoints.

Related objects are filtered by id (``UUIDFilter``) rather than by choice
fields: the querysets are already limited to the user's organizations, and a
choice field would cost one query per filter to validate the id.
"""

from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters

from ..base.models import OperationStatus
from ..base.rollout import RolloutState
from ..swapper import load_model


class OrganizationFilterSet(filters.FilterSet):
    """Adds ``organization`` (id) and ``organization_slug`` filters.

    ``organization_field`` is the lookup of the organization from the model.
    """

    organization_field = "organization"
    organization = filters.UUIDFilter(
        method="filter_organization", label=_("organization id")
    )
    organization_slug = filters.CharFilter(
        method="filter_organization_slug", label=_("organization slug")
    )

    def filter_organization(self, queryset, name, value):
        return queryset.filter(**{f"{self.organization_field}_id": value})

    def filter_organization_slug(self, queryset, name, value):
        return queryset.filter(**{f"{self.organization_field}__slug": value})


class CategoryFilter(OrganizationFilterSet):
    class Meta:
        model = load_model("ModemCategory")
        fields = ["name"]


class BuildFilter(OrganizationFilterSet):
    organization_field = "category__organization"
    category = filters.UUIDFilter(field_name="category_id")

    class Meta:
        model = load_model("ModemBuild")
        fields = ["category", "version", "modem_model", "status"]


class FirmwareImageFilter(filters.FilterSet):
    class Meta:
        model = load_model("ModemFirmwareImage")
        fields = ["type"]


class BatchUpgradeOperationFilter(OrganizationFilterSet):
    build = filters.UUIDFilter(field_name="build_id")
    status = filters.ChoiceFilter(choices=OperationStatus.choices)
    rollout_state = filters.ChoiceFilter(choices=RolloutState.choices)

    class Meta:
        model = load_model("ModemBatchUpgradeOperation")
        fields = ["build", "status", "rollout_state"]


class UpgradeOperationFilter(OrganizationFilterSet):
    organization_field = "device__organization"
    device = filters.UUIDFilter(field_name="device_id")
    batch = filters.UUIDFilter(field_name="batch_id")
    image = filters.UUIDFilter(field_name="image_id")
    status = filters.ChoiceFilter(choices=OperationStatus.choices)

    class Meta:
        model = load_model("ModemUpgradeOperation")
        fields = ["device", "batch", "image", "status"]


class DeviceUpgradeOperationFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=OperationStatus.choices)

    class Meta:
        model = load_model("ModemUpgradeOperation")
        fields = ["status"]


class DeviceModemFirmwareFilter(OrganizationFilterSet):
    organization_field = "device__organization"
    device = filters.UUIDFilter(field_name="device_id")
    image = filters.UUIDFilter(field_name="image_id")

    class Meta:
        model = load_model("DeviceModemFirmware")
        fields = [
            "device",
            "image",
            "installed",
            "modem_model",
            "modem_firmware_version",
        ]
