#!/usr/bin/env python
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

from openwisp_modem_upgrader import get_version


def get_install_requires():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "requirements.txt")) as requirements:
        return [
            line.strip()
            for line in requirements
            if line.strip() and not line.startswith("#")
        ]


class BuildPyWithDeviceScripts(build_py):
    """Ships the router-side scripts inside the package.

    ``device-scripts/`` at the top of the repository stays their one source
    (the device tests, shellcheck and the docs use it there); built
    packages carry a copy in ``openwisp_modem_upgrader/device-scripts/``,
    found with importlib.resources wherever pip installs the package
    (``--user``, ``--prefix``, ``--target``; see device_scripts.py).
    """

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install uses the repository's directory
        target = os.path.join(
            self.build_lib, "openwisp_modem_upgrader", "device-scripts"
        )
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            "device-scripts",
            target,
            ignore=lambda directory, names: [
                name
                for name in names
                if not name.endswith(".sh")
                and not os.path.isdir(os.path.join(directory, name))
            ],
        )


setup(
    name="openwisp-modem-upgrader",
    version=get_version(),
    # an SPDX expression: license classifiers are deprecated (setuptools
    # warns at every build)
    # GPLv3, as the classifier said before (not "or later": not ours to widen)
    license="GPL-3.0-only",
    author="OpenWISP",
    author_email="support@openwisp.io",
    description="Upgrade the firmware of 5G/LTE modems inside OpenWrt routers",
    long_description=open("README.rst").read(),
    url="https://openwisp.org",
    packages=find_packages(exclude=["tests*", "docs*"]),
    # explicit package data: include_package_data would take the template and
    # static directories for packages (setuptools warns about each)
    include_package_data=False,
    package_data={"openwisp_modem_upgrader": ["static/**/*", "templates/**/*"]},
    cmdclass={"build_py": BuildPyWithDeviceScripts},
    zip_safe=False,
    install_requires=get_install_requires(),
    # images on S3-compatible storage (docs/developer/object-storage.rst)
    extras_require={"s3": ["django-storages[s3]~=1.14"]},
    python_requires=">=3.9",
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Environment :: Web Environment",
        "Framework :: Django",
        "Intended Audience :: System Administrators",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Networking",
    ],
)
