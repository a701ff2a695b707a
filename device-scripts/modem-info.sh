#!/bin/sh
# modem-info.sh: prints a JSON array with one object per modem of the
# router, on one line ("[]" when there is none):
# {"usb_path", "manufacturer", "model", "revision", "firmware", "imei",
#  "ports": {"at", "diag"}, "mode": "normal|flashing", "source": "mmcli|at|",
#  "usb_id", "carrier": {"sim", "iccid", "imsi", "operator", "images":
#  [{"index", "name", "version"}], "active", "selection"}}
# Modems are USB devices of a known modem vendor or in a flashing mode, and
# whatever ModemManager lists. ModemManager answers first (mmcli -L / mmcli
# -m N -J); AT commands through $AT_HELPER fill what it lacks. Exits 0 even
# without a modem. See docs/user/device-contract.rst.
#
# The server sends this script on the standard input of `sh -s` with the
# library inlined (openwisp_modem_upgrader/detection.py): it then has no
# directory of its own and must not need one.

if [ -z "$MODEM_INFO_BUNDLED" ]; then
	case $0 in
	*/*) SCRIPT_DIR=${0%/*} ;;
	*) SCRIPT_DIR=. ;;
	esac
	SCRIPT_DIR=$(cd "$SCRIPT_DIR" && pwd) || exit 1
	# shellcheck source=lib/common.sh
	. "$SCRIPT_DIR/lib/common.sh"
	# shellcheck source=lib/carrier.sh
	. "$SCRIPT_DIR/lib/carrier.sh"
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/modem-info.XXXXXX") || exit 1
trap 'rm -rf "$SCRATCH"' EXIT

main() {
	MODEM_USB_PATHS=$(list_modem_usb_paths)
	MM_CACHE_KEEP=1
	printf '['
	mi_separator=
	for MODEM_USB_PATH in $MODEM_USB_PATHS; do
		identify_modem_state
		[ "$MODEM_MODE" = absent ] && continue
		printf '%s' "$mi_separator"
		read_carrier_state
		MODEM_JSON_EXTRA=",\"carrier\":$(carrier_json)"
		modem_json
		mi_separator=,
	done
	printf ']\n'
}

main
