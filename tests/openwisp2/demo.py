"""Demo data: an admin, an organization, a category, an FN990A build with its
image and a demo device whose modem was detected. Safe to run again."""

import swapper
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from openwisp_modem_upgrader.swapper import load_model

DEMO_VERSION = "M0R.010100-B024"
DEMO_MODEL = "FN990A28"


def load():
    User = get_user_model()
    Organization = swapper.load_model("openwisp_users", "Organization")
    Device = swapper.load_model("config", "Device")
    Category = load_model("ModemCategory")
    Build = load_model("ModemBuild")
    Image = load_model("ModemFirmwareImage")
    DeviceModemFirmware = load_model("DeviceModemFirmware")

    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@example.com", "admin")
    org, _ = Organization.objects.get_or_create(
        slug="demo", defaults={"name": "Demo Operator"}
    )
    telit, _ = Category.objects.get_or_create(
        name="Telit FN990A",
        organization=None,
        defaults={"description": "Telit FN990A 5G modules (shared)"},
    )
    Category.objects.get_or_create(name="Quectel RM520N", organization=org)
    build, created = Build.objects.get_or_create(
        category=telit,
        version=DEMO_VERSION,
        defaults={
            "modem_model": DEMO_MODEL,
            "changelog": "* Demo build\n* Fixes **carrier aggregation** on n78",
        },
    )
    if created:
        image = Image(build=build, type="telit-fn990a", boards=[])
        image.file.save(
            "fn990a28-demo.bin",
            ContentFile(b"DEMO-STREAM 45.00.011\n" + b"\0" * 4096),
            save=False,
        )
        image.full_clean()
        image.save()
    device, _ = Device.objects.get_or_create(
        name="demo-router",
        organization=org,
        defaults={"mac_address": "02:00:00:00:00:01", "model": "Demo Router"},
    )
    DeviceModemFirmware.objects.get_or_create(
        device=device,
        defaults={
            "modem_manufacturer": "Telit",
            "modem_model": DEMO_MODEL,
            "modem_firmware_version": "M0R.010000-B022",
        },
    )
    print("Demo data ready: organization 'Demo Operator', build", build)
