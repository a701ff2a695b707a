#!/usr/bin/env python
"""The deployment check's Python part, run by ``scripts/deployment-check.sh``
with the virtualenv where the wheel is installed, in this directory (the
deployment's project, ``openwisp2``), never in the repository's source tree.

    crawl.py crawl     seeds two organizations, then crawls every admin page
                       and REST endpoint of the module as a superuser and as
                       the administrator of one organization
    crawl.py checks    ``check --deploy``: no message from this module
    crawl.py removed   after ``migrate modem_upgrader zero`` and with the
                       app removed: no table left, a device deletes

Every check is printed; the counts go to the tally (``TEST_TALLY``, labels
``deployment-crawl``, ``-deploy-messages``, ``-removal``). Exits non-zero when
a check failed.
"""

import os
import sys
import traceback

import django

HOST = "openwisp.deploycheck.test"


class Checks:
    def __init__(self, label):
        self.label = label
        self.passed = 0
        self.failed = []

    def check(self, condition, message, detail=""):
        if condition:
            self.passed += 1
            print(f"  ok: {message}")
        else:
            self.failed.append(message)
            print(f"  FAILED: {message}")
            detail = detail() if callable(detail) else detail
            if detail:
                print("    " + detail.replace("\n", "\n    "))
        return condition

    def finish(self):
        tally = os.environ.get("TEST_TALLY")
        if tally:
            with open(tally, "a") as tally_file:
                tally_file.write(f"{self.label} {self.passed} {len(self.failed)}\n")
        print(f"{self.label}: {self.passed} passed, {len(self.failed)} failed")
        return 1 if self.failed else 0


def client():
    from django.test import Client

    # the real handler and middleware; a server error is a response (500),
    # its traceback in the project's log, as in production
    return Client(raise_request_exception=False, HTTP_HOST=HOST)


def get(http, url, accept="text/html", **params):
    return http.get(url, params, secure=True, headers={"accept": accept})


def error_detail(response):
    """What to show when a check of the response fails (called then only)."""

    def detail():
        exc_info = getattr(response, "exc_info", None)
        if exc_info:
            return "".join(traceback.format_exception(*exc_info))[-1500:]
        if response.streaming:
            return ""
        return response.content[:300].decode(errors="replace")

    return detail


# crawl ---------------------------------------------------------------------


FIRMWARE = b"FN990A-STREAM-45.00.011\n" + bytes(range(256)) * 64


def seed():
    """Two organizations, each with a category, a build, an image, devices
    with a detected modem (one behind the build), an operation and a mass
    upgrade; the objects of the first one are crawled. Made with the models
    (the module's test factories need test-only packages)."""
    import swapper
    from django.contrib.auth.models import Group
    from django.core.files.uploadedfile import SimpleUploadedFile

    from openwisp_modem_upgrader.batch import create_batch
    from openwisp_modem_upgrader.swapper import load_model
    from openwisp_modem_upgrader.upgrade import start_upgrade

    Organization = swapper.load_model("openwisp_users", "Organization")
    OrganizationUser = swapper.load_model("openwisp_users", "OrganizationUser")
    User = swapper.load_model("openwisp_users", "User")
    Device = swapper.load_model("config", "Device")
    Config = swapper.load_model("config", "Config")
    Credentials = swapper.load_model("connection", "Credentials")
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")

    def create(model, **fields):
        obj = model(**fields)
        obj.full_clean()
        obj.save()
        return obj

    objects = {}
    for index, slug in enumerate(("org-a", "org-b")):
        org = create(Organization, name=slug, slug=slug)
        credentials = create(
            Credentials,
            organization=org,
            name=f"ssh {slug}",
            connector="openwisp_controller.connection.connectors.ssh.Ssh",
            params={"username": "root", "password": "unused", "port": 22},
        )
        category = create(
            load_model("ModemCategory"), organization=org, name=f"FN990A {slug}"
        )
        build = create(
            load_model("ModemBuild"),
            category=category,
            version="M0R.010100-B024",
            modem_model="FN990A28",
            # the fleet's target: a draft goes to test groups only
            status="released",
        )
        image = create(
            load_model("ModemFirmwareImage"),
            build=build,
            type="telit-fn990a",
            boards=[],
            file=SimpleUploadedFile("fn990a28.bin", FIRMWARE),
        )
        devices = []
        for number, (state, version) in enumerate(
            (
                ("behind", "M0R.010000-B022"),
                ("current", "M0R.010100-B024"),
                ("spare", "M0R.010000-B022"),
            )
        ):
            device = create(
                Device,
                organization=org,
                name=f"{slug}-{state}",
                mac_address=f"02:00:00:00:{index:02x}:{number:02x}",
                # a closed loopback port: nothing leaves the machine
                management_ip="127.0.0.1",
            )
            create(Config, device=device, backend="netjsonconfig.OpenWrt")
            create(DeviceConnection, device=device, credentials=credentials)
            load_model("DeviceModemFirmware").objects.create(
                device=device,
                modem_manufacturer="Telit",
                modem_model="FN990A28",
                modem_firmware_version=version,
            )
            devices.append(device)
        operation = start_upgrade(devices[0], image)
        batch = create_batch(build, org)
        policy = create(
            load_model("ModemFirmwarePolicy"),
            organization=org,
            name=f"FN990A28 {slug}",
            build=build,
        )
        objects[slug] = {
            "org": org,
            "category": category,
            "build": build,
            "image": image,
            "device": devices[0],
            "spare_device": devices[2],
            "operation": operation,
            "batch": batch,
            "policy": policy,
        }
    superuser = User.objects.create_superuser(
        username="deploy-admin", email="admin@deploy.test", password="unused-1234!"
    )
    operator = User.objects.create_user(
        username="deploy-operator",
        email="operator@deploy.test",
        password="unused-1234!",
        is_staff=True,
    )
    operator.groups.add(Group.objects.get(name="Administrator"))
    OrganizationUser.objects.create(
        user=operator, organization=objects["org-a"]["org"], is_admin=True
    )
    return objects, {"superuser": superuser, "operator": operator}


def object_of(objects, model):
    for obj in objects.values():
        if isinstance(obj, model):
            return obj
    return None


def admin_pages(objects):
    """(label, url, must answer 200) of every admin page of the module:
    each URL of its model admins, the device pages and its own URLs on them."""
    from django.contrib import admin
    from django.urls import NoReverseMatch, reverse

    from openwisp_modem_upgrader.swapper import load_model

    app_label = load_model("ModemCategory")._meta.app_label
    pages = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != app_label:
            continue
        obj = object_of(objects, model)
        for pattern in model_admin.get_urls():
            if not pattern.name:
                continue
            converters = list(pattern.pattern.converters)
            if converters and obj is None:
                pages.append((pattern.name, None, None))
                continue
            args = [obj.pk] if converters else []
            try:
                url = reverse(f"admin:{pattern.name}", args=args)
            except NoReverseMatch:
                pages.append((pattern.name, None, None))
                continue
            # the change form and the module's pages of the object; actions
            # posted from those pages (cancel, pause...) may refuse a GET
            if pattern.name.endswith(("_add", "_delete")):
                # operations and mass upgrades are read-only in the admin
                expected = (200, 403)
            elif pattern.name.endswith(
                ("_changelist", "_change", "_history", "_compliance", "_mass_upgrade")
            ):
                expected = (200,)
            else:
                expected = None
            pages.append((pattern.name, url, expected))
    device = objects["device"]
    opts = device._meta
    prefix = f"admin:{opts.app_label}_{opts.model_name}"
    pages += [
        ("device changelist", reverse(f"{prefix}_changelist"), (200,)),
        ("device add", reverse(f"{prefix}_add"), (200,)),
        ("device change", reverse(f"{prefix}_change", args=[device.pk]), (200,)),
        # posted by the device page's buttons
        ("device detect", reverse(f"{prefix}_detect_modems", args=[device.pk]), None),
        (
            "device acknowledge",
            reverse(f"{prefix}_acknowledge_modem_change", args=[device.pk]),
            None,
        ),
        ("dashboard", reverse("admin:index"), (200,)),
    ]
    return pages


def api_pages(objects):
    """(label, url, must answer 200) of every REST endpoint of the module."""
    from django.urls import reverse

    from openwisp_modem_upgrader.api.urls import operator_urlpatterns

    by_name = (
        ("api_device_", "device"),
        ("firmware_image_list", "build"),
        ("build_upgrade", "build"),
        ("category", "category"),
        ("build", "build"),
        ("firmware_image", "image"),
        ("batch", "batch"),
        ("firmware_policy", "policy"),
        ("upgrade_operation", "operation"),
        ("device", "device"),
    )
    pages = []
    for pattern in operator_urlpatterns:
        args = []
        if pattern.pattern.converters:
            key = next(key for part, key in by_name if part in pattern.name)
            args = [objects[key].pk]
        url = reverse(f"modem_upgrader:{pattern.name}", args=args)
        # the actions (cancel, pause, detect, acknowledge...) are POSTs
        posted = pattern.name.endswith(
            ("_cancel", "_pause", "_resume", "_retry_failed", "_detect_modems")
        ) or pattern.name in (
            "api_device_acknowledge_modem_change",
            "api_device_select_carrier_image",
            "api_device_recover_modem",
        )
        pages.append((pattern.name, url, None if posted else (200,)))
    pages += [
        (
            "module schema",
            reverse("modem_upgrader:api_schema") + "?format=openapi",
            (200,),
        ),
        ("image download", objects["image"].file.url, (200,)),
    ]
    return pages


def crawl_as(checks, http, role, pages, accept):
    """GET each page: never a server error; ``expected``: the statuses the
    page must answer (``None``: any below 500, e.g. a POST-only action)."""
    for label, url, expected in pages:
        if url is None:
            checks.check(False, f"{role}: {label}: no URL could be built")
            continue
        response = get(http, url, accept=accept)
        status = response.status_code
        checks.check(
            status < 500, f"{role}: {label} {url} -> {status}", error_detail(response)
        )
        if expected and status < 500:
            checks.check(
                status in expected,
                f"{role}: {label} answers {expected} (got {status})",
                response.get("Location", ""),
            )


def crawl_device_list(checks, http, role, device):
    from django.urls import reverse

    opts = device._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    from openwisp_modem_upgrader.admin.inventory import MODEM_COLUMNS, MODEM_FILTERS

    page = get(http, url).content.decode()
    # beside openwisp-monitoring's device admin (registered in place of the
    # controller's, with its own copy of the columns and filters)
    checks.check(
        "column-health_status_changelist" in page,
        f"{role}: the device list is openwisp-monitoring's",
    )
    for column in MODEM_COLUMNS:
        name = column.__name__
        checks.check(f"column-{name}" in page, f"{role}: device list column {name}")
    for modem_filter in MODEM_FILTERS:
        title = modem_filter.title
        checks.check(f"By {title}" in page, f"{role}: device list filter '{title}'")
    # the dashboard chart's link
    response = get(http, url, modem_compliance="behind")
    checks.check(
        response.status_code == 200,
        f"{role}: ?modem_compliance=behind answers 200 ({response.status_code},"
        f" {response.get('Location', '')})",
    )
    listed = response.content.decode()
    checks.check(
        "org-a-behind" in listed and "org-a-current" not in listed,
        f"{role}: ?modem_compliance=behind lists the device behind only",
    )
    dashboard = get(http, reverse("admin:index")).content.decode()
    checks.check(
        "modem_compliance=" in dashboard, f"{role}: dashboard links the compliance"
    )


def crawl_device_page(checks, http, role, device):
    from django.urls import reverse

    opts = device._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[device.pk])
    page = get(http, url).content.decode()
    checks.check('id="modems-group"' in page, f"{role}: device page, Modem Firmware")
    checks.check(
        'id="devicefirmware-group"' in page,
        f"{role}: device page, openwisp-firmware-upgrader's Firmware inline",
    )
    checks.check(
        "modem-upgrader/js/upgrade-options" in page,
        f"{role}: device page loads the options editor (hashed static name)",
    )


def crawl_isolation(checks, http, objects):
    """The administrator of org-a reaches nothing of org-b."""
    from django.urls import reverse

    foreign = objects["org-b"]
    for name, obj in (("build", foreign["build"]), ("batch", foreign["batch"])):
        opts = obj._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        status = get(http, url).status_code
        checks.check(status in (302, 403, 404), f"operator: org-b {name} -> {status}")
    url = reverse("modem_upgrader:api_build_detail", args=[foreign["build"].pk])
    status = get(http, url).status_code
    checks.check(status in (403, 404), f"operator: API org-b build -> {status}")


def crawl():
    checks = Checks("deployment-crawl")
    import openwisp_modem_upgrader

    location = os.path.dirname(openwisp_modem_upgrader.__file__)
    checks.check(
        location.startswith(sys.prefix) and "site-packages" in location,
        f"the module is the installed wheel ({location})",
    )
    objects, users = seed()
    mine = objects["org-a"]
    for role, user in users.items():
        http = client()
        http.force_login(user)
        crawl_as(checks, http, role, admin_pages(mine), "text/html")
        crawl_as(checks, http, role, api_pages(mine), "application/json, */*;q=0.1")
        crawl_device_list(checks, http, role, mine["device"])
        crawl_device_page(checks, http, role, mine["device"])
        if role == "operator":
            crawl_isolation(checks, http, objects)
    http = client()
    http.force_login(users["superuser"])
    # openwisp-utils' schema of every module of the deployment
    response = http.get("/api/v1/docs/", {"format": "openapi"}, secure=True)
    checks.check(
        response.status_code == 200,
        f"deployment-wide schema ?format=openapi -> {response.status_code}",
        error_detail(response),
    )
    if response.status_code == 200:
        definitions = response.json()["definitions"]
        checks.check(
            "ModemUpgraderBuild" in definitions and "Build" in definitions,
            "the schema holds this module's and openwisp-firmware-upgrader's Build",
        )
    return checks.finish()


# checks --------------------------------------------------------------------


def deploy_checks():
    from django.core import checks as django_checks

    checks = Checks("deployment-deploy-messages")
    messages = django_checks.run_checks(include_deployment_checks=True)
    for message in messages:
        print(f"  (check --deploy) {message}")

    def from_this_module(message):
        obj = message.obj
        module = getattr(obj, "__module__", "") or type(obj).__module__
        text = f"{message.id} {message.msg} {module}"
        return "modem_upgrader" in text

    ours = [m for m in messages if from_this_module(m)]
    checks.check(not ours, "check --deploy: no message from this module", str(ours))
    errors = [m for m in messages if m.is_serious()]
    checks.check(not errors, "check --deploy: no error", str(errors))
    return checks.finish()


# removal -------------------------------------------------------------------


def removed():
    from django.db import connection

    checks = Checks("deployment-removal")
    tables = [
        table
        for table in connection.introspection.table_names()
        if table.startswith("modem_upgrader")
    ]
    checks.check(not tables, f"no table of the module left {tables}")
    import swapper
    from django.urls import reverse

    Device = swapper.load_model("config", "Device")
    User = swapper.load_model("openwisp_users", "User")
    http = client()
    http.force_login(User.objects.get(username="deploy-admin"))
    opts = Device._meta
    prefix = f"admin:{opts.app_label}_{opts.model_name}"
    response = get(http, reverse(f"{prefix}_changelist"))
    checks.check(
        response.status_code == 200,
        f"device list without the module -> {response.status_code}",
        error_detail(response),
    )
    # the controller deletes deactivated devices only (after the device
    # fetched its deactivated configuration)
    for name, through_admin in (("org-a-spare", True), ("org-a-behind", False)):
        device = Device.objects.get(name=name)
        device.deactivate()
        device.config.set_status_deactivated()
        try:
            if through_admin:
                url = reverse(f"{prefix}_delete", args=[device.pk])
                response = http.post(url, {"post": "yes"}, secure=True)
                checks.check(
                    response.status_code == 302,
                    f"device {name} deleted in the admin -> {response.status_code}",
                    error_detail(response),
                )
            else:
                Device.objects.get(pk=device.pk).delete()
        except Exception:
            detail = traceback.format_exc()[-1500:]
            checks.check(False, f"device {name} deleted", detail)
        checks.check(
            not Device.objects.filter(pk=device.pk).exists(),
            f"device {name} is gone",
        )
    return checks.finish()


COMMANDS = {"crawl": crawl, "checks": deploy_checks, "removed": removed}

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")
    django.setup()
    sys.exit(COMMANDS[sys.argv[1]]())
