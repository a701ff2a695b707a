#!/bin/sh
# modem-info.sh: prints one JSON object describing the cellular modem:
# {"manufacturer", "model", "revision", "firmware", "imei",
#  "ports": {"at", "diag"}, "mode": "normal|flashing|absent",
#  "source": "mmcli|at|", "usb_id"}
# ModemManager answers first (mmcli -L / mmcli -m N -J); AT commands through
# $AT_HELPER fill what it lacks. Exits 0 even without a modem (mode absent).
# See docs/user/device-contract.rst.

case $0 in
*/*) SCRIPT_DIR=${0%/*} ;;
*) SCRIPT_DIR=. ;;
esac
SCRIPT_DIR=$(cd "$SCRIPT_DIR" && pwd) || exit 1
# shellcheck source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/modem-info.XXXXXX") || exit 1
trap 'rm -rf "$SCRATCH"' EXIT

identify_modem_state
modem_json
