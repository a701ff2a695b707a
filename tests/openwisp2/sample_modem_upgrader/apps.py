from openwisp_modem_upgrader.apps import ModemUpgraderConfig


class SampleModemUpgraderConfig(ModemUpgraderConfig):
    name = "openwisp2.sample_modem_upgrader"
    label = "sample_modem_upgrader"


del ModemUpgraderConfig
