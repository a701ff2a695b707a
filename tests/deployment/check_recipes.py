#!/usr/bin/env python3
"""Checks the deployment recipes of docs/developer/deployment.rst against the
real files of docker-openwisp and ansible-openwisp2.

Usage:
    check_recipes.py --docker-openwisp PATH --ansible-openwisp2 PATH

Each PATH is a checkout or a bare git directory of the upstream repository
(files read at HEAD; the commit is printed). Run it with a Python that has
openwisp-modem-upgrader installed from its wheel and the packages of
tests/deployment/recipes-requirements.txt. Without the upstream files
nothing is checked: the script says so and exits with 3 (not a pass).

What it does, without Docker or Ansible (neither can run here):

docker-openwisp: lays out each image's /opt/openwisp as its Dockerfiles copy
it (images/common plus the image's own files), overlays the bind mounts of
the merged compose file (docker-compose.yml + the recipe's override), and
loads openwisp.settings and the Celery app in a fresh interpreter per
service with the environment compose gives that service (image ENV, .env
with the recipe's additions, the service's environment). It then checks the
apps, upload handlers, URLs, websocket routes, task routes, beat schedule,
broker options and device-report route (a report posted to the project's
WSGI application is answered before the URL resolver runs) each service ends
up with, the compose fragment against the stock services (images, network
mode, volumes, bind mounts, dependencies), the worker commands (parsed by
Celery's own command line) and nginx's upload limit rendered from the nginx
image's template.

ansible-openwisp2: runs the role's tasks that template the Django project,
supervisor and nginx files (tasks/django.yml, supervisor.yml, nginx.yml, in
order, honouring `when` and set_fact) with defaults/main.yml, vars/main.yml
and the recipe's variables, using Jinja2 with the few Ansible filters those
templates use, then the recipe's own task; loads the rendered project like
above and checks it, the supervisor programs (read by supervisor's own
parser) and nginx's client_max_body_size, with the firmware upgrader
enabled and disabled and with the role's default task routes on and off.
"""

import argparse
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from checks import Checks, not_checked
from upstream import Upstream

HERE = Path(__file__).resolve().parent
RECIPES = HERE.parents[1] / "docs" / "developer" / "recipes"
DOCKER_RECIPE = RECIPES / "docker-openwisp"
ANSIBLE_RECIPE = RECIPES / "ansible-openwisp2"


def use_recipes(directory):
    """Checks other recipe files (e.g. an earlier version of the docs')."""
    global DOCKER_RECIPE, ANSIBLE_RECIPE
    DOCKER_RECIPE = Path(directory) / "docker-openwisp"
    ANSIBLE_RECIPE = Path(directory) / "ansible-openwisp2"


MODULE = "openwisp_modem_upgrader"
TRANSFER_QUEUE = "modem_upgrader"
CONTROL_QUEUE = "modem_upgrader_control"
# the short tasks (driver, dispatch, follow-ups, fan-out); every other task
# of the module goes with the transfers
CONTROL_TASKS = {
    f"{MODULE}.drive_modem_upgrades",
    f"{MODULE}.fail_stuck_operations",
    f"{MODULE}.dispatch_modem_upgrades",
    f"{MODULE}.follow_modem_upgrade",
    f"{MODULE}.fan_out_batch",
}
BEAT_TASKS = {f"{MODULE}.drive_modem_upgrades", f"{MODULE}.sweep_modem_detection"}
UPLOAD_HANDLER = f"{MODULE}.uploads.HashingUploadHandler"
WEBSOCKET_ROUTES = {
    "ws/modem-upgrader/device/<uuid:pk>/",
    "ws/modem-upgrader/batch/<uuid:pk>/",
}
# room for the multipart form around the largest image
FORM_MARGIN = 1024 * 1024


def expected_queue(task):
    return CONTROL_QUEUE if task in CONTROL_TASKS else TRANSFER_QUEUE


def probe(python, project_dir, request, env):
    """Loads the project in a fresh interpreter (see recipe_probe.py)."""
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(project_dir),
        "PYTHONPATH": f"{project_dir}:{HERE}",
        **env,
    }
    result = subprocess.run(
        [python, str(HERE / "recipe_probe.py"), json.dumps(request)],
        cwd=project_dir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("PROBE "):
            return json.loads(line[len("PROBE ") :])
    return {
        "error": f"exit {result.returncode}\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    }


def nginx_size(value):
    """client_max_body_size in bytes (nginx: bytes, or k/m/g suffixes)."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", str(value).strip())
    if not match:
        raise ValueError(f"not an nginx size: {value!r}")
    number, unit = match.groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def check_project(checks, where, report, route_probes=(), urls=None, websocket=False):
    """What every process that loads the project must see."""
    if not checks.check(
        "error" not in report,
        f"{where}: settings and Celery app load",
        report.get("error", ""),
    ):
        return False
    apps = report["installed_apps"]
    checks.equal(apps.count(MODULE), 1, f"{where}: {MODULE} in INSTALLED_APPS once")
    checks.check(
        all(
            a in apps and apps.index(a) < apps.index(MODULE)
            for a in ("openwisp_controller.connection", "openwisp_controller.geo")
        ),
        f"{where}: {MODULE} after openwisp_controller.connection and .geo",
    )
    checks.equal(
        report["file_upload_handlers"],
        [UPLOAD_HANDLER],
        f"{where}: FILE_UPLOAD_HANDLERS",
    )
    upload = report["upload"]
    checks.check(
        upload["sha256_while_streaming"] and upload["spooled_to_disk"],
        f"{where}: an upload is hashed while it streams and spooled to disk",
        upload,
    )
    queues = report["module_task_queues"]
    checks.check(
        len(queues) >= 8,
        f"{where}: the module's {len(queues)} tasks registered",
        queues,
    )
    wrong = {t: q for t, q in queues.items() if q != expected_queue(t)}
    checks.check(
        not wrong,
        f"{where}: transfers on {TRANSFER_QUEUE}, short tasks on {CONTROL_QUEUE}",
        wrong,
    )
    checks.check(
        {t for t, q in queues.items() if q == CONTROL_QUEUE} == CONTROL_TASKS,
        f"{where}: every short task registered and on {CONTROL_QUEUE}",
    )
    for name, expected in route_probes:
        checks.equal(
            report["probe_queues"].get(name),
            expected,
            f"{where}: {name} still on {expected}",
        )
    options = report["broker_transport_options"]
    checks.check(
        options.get("visibility_timeout", 0) >= 3900,
        f"{where}: broker visibility_timeout "
        f"{options.get('visibility_timeout')} >= 3900",
    )
    beat = report["beat"]
    checks.check(
        BEAT_TASKS <= set(beat.values()),
        f"{where}: beat runs the driver and the detection sweep",
        beat,
    )
    lost = set(report["stock_beat"]) - set(beat)
    checks.check(
        report["stock_beat"] and not lost,
        f"{where}: beat keeps the {len(report['stock_beat'])} stock entries",
        lost,
    )
    route = report["device_report_route"]
    checks.check(
        str(route["status"]).startswith("299") and not route["resolved"],
        f"{where}: device reports served before the URL resolver and middleware",
        route,
    )
    for path, expected in (urls or {}).items():
        found = report["urls"].get(path)
        checks.check(
            found is not None and (expected is None or found.startswith(expected)),
            f"{where}: {path} served by {found}",
        )
    if websocket:
        routes = report.get("websocket_routes") or []
        checks.check(
            WEBSOCKET_ROUTES <= set(routes),
            f"{where}: the module's websocket routes",
            routes,
        )
        checks.check(
            len(set(routes) - WEBSOCKET_ROUTES) > 0,
            f"{where}: the stock websocket routes kept",
        )
    return True


def check_workers(checks, where, report, commands):
    consumed = set()
    for command, options in zip(commands, report.get("workers", [])):
        queues = set(options.get("queues") or [])
        consumed |= queues
        checks.check(
            options.get("hostname", "").startswith(tuple(q + "@" for q in queues)),
            f"{where}: worker for {','.join(sorted(queues))} parsed by celery "
            f"(-n {options.get('hostname')})",
        )
    return consumed


# -- docker-openwisp ------------------------------------------------------


def interpolate(value, env):
    """Compose's variable interpolation (${X}, ${X:-d}, ${X-d}, $$)."""

    def replace(match):
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group(1), match.group(2), match.group(3)
        if name in env and (env[name] != "" or op != ":-"):
            return env[name]
        return default if op else ""

    return re.sub(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}", replace, value)


def read_env_file(text):
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def dockerfile_instructions(text):
    """(instruction, arguments) pairs, continuation lines joined."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    if current:
        logical.append(current)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in logical
    ]


def dockerfile_env(text, args=None):
    """The ENV of the last stage of a Dockerfile (ARG defaults substituted)."""
    env, args = {}, dict(args or {})
    for instruction, rest in dockerfile_instructions(text):
        if instruction == "FROM":
            env = {}
        elif instruction == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args.setdefault(key, value)
        elif instruction == "ENV":
            for item in shlex.split(rest):
                key, value = item.split("=", 1)
                env[key] = re.sub(
                    r"\$\{?(\w+)\}?",
                    lambda m: args.get(m.group(1), env.get(m.group(1), "")),
                    value,
                )
    return env


def dockerfile_copies(text):
    """(sources, destination) of the COPY/ADD of the last stage."""
    copies = []
    for instruction, rest in dockerfile_instructions(text):
        if instruction == "FROM":
            copies = []
        elif instruction in ("COPY", "ADD"):
            parts = [
                p
                for p in shlex.split(rest)
                if not p.startswith("--chown") and not p.startswith("--chmod")
            ]
            if any(p.startswith("--from") for p in parts):
                continue
            copies.append((parts[:-1], parts[-1]))
    return copies


def merge_compose(stock, override):
    """docker compose's merge of two files, for the keys used here."""
    merged = copy.deepcopy(stock)
    for name, service in override.get("services", {}).items():
        target = merged["services"].setdefault(name, {})
        for key, value in service.items():
            if key == "build" and isinstance(target.get("build"), dict):
                build = target["build"]
                for k, v in value.items():
                    build[k] = {**build.get(k, {}), **v} if k == "args" else v
            elif key == "volumes" and key in target:
                by_target = {v.split(":")[1]: v for v in target[key]}
                by_target.update({v.split(":")[1]: v for v in value})
                target[key] = list(by_target.values())
            else:
                target[key] = copy.deepcopy(value)
    return merged


class DockerOpenwisp:
    IMAGES = {
        "openwisp/openwisp-dashboard": "openwisp_dashboard",
        "openwisp/openwisp-api": "openwisp_api",
        "openwisp/openwisp-websocket": "openwisp_websocket",
    }

    def __init__(self, checks, upstream, python, workdir):
        self.checks, self.upstream, self.python = checks, upstream, python
        self.workdir = Path(workdir)
        self.checkout = self.workdir / "checkout"

    def lay_out_checkout(self):
        """The upstream checkout with the recipe's files added as the docs say."""
        self.upstream.export("", self.checkout)
        for path in DOCKER_RECIPE.rglob("*"):
            relative = path.relative_to(DOCKER_RECIPE)
            if path.is_dir() or relative.name == "env-additions":
                continue
            target = self.checkout / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        with open(self.checkout / ".env", "a") as env:
            env.write("\n" + (DOCKER_RECIPE / "env-additions").read_text())
        self.dotenv = read_env_file((self.checkout / ".env").read_text())
        stock = yaml.safe_load((self.checkout / "docker-compose.yml").read_text())
        override = yaml.safe_load(
            (self.checkout / "docker-compose.override.yml").read_text()
        )
        self.stock, self.override = stock, override
        self.compose = merge_compose(stock, override)

    def image_of(self, service):
        return interpolate(
            self.compose["services"][service].get("image", ""), self.dotenv
        )

    def base_image(self, service):
        """The stock image a service's image is built from."""
        services = self.compose["services"]
        image = self.image_of(service)
        for name, other in services.items():
            build = other.get("build") or {}
            base = (build.get("args") or {}).get("BASE")
            if base and self.image_of(name) == image:
                return interpolate(base, self.dotenv).split(":")[0], build
        return image.split(":")[0], None

    def image_layout(self, stock_image, recipe_build):
        """/opt/openwisp of an image, as its Dockerfiles copy it."""
        directory = self.IMAGES[stock_image]
        root = self.workdir / "images" / directory
        if root.exists():
            return root
        images = self.checkout / "images"
        dockerfiles = [
            images / "openwisp_base" / "Dockerfile",
            images / directory / "Dockerfile",
        ]
        if recipe_build:
            dockerfiles.append(
                self.checkout
                / recipe_build["context"]
                / recipe_build.get("dockerfile", "Dockerfile")
            )
        for dockerfile in dockerfiles:
            context = (
                images if dockerfile.parent.parent == images else dockerfile.parent
            )
            for sources, destination in dockerfile_copies(dockerfile.read_text()):
                if not destination.startswith("/opt/openwisp"):
                    continue
                target = root / destination.lstrip("/")
                for source in sources:
                    source_path = context / source
                    if source_path.is_dir():
                        shutil.copytree(source_path, target, dirs_exist_ok=True)
                    elif destination.endswith("/"):  # into a directory
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy(source_path, target / source_path.name)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(source_path, target)
        return root

    def service_env(self, service, stock_image, recipe_build):
        images = self.checkout / "images"
        env = dockerfile_env((images / "openwisp_base" / "Dockerfile").read_text())
        env.update(
            dockerfile_env(
                (images / self.IMAGES[stock_image] / "Dockerfile").read_text()
            )
        )
        definition = self.compose["services"][service]
        for env_file in definition.get("env_file", []):
            env.update(read_env_file((self.checkout / env_file).read_text()))
        for item in definition.get("environment", []):
            key, value = item.split("=", 1)
            env[key] = interpolate(value, self.dotenv)
        return env

    def service_root(self, service):
        """/ of a service's container: the image, then its bind mounts."""
        stock_image, recipe_build = self.base_image(service)
        root = self.workdir / "services" / service
        image_root = self.image_layout(stock_image, recipe_build)
        shutil.copytree(image_root, root, dirs_exist_ok=True)
        for volume in self.compose["services"][service].get("volumes", []):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/")):
                continue  # a named volume
            mount = root / target.lstrip("/")
            # a bind mount hides whatever the image had there
            shutil.rmtree(mount, ignore_errors=True)
            source_path = (self.checkout / source).resolve()
            if source_path.is_dir():
                shutil.copytree(source_path, mount)
        return root / "opt" / "openwisp", stock_image, recipe_build

    def run(self):
        c = self.checks
        self.lay_out_checkout()
        services = self.compose["services"]
        stock = self.stock["services"]
        print("== docker-openwisp: compose fragment against docker-compose.yml")
        unknown = (
            set(self.override["services"])
            - set(stock)
            - {"celery_modem_upgrader", "celery_modem_upgrader_control"}
        )
        c.check(
            not unknown,
            "the override names only stock services and the two workers",
            unknown,
        )
        django_services = [
            n
            for n, s in stock.items()
            if interpolate(s.get("image", ""), self.dotenv).split(":")[0] in self.IMAGES
        ]
        c.check(
            len(django_services) == 6,
            f"stock services running Django images: {', '.join(django_services)}",
        )
        config_mount = (
            "./customization/configuration/django/"
            ":/opt/openwisp/openwisp/configuration:ro"
        )
        mounted = [n for n, s in stock.items() if config_mount in s.get("volumes", [])]
        c.check(
            set(mounted) == set(django_services),
            "the stock file bind-mounts customization/configuration/django/ over "
            f"/opt/openwisp/openwisp/configuration in {len(mounted)} services",
        )
        recipe_dockerfile = (
            DOCKER_RECIPE / "modem-upgrader" / "Dockerfile"
        ).read_text()
        hidden = [
            d
            for _, d in dockerfile_copies(recipe_dockerfile)
            if d.startswith("/opt/openwisp/openwisp/configuration")
        ]
        c.check(
            not hidden,
            "the recipe's Dockerfile copies nothing under the bind-mounted directory",
            hidden,
        )
        c.check(
            (self.checkout / "customization/configuration/django/__init__.py").exists(),
            "the configuration directory is a package (upstream's __init__.py)",
        )
        for name in django_services:
            base, build = self.base_image(name)
            stock_base = interpolate(stock[name]["image"], self.dotenv).split(":")[0]
            c.check(
                base == stock_base
                and build is not None
                and self.image_of(name)
                != interpolate(stock[name]["image"], self.dotenv),
                f"{name}: runs {self.image_of(name)}, "
                f"built FROM {stock_base} by the recipe's Dockerfile",
            )
        stock_celery = stock["celery"]
        for name in ("celery_modem_upgrader", "celery_modem_upgrader_control"):
            worker = services.get(name, {})
            c.equal(
                self.base_image(name)[0],
                "openwisp/openwisp-dashboard",
                f"{name}: the dashboard image (as celery)",
            )
            c.equal(
                worker.get("network_mode"),
                stock_celery["network_mode"],
                f"{name}: network_mode as celery's",
            )
            c.check(
                set(stock_celery["volumes"]) <= set(worker.get("volumes", [])),
                f"{name}: celery's volumes "
                "(media, private storage, ssh, configuration)",
            )
            c.equal(
                worker.get("env_file"),
                stock_celery["env_file"],
                f"{name}: env_file as celery's",
            )
            c.equal(
                worker.get("depends_on"),
                stock_celery["depends_on"],
                f"{name}: depends_on as celery's",
            )
        # websocket: daphne.conf's command, another application
        daphne = re.search(
            r"^command=(.*)$",
            (self.checkout / "images/openwisp_websocket/daphne.conf").read_text(),
            re.M,
        ).group(1)
        stock_args = shlex.split(re.sub(r"%\(ENV_(\w+)\)s", r"$\1", daphne))
        command = services["websocket"].get("command") or ["(stock command)"]
        recipe_args = shlex.split(
            interpolate(command[-1], {}).replace("exec ", "", 1).replace('"', "")
        )
        stock_args[0] = os.path.basename(stock_args[0])
        c.equal(
            [a if a != "openwisp.asgi:application" else "APP" for a in stock_args],
            [
                (
                    a
                    if a != "openwisp.configuration.modem_upgrader_asgi:application"
                    else "APP"
                )
                for a in recipe_args
            ],
            "websocket: daphne.conf's command with the recipe's application",
        )

        print(
            "== docker-openwisp: each service loads the project as its container would"
        )
        consumed = set()
        self.routed = set()
        for name in django_services + [
            "celery_modem_upgrader",
            "celery_modem_upgrader_control",
        ]:
            project_dir, stock_image, build = self.service_root(name)
            env = self.service_env(name, stock_image, build)
            workers = []
            if name.startswith("celery_modem"):
                workers = [
                    shlex.split(
                        services[name]["command"][-1]
                        .split("&&")[-1]
                        .replace("exec ", "")
                        .replace('"$$DJANGO_LOG_LEVEL"', "INFO")
                    )
                ]
            urls = {}
            if stock_image == "openwisp/openwisp-dashboard" and name == "dashboard":
                urls = {
                    "/admin/": None,
                    "/api/v1/modem-upgrader/build/": MODULE,
                    "/modem-firmware/x/image.bin": MODULE,
                }
            if stock_image == "openwisp/openwisp-api":
                urls = {
                    "/api/v1/modem-upgrader/build/": MODULE,
                    "/api/v1/firmware-upgrader/build/": "openwisp_firmware_upgrader",
                    "/modem-firmware/x/image.bin": MODULE,
                }
            request = {
                "project": "openwisp",
                "urls": list(urls),
                "route_probes": [
                    "openwisp_controller.connection.tasks.update_config",
                    "openwisp_firmware_upgrader.tasks.upgrade_firmware",
                    "openwisp_monitoring.check.tasks.perform_check",
                    "openwisp_monitoring.monitoring.tasks.probe",
                ],
                "asgi": (
                    "openwisp.configuration.modem_upgrader_asgi"
                    if name == "websocket"
                    else None
                ),
                "workers": workers,
            }
            report = probe(self.python, project_dir, request, env)
            stock_routes = report.get("stock_routes", {})
            expected = []
            for probe_name in request["route_probes"]:
                from fnmatch import fnmatch

                match = next(
                    (
                        v["queue"]
                        for k, v in stock_routes.items()
                        if fnmatch(probe_name, k)
                    ),
                    "celery",
                )
                expected.append((probe_name, match))
            if check_project(
                c,
                f"docker {name}",
                report,
                expected,
                urls,
                websocket=name == "websocket",
            ):
                c.check(
                    len(stock_routes) >= 3,
                    f"docker {name}: stock routes of celery.py kept "
                    f"({len(stock_routes)})",
                )
                self.routed |= set(report["module_task_queues"].values())
                c.check(
                    report["module_file"].find("site-packages") >= 0,
                    f"docker {name}: module from an installed package "
                    f"({report['module_file']})",
                )
                if workers:
                    consumed |= check_workers(c, f"docker {name}", report, workers)
                if name == "dashboard":
                    need = report["module_max_file_size"] + FORM_MARGIN
                    c.check(
                        report["max_request_size"] >= need,
                        "docker: Django MAX_REQUEST_SIZE "
                        f"{report['max_request_size']} >= module maximum + form "
                        f"({need})",
                    )
                    self.need = need
        c.check(
            self.routed and self.routed <= consumed,
            f"docker: every queue of the module has a worker ({sorted(consumed)})",
            self.routed - consumed,
        )
        self.check_nginx()

    def check_nginx(self):
        images = self.checkout / "images" / "openwisp_nginx"
        env = dockerfile_env((images / "Dockerfile").read_text())
        env.update(self.dotenv)
        template = (images / "openwisp.ssl.template.conf").read_text()
        rendered = re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: env.get(m.group(1) or m.group(2), ""),
            template,
        )
        size = re.search(r"client_max_body_size\s+([^;]+);", rendered).group(1)
        need = getattr(self, "need", None)
        self.checks.check(
            need is not None and nginx_size(size) >= need,
            f"docker nginx (SSL template): client_max_body_size {size} >= {need}",
        )


# -- ansible-openwisp2 ----------------------------------------------------


class Role:
    """The few parts of Ansible the role's templating needs."""

    def __init__(self, upstream, variables):
        import jinja2

        self.upstream = upstream
        self.env = jinja2.Environment(
            undefined=jinja2.StrictUndefined, keep_trailing_newline=True
        )
        self.env.filters["to_nice_json"] = lambda v, **kw: json.dumps(
            v, indent=4, sort_keys=True
        )
        self.env.filters["bool"] = lambda v: (
            v if isinstance(v, bool) else str(v).lower() in ("yes", "true", "1", "on")
        )
        self.vars = variables

    def resolved(self):
        """Variables with their own templates expanded, as Ansible does lazily."""
        values = dict(self.vars)
        for _ in range(10):
            changed = False
            for key, value in values.items():
                new = self._expand(value, values)
                if new != value:
                    values[key], changed = new, True
            if not changed:
                return values
        return values

    def _expand(self, value, context):
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            try:
                rendered = self.env.from_string(value).render(context)
            except Exception:
                return value
            if value.strip().startswith("{{") and value.strip().endswith("}}"):
                try:
                    return (
                        yaml.safe_load(rendered) if rendered not in ("",) else rendered
                    )
                except yaml.YAMLError:
                    return rendered
            return rendered
        if isinstance(value, list):
            return [self._expand(v, context) for v in value]
        if isinstance(value, dict):
            return {k: self._expand(v, context) for k, v in value.items()}
        return value

    def condition(self, when, context):
        conditions = when if isinstance(when, list) else [when]
        for condition in conditions:
            if isinstance(condition, bool):
                if not condition:
                    return False
                continue
            if (
                not self.env.from_string(
                    "{{ (" + str(condition) + ") | bool }}"
                ).render(context)
                == "True"
            ):
                return False
        return True

    def run_tasks(self, tasks, templates_dir, root, log):
        handled = (
            "ansible.builtin.set_fact",
            "set_fact",
            "ansible.builtin.template",
            "template",
            "ansible.builtin.file",
            "file",
        )
        for task in tasks:
            # the other tasks (packages, commands, services...) change nothing
            # these checks read; their registered results are not known here
            if not any(module in task for module in handled):
                continue
            if any(k.startswith("with_") or k == "loop" for k in task):
                raise NotImplementedError(f"a looped task: {task.get('name')}")
            context = self.resolved()
            if "when" in task and not self.condition(task["when"], context):
                continue
            for module in ("ansible.builtin.set_fact", "set_fact"):
                if module in task:
                    for key, value in task[module].items():
                        self.vars[key] = self._expand(value, context)
            for module in ("ansible.builtin.template", "template"):
                if module in task:
                    src = self.env.from_string(task[module]["src"]).render(context)
                    dest = self.env.from_string(task[module]["dest"]).render(context)
                    text = templates_dir(src)
                    rendered = self.env.from_string(text).render(context)
                    target = root / dest.lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(rendered)
                    log.append(dest)
            for module in ("ansible.builtin.file", "file"):
                if module in task and task[module].get("state") == "directory":
                    (
                        root
                        / self.env.from_string(task[module]["path"])
                        .render(context)
                        .lstrip("/")
                    ).mkdir(parents=True, exist_ok=True)


class AnsibleOpenwisp2:
    TASK_FILES = ("tasks/django.yml", "tasks/supervisor.yml", "tasks/nginx.yml")

    def __init__(self, checks, upstream, python, workdir):
        self.checks, self.upstream, self.python = checks, upstream, python
        self.workdir = Path(workdir)

    def variables(self, **overrides):
        variables = {}
        variables.update(yaml.safe_load(self.upstream.read("defaults/main.yml")))
        variables.update(yaml.safe_load(self.upstream.read("vars/main.yml")))
        variables.update(
            yaml.safe_load((ANSIBLE_RECIPE / "modem-upgrader-vars.yml").read_text())
        )
        variables.update(
            inventory_hostname="openwisp.example.com",
            openwisp2_secret_key="recipe-check-" + "x" * 40,
            ansible_distribution="Debian",
        )
        variables.update(overrides)
        return variables

    def render(self, name, **overrides):
        root = self.workdir / name
        role = Role(self.upstream, self.variables(**overrides))
        rendered = []
        for task_file in self.TASK_FILES:
            role.run_tasks(
                yaml.safe_load(self.upstream.read(task_file)),
                lambda src: self.upstream.read(f"templates/{src}"),
                root,
                rendered,
            )
        recipe_tasks = yaml.safe_load(
            (ANSIBLE_RECIPE / "modem-upgrader-tasks.yml").read_text()
        )
        role.run_tasks(
            recipe_tasks, lambda src: (ANSIBLE_RECIPE / src).read_text(), root, rendered
        )
        return root, role.resolved(), rendered

    def supervisor_programs(self, root, context):
        from supervisor.options import ServerOptions, UnhosedConfigParser

        programs = {}
        conf_dir = root / os.path.dirname(context["supervisor_path"]).lstrip("/")
        for conf in sorted(conf_dir.glob("*.conf")):
            parser = UnhosedConfigParser()
            # relocated where the files were laid out (supervisor's parser
            # wants the log directories to exist)
            text = conf.read_text().replace(
                context["openwisp2_path"],
                str(root / context["openwisp2_path"].lstrip("/")),
            )
            parser.read_string(text)
            options = ServerOptions()
            options.here = str(conf_dir)
            for group in options.process_groups_from_parser(parser):
                for process in group.process_configs:
                    programs[process.name] = process
        return programs

    def run(self):
        c = self.checks
        defaults = yaml.safe_load(self.upstream.read("defaults/main.yml"))
        print("== ansible-openwisp2: what the docs say of the role")
        c.equal(
            defaults["openwisp2_nginx_client_max_body_size"],
            "20M",
            "default openwisp2_nginx_client_max_body_size",
        )
        c.equal(
            defaults["openwisp2_firmware_upgrader_max_file_size"],
            31457280,
            "default openwisp2_firmware_upgrader_max_file_size (30 MB)",
        )
        role_doc = self.upstream.read("docs/user/role-variables.rst")
        vars_text = (ANSIBLE_RECIPE / "modem-upgrader-vars.yml").read_text()
        quotes = re.findall(r'^# "([^"]+)"', vars_text, re.M)
        for quote in quotes:
            c.check(
                quote in role_doc,
                f"quoted from docs/user/role-variables.rst: {quote!r}",
            )
        for fw in (False, True):
            for routes_defaults in (True, False):
                if fw and not routes_defaults:
                    continue
                name = f"fw-{fw}-routes-{routes_defaults}"
                where = (
                    f"ansible (firmware_upgrader={fw}, "
                    f"celery_task_routes_defaults={routes_defaults})"
                )
                print(f"== {where}")
                root, context, rendered = self.render(
                    name,
                    openwisp2_firmware_upgrader=fw,
                    openwisp2_celery_task_routes_defaults=routes_defaults,
                )
                project_dir = root / context["openwisp2_path"].lstrip("/")
                (project_dir / "log").mkdir(exist_ok=True)
                programs = self.supervisor_programs(root, context)
                workers = [
                    shlex.split(programs[p].command)
                    for p in ("celery_modem_upgrader", "celery_modem_upgrader_control")
                    if p in programs
                ]
                c.equal(
                    len(workers),
                    2,
                    f"{where}: the recipe's two supervisor programs "
                    "rendered and parsed",
                )
                urls = {
                    "/admin/": None,
                    "/api/v1/modem-upgrader/build/": MODULE,
                    "/modem-firmware/x/image.bin": MODULE,
                }
                if fw:
                    urls["/api/v1/firmware-upgrader/build/"] = (
                        "openwisp_firmware_upgrader"
                    )
                probes = [
                    (
                        "openwisp_controller.connection.tasks.update_config",
                        "network" if routes_defaults else "celery",
                    )
                ]
                if fw:
                    probes.append(
                        (
                            "openwisp_firmware_upgrader.tasks.upgrade_firmware",
                            "firmware_upgrader",
                        )
                    )
                request = {
                    "project": "openwisp2",
                    "urls": list(urls),
                    "route_probes": [p for p, _ in probes],
                    "asgi": "openwisp2.asgi",
                    "workers": workers,
                }
                report = probe(
                    self.python,
                    project_dir,
                    request,
                    {"DJANGO_SETTINGS_MODULE": "openwisp2.settings"},
                )
                if check_project(c, where, report, probes, urls, websocket=True):
                    consumed = check_workers(c, where, report, workers)
                    routed = set(report["module_task_queues"].values())
                    c.check(
                        routed <= consumed,
                        f"{where}: every queue of the module has a worker",
                        routed - consumed,
                    )
                    for program in (
                        "celery_modem_upgrader",
                        "celery_modem_upgrader_control",
                    ):
                        process = programs.get(program)
                        c.check(
                            process is not None
                            and process.uid == programs["celery"].uid
                            and process.directory == programs["celery"].directory,
                            f"{where}: {program} runs as the role's celery "
                            "(user, directory)",
                        )
                    restarted = [
                        i["name"]
                        for i in context["openwisp2_default_supervisor_restart"]
                        + context["openwisp2_extra_supervisor_restart"]
                        if Role(self.upstream, context).condition(i["when"], context)
                    ]
                    c.check(
                        {"celery_modem_upgrader", "celery_modem_upgrader_control"}
                        <= set(restarted),
                        f"{where}: both programs restarted by the role's handler",
                    )
                    site = (
                        root
                        / "etc/nginx/sites-available"
                        / context["inventory_hostname"]
                    )
                    text = site.read_text()
                    server_443 = text[text.index("listen 443") :]
                    size = re.search(
                        r"client_max_body_size\s+([^;]+);", server_443
                    ).group(1)
                    need = report["module_max_file_size"] + FORM_MARGIN
                    c.check(
                        nginx_size(size) >= need,
                        f"{where}: nginx client_max_body_size {size} >= {need}",
                    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docker-openwisp", required=True)
    parser.add_argument("--ansible-openwisp2", required=True)
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter loading the projects"
    )
    parser.add_argument(
        "--recipes", help="recipe files to check (default: docs/developer/recipes)"
    )
    options = parser.parse_args()
    if options.recipes:
        use_recipes(options.recipes)
    try:
        docker = Upstream(options.docker_openwisp)
        ansible = Upstream(options.ansible_openwisp2)
        docker.read("docker-compose.yml")
        ansible.read("defaults/main.yml")
    except (FileNotFoundError, subprocess.CalledProcessError, OSError) as error:
        not_checked(f"upstream repositories not available ({error})")
    checks = Checks("recipe check")
    print(f"docker-openwisp {docker.describe()}")
    print(f"ansible-openwisp2 {ansible.describe()}")
    with tempfile.TemporaryDirectory() as workdir:
        checks.run(
            "docker-openwisp",
            DockerOpenwisp(
                checks, docker, options.python, Path(workdir) / "docker"
            ).run,
        )
        checks.run(
            "ansible-openwisp2",
            AnsibleOpenwisp2(
                checks, ansible, options.python, Path(workdir) / "ansible"
            ).run,
        )
    checks.finish()


if __name__ == "__main__":
    main()
