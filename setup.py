#!/usr/bin/env python
import os

from setuptools import find_packages, setup

from openwisp_modem_upgrader import get_version


def get_install_requires():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "requirements.txt")) as requirements:
        return [
            line.strip()
            for line in requirements
            if line.strip() and not line.startswith("#")
        ]


def get_device_scripts():
    """The router-side scripts, installed under share/ (see device_scripts.py)."""
    files = {}
    for directory, _, names in os.walk("device-scripts"):
        target = os.path.join("share", "openwisp-modem-upgrader", directory)
        files[target] = [os.path.join(directory, n) for n in names if n.endswith(".sh")]
    return [(target, paths) for target, paths in sorted(files.items()) if paths]


setup(
    name="openwisp-modem-upgrader",
    version=get_version(),
    license="GPL3",
    author="OpenWISP",
    author_email="support@openwisp.io",
    description="Upgrade the firmware of 5G/LTE modems inside OpenWrt routers",
    long_description=open("README.rst").read(),
    url="https://openwisp.org",
    packages=find_packages(exclude=["tests*", "docs*"]),
    include_package_data=True,
    zip_safe=False,
    install_requires=get_install_requires(),
    # images on S3-compatible storage (docs/developer/object-storage.rst)
    extras_require={"s3": ["django-storages[s3]~=1.14"]},
    data_files=get_device_scripts(),
    python_requires=">=3.9",
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Environment :: Web Environment",
        "Framework :: Django",
        "Intended Audience :: System Administrators",
        "License :: OSI Approved :: GNU General Public License v3 (GPLv3)",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Networking",
    ],
)
