#!/usr/bin/env python3
"""Checks the built package as operators install it.

Usage: check_wheel.py [WHEEL]   (without WHEEL: builds sdist and wheel first)

- the wheel is tagged for Python 3 only (not "universal" py2.py3);
- it carries every router-side script of device-scripts/ (same bytes), the
  static files and the templates (built from the sdist, so the sdist is
  checked to carry them too);
- installed with ``pip install --target``, ``--prefix`` and ``--user`` into
  directories outside ``sys.prefix``, ``scripts_dir()`` of the installed
  module finds the scripts inside the installed package (the module used to
  look under ``sys.prefix/share``: FileNotFoundError with ``--user``).
"""

import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

from checks import Checks

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "openwisp_modem_upgrader"

# run by the installed copy, with nothing of the repository on sys.path
FIND_SCRIPTS = """
import os, sys
from django.conf import settings
settings.configure()
import openwisp_modem_upgrader.device_scripts as d
print(d.__file__)
print(d.scripts_dir())
print(sorted(os.listdir(d.scripts_dir())))
"""


def build_wheel(checks, outdir):
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", outdir, str(REPO)],
        capture_output=True,
        text=True,
    )
    output = built.stdout + built.stderr
    if not checks.check(built.returncode == 0, "sdist and wheel build", output):
        checks.finish()
    # include_package_data used to take static/ and templates/ for packages
    checks.check(
        "is absent from the `packages` configuration" not in output,
        "no setuptools warning about package data directories",
        output,
    )
    return next(Path(outdir).glob("*.whl"))


def files_under(root):
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def check_contents(checks, wheel):
    checks.check(
        wheel.name.endswith("-py3-none-any.whl"),
        f"wheel tagged py3-none-any ({wheel.name})",
    )
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        expected = {
            f"{PACKAGE}/device-scripts/{name}": content
            for name, content in files_under(REPO / "device-scripts").items()
            if name.endswith(".sh")
        }
        for group in ("static", "templates"):
            expected.update(
                {
                    f"{PACKAGE}/{group}/{name}": content
                    for name, content in files_under(REPO / PACKAGE / group).items()
                }
            )
        missing = sorted(set(expected) - names)
        checks.check(not missing, f"wheel carries {len(expected)} data files", missing)
        differing = [n for n in set(expected) & names if archive.read(n) != expected[n]]
        checks.check(not differing, "their content is the repository's", differing)
        scripts = [n for n in expected if "/device-scripts/" in n]
        checks.check(
            f"{PACKAGE}/device-scripts/modem-upgrade.sh" in scripts
            and any("/device-scripts/lib/" in n for n in scripts),
            f"device scripts with their lib/ ({len(scripts)} files)",
        )


def find_installed_scripts(checks, layout, python, env, location):
    result = subprocess.run(
        [python, "-c", FIND_SCRIPTS],
        env=env,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    if not checks.check(
        result.returncode == 0, f"{layout}: scripts_dir() answers", result.stderr
    ):
        return
    module, found, listing = result.stdout.splitlines()[-3:]
    checks.check(
        module.startswith(str(location)), f"{layout}: module imported from {module}"
    )
    checks.check(
        found == os.path.join(os.path.dirname(module), "device-scripts"),
        f"{layout}: scripts found inside the installed package ({found})",
    )
    checks.check(
        "modem-upgrade.sh" in listing and "lib" in listing,
        f"{layout}: modem-upgrade.sh and lib/ there",
        listing,
    )


def check_installs(checks, wheel, workdir):
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    # Django for the installed copy, without the repository's editable install
    # (its .pth hook is read only from site directories, not from PYTHONPATH)
    env_site = sysconfig.get_paths()["purelib"]
    base_env = {"PATH": os.environ["PATH"], "HOME": str(workdir)}

    target = workdir / "target"
    subprocess.run(pip + ["--target", str(target), str(wheel)], check=True)
    find_installed_scripts(
        checks,
        "pip install --target",
        sys.executable,
        {**base_env, "PYTHONPATH": f"{target}:{env_site}"},
        target,
    )

    prefix = workdir / "prefix"
    subprocess.run(pip + ["--prefix", str(prefix), str(wheel)], check=True)
    site = Path(
        sysconfig.get_path(
            "purelib", vars={"base": str(prefix), "platbase": str(prefix)}
        )
    )
    find_installed_scripts(
        checks,
        "pip install --prefix",
        sys.executable,
        {**base_env, "PYTHONPATH": f"{site}:{env_site}"},
        prefix,
    )

    # --user needs a Python outside a virtualenv: the system one, with a
    # private user base so nothing of the machine is touched
    system_python = "/usr/bin/python3"
    userbase = workdir / "userbase"
    user_env = {**base_env, "PYTHONUSERBASE": str(userbase)}
    installed = subprocess.run(
        [system_python, "-m", "pip", "install", "-q", "--no-deps", "--user"]
        + ["--break-system-packages", str(wheel)],
        env=user_env,
        capture_output=True,
        text=True,
    )
    if not checks.check(
        installed.returncode == 0,
        "pip install --user (system Python)",
        installed.stderr,
    ):
        return
    find_installed_scripts(
        checks,
        "pip install --user",
        system_python,
        {**user_env, "PYTHONPATH": env_site},
        userbase,
    )


def main():
    checks = Checks("wheel check")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if len(sys.argv) > 1:
            wheel = Path(sys.argv[1]).resolve()
        else:
            wheel = build_wheel(checks, str(workdir / "dist"))
        print(f"== {wheel.name}")
        check_contents(checks, wheel)
        check_installs(checks, wheel, workdir)
    checks.finish()


if __name__ == "__main__":
    main()
