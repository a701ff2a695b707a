#!/bin/sh
# modem-health.sh: reads a modem's service health and prints one JSON
# object on one line (docs/user/device-contract.rst, "Service health"):
# {"usb_path", "mode", "usb_id", "at": "ok|silent|", "sim", "registration",
#  "rat", "rsrp", "sinr", "apn", "pdp_type", "interface", "data", "address",
#  "device", "reachable", "http_status", "uptime", "power", "actions"}
# Empty values were not read. With remediation options it first applies
# them (in this order) and then reads; "actions" says how each went.
#
#   --usb-path P          the modem (sysfs USB path, e.g. 2-1); default: the first
#   --interface NAME      the router's cellular interface (netifd, e.g. wwan)
#   --target HOST|URL     reachability target through that interface: a host
#                         is pinged, an http(s):// URL fetched by curl
#   --power-command P     the operator's power-source hook (prints one word)
#   --apply-apn APN --pdp-type IP|IPV6|IPV4V6   write PDP context 1 back
#   --ifup                restart the interface (ifup NAME)
#   --restart-service P   restart the modem daemon (P restart, e.g.
#                         /etc/init.d/modemmanager)
# Exits 0 with a reading, 64 on bad arguments. POSIX sh for BusyBox ash.

case $0 in
*/*) SCRIPT_DIR=${0%/*} ;;
*) SCRIPT_DIR=. ;;
esac
SCRIPT_DIR=$(cd "$SCRIPT_DIR" && pwd) || exit 1
# shellcheck source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=lib/health.sh
. "$SCRIPT_DIR/lib/health.sh"

usage() {
	printf 'modem-health.sh: %s\n' "$1" >&2
	exit 64
}

# full_match NAME VALUE EXTENDED-REGEX: exits 64 unless VALUE matches whole
full_match() {
	case $2 in *'
'*) usage "$1 is not valid" ;; esac
	printf '%s\n' "$2" | grep -Eqx "$3" || usage "$1 is not valid"
}

HEALTH_INTERFACE='' HEALTH_TARGET='' HEALTH_APPLY_APN='' HEALTH_PDP='' HEALTH_IFUP=''
HEALTH_SERVICE='' HEALTH_ACTIONS='' HEALTH_POWER_COMMAND=''
# a host (pinged) or an http(s) URL (fetched); health.py's TARGET says the same
TARGET_PATTERN='[A-Za-z0-9][A-Za-z0-9.:-]{0,252}|https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]{0,200})?'
while [ $# -gt 0 ]; do
	case $1 in
	--ifup) HEALTH_IFUP=1; shift; continue ;;
	--*) [ $# -ge 2 ] || usage "$1 needs a value" ;;
	*) usage "unexpected argument" ;;
	esac
	case $1 in
	--usb-path) full_match "$1" "$2" '[0-9]{1,3}-[0-9]{1,3}(\.[0-9]{1,3}){0,6}'; MODEM_USB_PATH=$2 ;;
	--interface) full_match "$1" "$2" '[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}'; HEALTH_INTERFACE=$2 ;;
	--target) full_match "$1" "$2" "$TARGET_PATTERN"; HEALTH_TARGET=$2 ;;
	--power-command) full_match "$1" "$2" '/[A-Za-z0-9._/+-]{1,254}'; HEALTH_POWER_COMMAND=$2 ;;
	--apply-apn) full_match "$1" "$2" '[A-Za-z0-9][A-Za-z0-9.-]{0,99}'; HEALTH_APPLY_APN=$2 ;;
	--pdp-type) full_match "$1" "$2" 'IP|IPV6|IPV4V6'; HEALTH_PDP=$2 ;;
	--restart-service) full_match "$1" "$2" '/[A-Za-z0-9._/+-]{1,254}'; HEALTH_SERVICE=$2 ;;
	*) usage "unknown option $1" ;;
	esac
	shift 2
done
[ -z "$HEALTH_IFUP" ] || [ -n "$HEALTH_INTERFACE" ] || usage "--ifup needs --interface"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/modem-health.XXXXXX") || exit 1
trap 'rm -rf "$SCRATCH"' EXIT

find_modem_usb
if [ "$MODEM_MODE" = normal ]; then
	mh_port=$(tty_of_interface "$MODEM_USB" "$AT_INTERFACE")
	if [ -n "$HEALTH_APPLY_APN" ] && [ -n "$mh_port" ]; then
		remediate_apn "$mh_port" "${HEALTH_PDP:-IPV4V6}" "$HEALTH_APPLY_APN"
	fi
fi
[ -n "$HEALTH_SERVICE" ] && remediate_service "$HEALTH_SERVICE"
[ -n "$HEALTH_IFUP" ] && remediate_ifup "$HEALTH_INTERFACE"
read_health
read_data_session "$HEALTH_INTERFACE"
read_reachability "$HEALTH_TARGET"
read_uptime
read_power_source "$HEALTH_POWER_COMMAND"
health_json
