"""Operator API of "select carrier image": one of a modem's stored carrier
images made active (``carrier_select.start_carrier_switch``), from the
carrier-image mismatch report or for any image the modem stores.

A device outside the user's organizations is 404; the permission is the
admin's (``permissions.ACTION_PERMISSIONS["select_carrier_image"]``); every
refusal is a 400 with its reason and changes nothing.
"""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from drf_yasg.utils import swagger_auto_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from openwisp_users.api.permissions import IsOrganizationManager

from ..base.models import usb_path_validator
from ..carrier_select import start_carrier_switch
from ..carriers import CarrierImageNameValidator
from ..swapper import load_model
from .serializers import UpgradeOperationSerializer
from .views import (
    DETAIL_SCHEMA,
    ActionPermission,
    DeviceParentMixin,
    ProtectedAPIMixin,
    validation_error_response,
)

DeviceModemFirmware = load_model("DeviceModemFirmware")
ModemUpgradeOperation = load_model("ModemUpgradeOperation")


class SelectCarrierImageSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModemUpgraderSelectCarrierImage"

    # not trimmed: a value with a newline is refused, never cut down
    usb_path = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=32,
        validators=[usb_path_validator],
        help_text=_("the modem (sysfs USB path); omitted: the router's only modem"),
    )
    image = serializers.CharField(
        required=False,
        trim_whitespace=False,
        max_length=32,
        validators=[CarrierImageNameValidator()],
        help_text=_(
            "the stored carrier image's name as the modem lists it; omitted: "
            "the image made for the SIM's network"
        ),
    )


class SelectCarrierImageView(
    DeviceParentMixin, ProtectedAPIMixin, generics.GenericAPIView
):
    """Starts a "select carrier image" operation on a modem of the device
    (201, the operation), 400 with the reason when it cannot."""

    queryset = ModemUpgradeOperation.objects.none()
    permission_classes = (IsOrganizationManager, ActionPermission)
    permission_action = "select_carrier_image"
    serializer_class = SelectCarrierImageSerializer
    pagination_class = None
    filter_backends = ()

    @swagger_auto_schema(
        responses={201: UpgradeOperationSerializer, 400: DETAIL_SCHEMA}
    )
    def post(self, request, *args, **kwargs):
        device = self.get_device()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        modems = DeviceModemFirmware.objects.filter(device=device)
        if "usb_path" in data:
            modems = modems.filter(usb_path=data["usb_path"])
        modems = list(modems.select_related("device")[:2])
        if len(modems) != 1:
            message = (
                _("This router has several modems: choose one (usb_path).")
                if modems
                else _("This device has no such modem.")
            )
            return Response({"usb_path": [message]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            operation = start_carrier_switch(modems[0], data.get("image"))
        except ValidationError as error:
            return validation_error_response(error)
        return Response(
            UpgradeOperationSerializer(operation).data, status=status.HTTP_201_CREATED
        )


select_carrier_image = SelectCarrierImageView.as_view()
