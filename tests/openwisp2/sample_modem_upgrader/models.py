from django.db import models

from openwisp_modem_upgrader.base.models import (
    AbstractDeviceModemFirmware,
    AbstractModemBatchUpgradeOperation,
    AbstractModemBuild,
    AbstractModemCategory,
    AbstractModemFirmwareImage,
    AbstractModemUpgradeOperation,
)


class DetailsModel(models.Model):
    details = models.CharField(max_length=64, blank=True, null=True)

    class Meta:
        abstract = True


class ModemCategory(DetailsModel, AbstractModemCategory):
    class Meta(AbstractModemCategory.Meta):
        abstract = False


class ModemBuild(DetailsModel, AbstractModemBuild):
    class Meta(AbstractModemBuild.Meta):
        abstract = False


class ModemFirmwareImage(DetailsModel, AbstractModemFirmwareImage):
    class Meta(AbstractModemFirmwareImage.Meta):
        abstract = False


class DeviceModemFirmware(DetailsModel, AbstractDeviceModemFirmware):
    class Meta(AbstractDeviceModemFirmware.Meta):
        abstract = False


class ModemBatchUpgradeOperation(DetailsModel, AbstractModemBatchUpgradeOperation):
    class Meta(AbstractModemBatchUpgradeOperation.Meta):
        abstract = False


class ModemUpgradeOperation(DetailsModel, AbstractModemUpgradeOperation):
    class Meta(AbstractModemUpgradeOperation.Meta):
        abstract = False
