"""What the API fuzzer (``scripts/fuzz-api.sh``) works on.

``load(config_path)`` seeds the fuzzing database, in the demo organization,
with real objects (categories, builds, images with real firmware files, a
device with a detected modem and an SSH connection, operations, mass
upgrades) and writes the schemathesis configuration that makes every
``{id}`` operation use them, so the generated requests reach the core logic
instead of a 404. Operations that destroy or consume their object (DELETE,
image uploads, cancel) draw from objects of their own.

The device's SSH connection points at a closed loopback port: an upgrade
started by the fuzzer really runs (eager Celery) and ends failed, "no working
SSH connection", without any traffic leaving the machine.
"""

import json
import os
import socket
import sys
import tempfile

import swapper
from django.contrib.auth import get_user_model
from django.contrib.gis.geos import Point
from django.core.files.base import File

from openwisp_modem_upgrader.swapper import load_model

from .demo import DEMO_MODEL

OLD_VERSION = "M0R.010000-B020"
# objects per operation that destroys or consumes one: a run sends fewer
# positive requests than this to each of them
SPARE_OBJECTS = 40


def load(config_path):
    ids = seed()
    with open(config_path, "w") as config:
        config.write(schemathesis_config(ids))


def seed():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from device.firmware import write_firmware_stream

    Device = swapper.load_model("config", "Device")
    Organization = swapper.load_model("openwisp_users", "Organization")
    Category = load_model("ModemCategory")
    Build = load_model("ModemBuild")
    Operation = load_model("ModemUpgradeOperation")
    Batch = load_model("ModemBatchUpgradeOperation")

    # the demo loader's organization (its slug is derived from its name)
    org = Device.objects.get(name="demo-router").organization
    ids = {"organization": str(org.pk)}
    group, location = _group_and_location(org)
    ids.update(group=str(group.pk), location=str(location.pk))

    category = _save(Category(name="Fuzz Telit FN990A", organization=org))
    ids["category"] = str(category.pk)
    # PUT and PATCH change what they edit (even its organization): the
    # objects the other operations rely on are never the edited ones
    category_to_edit = _save(Category(name="Fuzz edited", organization=org))
    ids["category_to_edit"] = str(category_to_edit.pk)
    # spare objects in an organization of their own: names and versions the
    # fuzzer reads back from responses then never collide with the ones it
    # writes to the demo organization's category
    spares = _save(Organization(name="Fuzz spares", slug="fuzz-spares"))
    spare_category = _save(Category(name="Fuzz spare builds", organization=spares))
    ids["categories_to_delete"] = [
        str(_save(Category(name=f"Fuzz spare {i}", organization=spares)).pk)
        for i in range(SPARE_OBJECTS)
    ]

    def build(version, of_category=spare_category):
        # released: mass upgrades of the whole organization reach the fan-out
        return _save(
            Build(
                category=of_category,
                version=version,
                modem_model=DEMO_MODEL,
                status="released",
            )
        )

    with tempfile.TemporaryDirectory() as directory:
        firmware = os.path.join(directory, "fn990a28.bin")
        write_firmware_stream(firmware, "M0R.010100-B030", model=DEMO_MODEL)

        def image(of_build, image_type="telit-fn990a"):
            Image = load_model("ModemFirmwareImage")
            with open(firmware, "rb") as stream:
                return _save(
                    Image(
                        build=of_build,
                        type=image_type,
                        file=File(stream, name="fn990a28.bin"),
                    )
                )

        main_build = build("M0R.010100-B030", category)
        main_image = image(main_build)
        ids.update(build=str(main_build.pk), image=str(main_image.pk))
        ids["build_to_edit"] = str(build("M0R.010100-B031", category_to_edit).pk)
        ids["builds_to_delete"] = [
            str(build(f"M0R.020000-B{i:03d}").pk) for i in range(SPARE_OBJECTS)
        ]
        # each build takes one upload per image type
        ids["builds_for_uploads"] = [
            str(build(f"M0R.030000-B{i:03d}").pk) for i in range(SPARE_OBJECTS)
        ]
        images_to_delete = []
        for i in range(SPARE_OBJECTS // 2):
            spare_build = build(f"M0R.040000-B{i:03d}")
            for image_type in ("telit-fn990a", "generic"):
                images_to_delete.append(str(image(spare_build, image_type).pk))
        ids["images_to_delete"] = images_to_delete

    device = _modem_device(org, "fuzz-router", "02:00:00:00:f0:01", group, location)
    ids.update(device=str(device.pk), version=OLD_VERSION)
    # history of the device, finished (GET) and one idle operation per cancel
    finished = Operation(
        device=device,
        image=main_image,
        status="failed",
        log="no working SSH connection to the device\n",
    )
    ids["operation"] = str(_save(finished).pk)
    ids["operations_to_cancel"] = []
    for i in range(SPARE_OBJECTS // 4):
        idle_device = _modem_device(
            org, f"fuzz-idle-{i}", f"02:00:00:00:f1:{i:02x}", None, None
        )
        idle = Operation(device=idle_device, image=main_image)
        ids["operations_to_cancel"].append(str(_save(idle).pk))
    batch = Batch(build=main_build, organization=org, status="success")
    ids["batch"] = str(_save(batch).pk)
    ids["batches_to_cancel"] = [
        str(_save(Batch(build=main_build, organization=org)).pk)
        for _ in range(SPARE_OBJECTS // 4)
    ]
    # rollout controls: running batches to pause, paused ones to resume
    ids["batches_to_pause"] = [
        str(_save(Batch(build=main_build, organization=org)).pk)
        for _ in range(SPARE_OBJECTS // 4)
    ]
    ids["batches_to_resume"] = [
        str(_save(Batch(build=main_build, organization=org, rollout_state="paused")).pk)
        for _ in range(SPARE_OBJECTS // 4)
    ]
    # batches whose device failed, one device each: a retry is a new mass
    # upgrade of it, which keeps the device busy (its router never answers)
    ids["batches_with_failure"] = []
    for i in range(SPARE_OBJECTS):
        failed_batch = _save(Batch(build=main_build, organization=org, status="failed"))
        failed_device = _modem_device(
            org, f"fuzz-failed-{i}", f"02:00:00:00:f2:{i:02x}", None, None
        )
        Operation.objects.create(
            device=failed_device, image=main_image, batch=failed_batch, status="failed"
        )
        ids["batches_with_failure"].append(str(failed_batch.pk))
    ids["user"] = str(get_user_model().objects.get(username="admin").pk)
    return ids


def _save(instance):
    instance.full_clean()
    instance.save()
    return instance


def _group_and_location(org):
    DeviceGroup = swapper.load_model("config", "DeviceGroup")
    Location = swapper.load_model("geo", "Location")
    group = _save(DeviceGroup(name="Fuzz routers", organization=org))
    location = _save(
        Location(
            name="Fuzz site",
            address="Via del Corso 1, Roma",
            type="outdoor",
            geometry=Point(12.48, 41.90),
            organization=org,
        )
    )
    return group, location


def _closed_loopback_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _modem_device(org, name, mac_address, group, location):
    Device = swapper.load_model("config", "Device")
    Config = swapper.load_model("config", "Config")
    Credentials = swapper.load_model("connection", "Credentials")
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")
    DeviceLocation = swapper.load_model("geo", "DeviceLocation")
    DeviceModemFirmware = load_model("DeviceModemFirmware")

    device = _save(
        Device(
            name=name,
            organization=org,
            mac_address=mac_address,
            model="Fuzz Router",
            management_ip="127.0.0.1",
            last_ip="127.0.0.1",
            group=group,
        )
    )
    Config.objects.create(
        device=device, backend="netjsonconfig.OpenWrt", config={"general": {}}
    )
    if location is not None:
        DeviceLocation.objects.create(content_object=device, location=location)
    credentials = _save(
        Credentials(
            name=f"{name} SSH",
            organization=org,
            connector="openwisp_controller.connection.connectors.ssh.Ssh",
            params={
                "username": "root",
                "password": "fuzz-password",
                "port": _closed_loopback_port(),
            },
        )
    )
    _save(DeviceConnection(device=device, credentials=credentials, enabled=True))
    DeviceModemFirmware.objects.create(
        device=device,
        modem_manufacturer="Telit",
        modem_model=DEMO_MODEL,
        modem_firmware_version=OLD_VERSION,
        # so that acknowledging reaches the core logic once
        unexplained_change=True,
    )
    return device


def schemathesis_config(ids):
    """The schemathesis.toml: seeded ids for each operation that needs one."""

    def dictionary(name, values):
        return f"{name} = {{ values = {json.dumps(values)} }}\n"

    def operation(path, methods, coverage=True, **parameters):
        lines = [
            "\n[[operations]]\n",
            # include-path and include-method would select either (OR)
            f"include-name = {json.dumps([f'{m} {path}' for m in methods])}\n",
        ]
        if not coverage:
            # the coverage phase applies no body parameters: every body it
            # sends names objects that do not exist; fuzzing and stateful
            # phases test these operations
            lines.append("phases.coverage.enabled = false\n")
        if parameters:
            pairs = []
            for key, value in parameters.items():
                key = json.dumps(key.replace("__", "."))
                if isinstance(value, tuple):  # (dictionary, probability)
                    value = (
                        f"{{ dictionary = {json.dumps(value[0])},"
                        f" probability = {value[1]} }}"
                    )
                else:
                    value = json.dumps(value)
                pairs.append(f"{key} = {value}")
            lines.append(f"parameters = {{ {', '.join(pairs)} }}\n")
        return "".join(lines)

    always = 1.0
    # foreign keys get the seeded ids: a random UUID only ever meets "object
    # does not exist" (dictionaries are not drawn from by the coverage phase)
    organization = {"body__organization": ids["organization"]}
    text = ["# written by tests/openwisp2/fuzz_data.py\n\n[dictionaries]\n"]
    for name in (
        "categories_to_delete",
        "builds_to_delete",
        "builds_for_uploads",
        "images_to_delete",
        "operations_to_cancel",
        "batches_to_cancel",
        "batches_to_pause",
        "batches_to_resume",
        "batches_with_failure",
    ):
        text.append(dictionary(name, ids[name]))
    batch_filters = {
        "organization": ids["organization"],
        "group": ids["group"],
        "location": ids["location"],
    }
    text += [
        operation("/category/", ["POST"], **organization),
        operation(
            "/category/{id}/",
            ["GET", "PUT", "PATCH"],
            path__id=ids["category_to_edit"],
            **organization,
        ),
        operation(
            "/category/{id}/",
            ["DELETE"],
            path__id=("categories_to_delete", always),
        ),
        operation("/build/", ["POST"], coverage=False, body__category=ids["category"]),
        operation(
            "/build/{id}/",
            ["GET", "PUT", "PATCH"],
            coverage=False,
            path__id=ids["build_to_edit"],
            body__category=ids["category_to_edit"],
        ),
        operation("/build/{id}/", ["DELETE"], path__id=("builds_to_delete", always)),
        operation("/build/{id}/image/", ["GET"], path__id=ids["build"]),
        operation(
            "/build/{id}/image/",
            ["POST"],
            # nor does it draw from dictionaries: all its uploads would go
            # to one build, which takes one image per type
            coverage=False,
            path__id=("builds_for_uploads", always),
        ),
        operation(
            "/build/{id}/upgrade/",
            ["GET"],
            path__id=ids["build"],
            **{f"query__{key}": value for key, value in batch_filters.items()},
        ),
        # a mass upgrade needs a device to upgrade: the one the seeded
        # device's modem runs (a dry run, above, takes any version)
        operation(
            "/build/{id}/upgrade/",
            ["POST"],
            coverage=False,
            path__id=ids["build"],
            body__from_version=ids["version"],
            **{f"body__{key}": value for key, value in batch_filters.items()},
        ),
        operation("/firmware-image/{id}/", ["GET"], path__id=ids["image"]),
        operation("/firmware-image/{id}/download/", ["GET"], path__id=ids["image"]),
        operation(
            "/firmware-image/{id}/",
            ["DELETE"],
            path__id=("images_to_delete", always),
        ),
        operation("/batch-upgrade-operation/{id}/", ["GET"], path__id=ids["batch"]),
        operation(
            "/batch-upgrade-operation/{id}/cancel/",
            ["POST"],
            path__id=("batches_to_cancel", always),
        ),
        operation(
            "/batch-upgrade-operation/{id}/pause/",
            ["POST"],
            path__id=("batches_to_pause", always),
        ),
        operation(
            "/batch-upgrade-operation/{id}/resume/",
            ["POST"],
            path__id=("batches_to_resume", always),
        ),
        operation(
            "/batch-upgrade-operation/{id}/retry-failed/",
            ["POST"],
            path__id=("batches_with_failure", always),
        ),
        operation("/upgrade-operation/{id}/", ["GET"], path__id=ids["operation"]),
        operation(
            "/upgrade-operation/{id}/cancel/",
            ["POST"],
            path__id=("operations_to_cancel", always),
        ),
        operation(
            "/device/{id}/modem-firmware/",
            ["PUT", "POST", "PATCH"],
            coverage=False,
            path__id=ids["device"],
            body__image=ids["image"],
        ),
        operation("/device/{id}/modem-firmware/", ["GET"], path__id=ids["device"]),
        operation(
            "/device/{id}/modem-upgrade-operation/", ["GET"], path__id=ids["device"]
        ),
        operation(
            "/device/{id}/acknowledge-modem-change/", ["POST"], path__id=ids["device"]
        ),
        operation("/device/{id}/detect-modems/", ["POST"], path__id=ids["device"]),
    ]
    return "".join(text)
