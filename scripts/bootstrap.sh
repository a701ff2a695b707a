#!/bin/sh
# Installs what the demo and the tests need on a fresh Debian 12 machine (as
# root): Debian packages, and a virtualenv in .venv built from Debian's
# /usr/bin/python3 (its sqlite3 can load SpatiaLite). Safe to rerun.
set -eu
cd "$(dirname "$0")/.."

APT_PACKAGES="python3-venv sqlite3 gdal-bin libproj-dev libgeos-dev
libspatialite-dev spatialite-bin libsqlite3-mod-spatialite redis-server
dropbear-bin busybox openssh-client shellcheck postgresql-15
postgresql-15-postgis-3 curl chromium chromium-driver influxdb ${EXTRA_APT_PACKAGES:-}"

missing=""
for package in $APT_PACKAGES; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "Installing Debian packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
stamp=".venv/.requirements-$(cat setup.py requirements.txt requirements-test.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "Installing Python packages into .venv"
    .venv/bin/pip install -q -U pip setuptools wheel
    .venv/bin/pip install -q -e . -r requirements-test.txt
    touch "$stamp"
fi
