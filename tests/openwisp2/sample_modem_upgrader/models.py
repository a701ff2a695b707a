from django.db import models

from openwisp_modem_upgrader.base.models import (
    AbstractDeviceModemDetection,
    AbstractDeviceModemFirmware,
    AbstractModemBatchUpgradeOperation,
    AbstractModemBuild,
    AbstractModemCategory,
    AbstractModemFirmwareImage,
    AbstractModemFirmwarePolicy,
    AbstractModemHistory,
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


class DeviceModemDetection(DetailsModel, AbstractDeviceModemDetection):
    class Meta(AbstractDeviceModemDetection.Meta):
        abstract = False


class ModemHistory(DetailsModel, AbstractModemHistory):
    class Meta(AbstractModemHistory.Meta):
        abstract = False


class ModemFirmwarePolicy(DetailsModel, AbstractModemFirmwarePolicy):
    class Meta(AbstractModemFirmwarePolicy.Meta):
        abstract = False
