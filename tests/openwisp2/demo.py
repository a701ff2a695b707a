"""Demo data: an admin, an organization, a category, an FN990A build with its
image, and one device per emulated router (demo_router.py, started by
scripts/demo.sh) connected to it over SSH, plus one router that is never
reachable. Their modems are detected here, so the inventory (device list,
compliance, dashboard) shows them before any upgrade. Safe to run again."""

import json
import os
import tempfile

import swapper
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from openwisp_modem_upgrader.swapper import load_model

DEMO_VERSION = "M0R.010100-B024"
DEMO_MODEL = "FN990A28"


def load():
    User = get_user_model()
    # the emulator's helpers (firmware streams) live in tests/
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    prepare_notification_settings()
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
            "status": "released",
        },
    )
    if created:
        _add_demo_image(build, Image)
    routers = _read_router_description()
    devices = []
    for number, router in enumerate(routers, start=1):
        device = _demo_device(Device, org, router["name"], number)
        _connect_device_to_router(device, router)
        devices.append(device)
        print(
            f"{device.name} is an emulated router on {router['host']}:{router['port']}"
        )
    if routers:
        # a router that never answers: the inventory shows it unreachable
        offline = _demo_device(Device, org, "demo-router-offline", 9)
        _connect_device_to_router(
            offline,
            {"host": "127.0.0.9", "port": 9, "private_key": routers[0]["private_key"]},
        )
        devices.append(offline)
        # the inventory shows something before any upgrade has run
        from openwisp_modem_upgrader.detection import detect_devices

        print("Modem detection:", detect_devices([d.pk for d in devices]))
    else:
        # no emulated router (manage.py shell without demo.sh): a device
        # whose modem is known, so the admin still has something to show
        device = _demo_device(Device, org, "demo-router", 1)
        DeviceModemFirmware.objects.update_or_create(
            device=device,
            usb_path="",
            defaults={
                "modem_manufacturer": "Telit",
                "modem_model": DEMO_MODEL,
                "modem_firmware_version": "M0R.010000-B020",
            },
        )
    print("Demo data ready: organization 'Demo Operator', build", build)


def prepare_notification_settings():
    """openwisp-notifications queues its settings tasks (superuser created,
    types registered at every start); run by the workers together they race
    to insert the same missing rows (IntegrityError at start-up). Created
    here first, before any worker starts, the queued tasks find them and
    only update."""
    from openwisp_notifications.tasks import ns_register_unregister_notification_type

    ns_register_unregister_notification_type()


def _add_demo_image(build, Image):
    """A firmware stream the emulated modem's flasher accepts (2 MiB)."""
    from device.firmware import write_firmware_stream

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "fn990a28-demo.bin")
        write_firmware_stream(path, DEMO_VERSION, model=DEMO_MODEL, size=2 << 20)
        image = Image(build=build, type="telit-fn990a", boards=[])
        with open(path, "rb") as stream:
            image.file.save("fn990a28-demo.bin", ContentFile(stream.read()), False)
        image.full_clean()
        image.save()


def _demo_device(Device, org, name, number):
    device, _ = Device.objects.get_or_create(
        name=name,
        organization=org,
        defaults={
            "mac_address": f"02:00:00:00:00:{number:02x}",
            "model": "Demo Router",
        },
    )
    return device


def _read_router_description():
    """The routers demo_router.py runs (a list; [] when none runs)."""
    path = os.environ.get("DEMO_ROUTER_FILE")
    if not path or not os.path.exists(path):
        return []
    with open(path) as description:
        routers = json.load(description)
    return routers if isinstance(routers, list) else [dict(routers, name="demo-router")]


def _connect_device_to_router(device, router):
    Config = swapper.load_model("config", "Config")
    Credentials = swapper.load_model("connection", "Credentials")
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")
    Device = type(device)
    Device.objects.filter(pk=device.pk).update(
        management_ip=router["host"], last_ip=router["host"]
    )
    device.refresh_from_db()
    if not Config.objects.filter(device=device).exists():
        Config.objects.create(
            device=device, backend="netjsonconfig.OpenWrt", config={"general": {}}
        )
    credentials, _ = Credentials.objects.update_or_create(
        name=f"SSH key of {device.name}",
        organization=device.organization,
        defaults={
            "connector": "openwisp_controller.connection.connectors.ssh.Ssh",
            "params": {
                "username": "root",
                "key": router["private_key"],
                "port": router["port"],
            },
        },
    )
    connection, _ = DeviceConnection.objects.get_or_create(
        device=device, credentials=credentials
    )
    connection.enabled = True
    connection.full_clean()
    connection.save()
