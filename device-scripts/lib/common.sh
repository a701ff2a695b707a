# shellcheck shell=sh
# shellcheck disable=SC2034 # MODEM_* variables are read by the sourcing scripts
# Helpers shared by modem-info.sh and modem-upgrade.sh. POSIX sh, BusyBox ash.
# Sourced, never executed. Every external command sits behind a variable so
# that an emulator (or another vendor's tooling) can stand in for it.

MMCLI=${MMCLI:-mmcli}
UCI=${UCI:-uci}
CURL=${CURL:-curl}
WGET=${WGET:-wget}
SYSFS_ROOT=${SYSFS_ROOT:-/sys}
DEV_DIR=${DEV_DIR:-/dev}
AT_HELPER=${AT_HELPER:-$SCRIPT_DIR/at-command.sh}
# USB interface numbers of the DIAG (flashing) and primary AT ports in the
# FN990A's usual compositions; ttyUSB numbers are never hard-coded.
DIAG_INTERFACE=${DIAG_INTERFACE:-0}
AT_INTERFACE=${AT_INTERFACE:-2}
AT_TIMEOUT=${AT_TIMEOUT:-5}

# vendor:product ids of a modem that sits in a flashing mode after an
# interrupted upgrade: Telit bootloader, Qualcomm EDL, fastboot.
FLASHING_USB_IDS="1bc7:9010 05c6:9008 18d1:d00d"
MODEM_USB_VENDOR=${MODEM_USB_VENDOR:-1bc7}
# USB vendors whose devices modem-info.sh lists as modems (Telit, Quectel,
# Sierra Wireless, Huawei, SIMCom, Fibocom); ModemManager adds any other.
MODEM_USB_VENDORS=${MODEM_USB_VENDORS:-"$MODEM_USB_VENDOR 2c7c 1199 12d1 1e0e 2cb7"}
# The modem to work on (sysfs USB path, e.g. 1-1.2); empty: the first
# modem of vendor $MODEM_USB_VENDOR (the router's only modem).
MODEM_USB_PATH=${MODEM_USB_PATH:-}

have_command() {
	command -v "$1" >/dev/null 2>&1
}

# pause SECONDS: sleep, falling back to one second where BusyBox was built
# without fractional sleep (a failing sleep must never turn a polling loop
# into a busy loop).
pause() {
	sleep "$1" 2>/dev/null || sleep 1
}

# --- bounded waits ---------------------------------------------------------
# BusyBox on OpenWrt has no `timeout`: a background watchdog kills the
# command when its time is up. SCRATCH must name a writable directory.
# The watchdog counts whole seconds and gives up when the script itself is
# gone (killed with SIGKILL): a flash it no longer watches is better left to
# finish than killed by an orphan, and a pid may be reused meanwhile.

watchdog_start() { # seconds pid
	rm -f "$SCRATCH/timed-out"
	(
		trap 'kill "$wd_sleep" 2>/dev/null; exit 0' TERM
		wd_left=${1%%.*}
		[ "${wd_left:-0}" -gt 0 ] || wd_left=1
		while [ "$wd_left" -gt 0 ]; do
			kill -0 "$$" 2>/dev/null || exit 0
			sleep 1 &
			wd_sleep=$!
			wait "$wd_sleep"
			wd_left=$((wd_left - 1))
		done
		: >"$SCRATCH/timed-out"
		kill -TERM "$2" 2>/dev/null
		sleep 2 &
		wd_sleep=$!
		wait "$wd_sleep"
		kill -KILL "$2" 2>/dev/null
	) >/dev/null 2>&1 &
	WATCHDOG_PID=$!
}

watchdog_stop() {
	if [ -n "$WATCHDOG_PID" ]; then
		kill -TERM "$WATCHDOG_PID" 2>/dev/null
		wait "$WATCHDOG_PID" 2>/dev/null
		WATCHDOG_PID=
	fi
}

watchdog_fired() {
	[ -f "$SCRATCH/timed-out" ]
}

# run_bounded SECONDS COMMAND [ARGS...]: returns the command's status, or
# 124 when it had to be killed.
run_bounded() {
	rb_limit=$1
	shift
	"$@" &
	rb_pid=$!
	watchdog_start "$rb_limit" "$rb_pid"
	wait "$rb_pid"
	rb_rc=$?
	watchdog_stop
	if watchdog_fired; then
		return 124
	fi
	return "$rb_rc"
}

# --- JSON ------------------------------------------------------------------

# Reads text on stdin, prints it as the inside of a JSON string: lines joined
# with \n, backslash, quote and tab escaped, other control characters dropped.
json_escape() {
	tr -d '\000-\010\013-\037' | awk '
		{
			gsub(/\\/, "\\\\")
			gsub(/"/, "\\\"")
			gsub(/\t/, "\\t")
			printf "%s%s", (NR > 1 ? "\\n" : ""), $0
		}'
}

json_string() {
	printf '"%s"' "$(printf '%s' "$1" | json_escape)"
}

# json_get KEY: the string value of the first "KEY" in the JSON on stdin,
# unescaped. Enough for mmcli's output (keys unique); not a general parser.
json_get() {
	awk -v key="\"$1\"" '
		{ text = text $0 }
		END {
			i = index(text, key)
			if (!i) exit 1
			rest = substr(text, i + length(key))
			if (!sub(/^[ \t]*:[ \t]*"/, "", rest)) exit 1
			out = ""
			while (rest != "") {
				c = substr(rest, 1, 1)
				if (c == "\"") break
				if (c == "\\") {
					c = substr(rest, 2, 1)
					if (c == "n" || c == "t" || c == "r") c = " "
					rest = substr(rest, 2)
				}
				out = out c
				rest = substr(rest, 2)
			}
			print out
		}'
}

# --- USB / sysfs -----------------------------------------------------------

# usb_mode DIR VENDORS: prints "flashing" or "normal" for the USB device in
# sysfs directory DIR when it is a modem (a flashing id, or one of VENDORS,
# '*' for any); fails otherwise.
usb_mode() {
	[ -r "$1/idVendor" ] && [ -r "$1/idProduct" ] || return 1
	um_id="$(cat "$1/idVendor"):$(cat "$1/idProduct")"
	for um_flash in $FLASHING_USB_IDS; do
		if [ "$um_id" = "$um_flash" ]; then
			echo flashing
			return 0
		fi
	done
	[ "$2" = '*' ] && echo normal && return 0
	for um_vendor in $2; do
		case $um_id in
		"$um_vendor":*)
			echo normal
			return 0
			;;
		esac
	done
	return 1
}

# Sets MODEM_USB (usb path such as 2-1), MODEM_USB_ID (vid:pid) and
# MODEM_MODE (normal, flashing or absent) from sysfs: the modem at
# $MODEM_USB_PATH when set (any vendor), else the first one of vendor
# $MODEM_USB_VENDOR or in a flashing mode.
find_modem_usb() {
	MODEM_USB=
	MODEM_USB_ID=
	MODEM_MODE=absent
	if [ -n "$MODEM_USB_PATH" ]; then
		# chosen by the server from a detection: whatever the vendor
		fmu_candidates="$SYSFS_ROOT/bus/usb/devices/$MODEM_USB_PATH"
		fmu_vendors='*'
	else
		fmu_candidates="$SYSFS_ROOT/bus/usb/devices/*"
		fmu_vendors=$MODEM_USB_VENDOR
	fi
	for fmu_dev in $fmu_candidates; do
		fmu_mode=$(usb_mode "$fmu_dev" "$fmu_vendors") || continue
		MODEM_USB=${fmu_dev##*/}
		MODEM_USB_ID="$(cat "$fmu_dev/idVendor"):$(cat "$fmu_dev/idProduct")"
		MODEM_MODE=$fmu_mode
		return 0
	done
	return 1
}

# list_modem_usb_paths: every modem's USB path, one per line, sorted: USB
# devices of a modem vendor or in a flashing mode, and whatever ModemManager
# lists.
list_modem_usb_paths() {
	{
		for lmu_dev in "$SYSFS_ROOT"/bus/usb/devices/*; do
			case ${lmu_dev##*/} in *:*) continue ;; esac
			usb_mode "$lmu_dev" "$MODEM_USB_VENDORS" >/dev/null &&
				printf '%s\n' "${lmu_dev##*/}"
		done
		mm_usb_paths
	} | grep -E '^[0-9]{1,3}-[0-9]{1,3}(\.[0-9]{1,3}){0,6}$' | sort -u
}

# tty_of_interface USB_PATH INTERFACE: prints /dev/ttyUSBn or nothing.
tty_of_interface() {
	for toi_tty in "$SYSFS_ROOT/bus/usb/devices/$1:1.$2"/ttyUSB*; do
		[ -e "$toi_tty" ] || continue
		printf '%s/%s\n' "$DEV_DIR" "${toi_tty##*/}"
		return 0
	done
	return 1
}

# --- AT commands -----------------------------------------------------------

# at_query PORT COMMAND: prints the answer lines (no echo, no blank lines, no
# final OK); fails on ERROR, silence or timeout.
at_query() {
	atq_out=$(run_bounded "$AT_TIMEOUT" "$AT_HELPER" "$1" "$2" 2>/dev/null) || return 1
	atq_out=$(printf '%s\n' "$atq_out" | tr -d '\r' | grep -v -e '^[[:space:]]*$' -e "^$2\$")
	case $atq_out in
	*ERROR*) return 1 ;;
	esac
	printf '%s\n' "$atq_out" | grep -q '^OK$' || return 1
	printf '%s\n' "$atq_out" | sed '/^OK$/,$d'
}

# --- modem identification --------------------------------------------------

# Fills MODEM_* variables: MODE, USB, USB_ID, AT_PORT, DIAG_PORT,
# MANUFACTURER, MODEL, REVISION (package version, #SWPKGV line 1),
# FIRMWARE (modem firmware, #SWPKGV line 2), IMEI, UID (ModemManager device
# uid) and SOURCE (mmcli or at). Values a modem does not give stay empty.
identify_modem_state() {
	MODEM_USB_ID=
	MODEM_AT_PORT=
	MODEM_DIAG_PORT=
	MODEM_MANUFACTURER=
	MODEM_MODEL=
	MODEM_REVISION=
	MODEM_FIRMWARE=
	MODEM_IMEI=
	MODEM_UID=
	MODEM_SOURCE=
	# ModemManager's answers are cached for one listing, never across a flash
	[ -n "$MM_CACHE_KEEP" ] || rm -f "$SCRATCH"/mm-*
	find_modem_usb || return 0
	MODEM_DIAG_PORT=$(tty_of_interface "$MODEM_USB" "$DIAG_INTERFACE")
	[ "$MODEM_MODE" = normal ] || return 0
	MODEM_AT_PORT=$(tty_of_interface "$MODEM_USB" "$AT_INTERFACE")
	identify_with_mmcli || identify_with_at
	# ModemManager does not show #SWPKGV line 2 (and `mmcli --command`
	# needs debug mode), so the firmware string always comes from AT.
	if [ -z "$MODEM_FIRMWARE" ] && [ -n "$MODEM_AT_PORT" ]; then
		read_swpkgv
	fi
	return 0
}

mm_value() {
	mmv=$(printf '%s' "$MM_JSON" | json_get "$1")
	[ "$mmv" = "--" ] && mmv=
	printf '%s' "$mmv"
}

# mm_indexes: ModemManager's modem indexes, one per line (cached).
mm_indexes() {
	if [ ! -f "$SCRATCH/mm-indexes" ]; then
		if have_command "$MMCLI"; then
			run_bounded "$AT_TIMEOUT" "$MMCLI" -L 2>/dev/null |
				sed -n 's|.*/Modem/\([0-9][0-9]*\).*|\1|p' >"$SCRATCH/mm-indexes"
		else
			: >"$SCRATCH/mm-indexes"
		fi
	fi
	cat "$SCRATCH/mm-indexes"
}

# mm_json INDEX: `mmcli -m INDEX -J` (cached); fails when it fails.
mm_json() {
	if [ ! -f "$SCRATCH/mm-$1.json" ]; then
		run_bounded "$AT_TIMEOUT" "$MMCLI" -m "$1" -J >"$SCRATCH/mm-$1.json.tmp" \
			2>/dev/null || return 1
		mv "$SCRATCH/mm-$1.json.tmp" "$SCRATCH/mm-$1.json"
	fi
	cat "$SCRATCH/mm-$1.json"
}

# mm_usb_paths: the USB paths of ModemManager's modems (the last element
# of modem.generic.device, a sysfs path), one per line.
mm_usb_paths() {
	for mup_index in $(mm_indexes); do
		mup_device=$(mm_json "$mup_index" | json_get device) || continue
		printf '%s\n' "${mup_device##*/}"
	done
}

identify_with_mmcli() {
	for iwm_index in $(mm_indexes); do
		MM_JSON=$(mm_json "$iwm_index") || continue
		iwm_device=$(mm_value device)
		# the modem found on USB; the first one when none was
		if [ -z "$MODEM_USB" ] || [ "${iwm_device##*/}" = "$MODEM_USB" ]; then
			MODEM_MODEL=$(mm_value model)
			[ -n "$MODEM_MODEL" ] || return 1
			MODEM_MANUFACTURER=$(mm_value manufacturer)
			MODEM_REVISION=$(mm_value revision)
			MODEM_IMEI=$(mm_value equipment-identifier)
			MODEM_UID=$iwm_device
			MODEM_SOURCE=mmcli
			return 0
		fi
	done
	return 1
}

read_swpkgv() {
	rs_lines=$(at_query "$MODEM_AT_PORT" 'AT#SWPKGV') || return 1
	MODEM_REVISION=$(printf '%s\n' "$rs_lines" | sed -n 1p)
	MODEM_FIRMWARE=$(printf '%s\n' "$rs_lines" | sed -n 2p)
}

# at_first_line PORT COMMAND: first answer line; fails when there is none.
at_first_line() {
	afl=$(at_query "$1" "$2") || return 1
	afl=$(printf '%s\n' "$afl" | head -n 1)
	[ -n "$afl" ] || return 1
	printf '%s' "$afl"
}

identify_with_at() {
	[ -n "$MODEM_AT_PORT" ] || return 1
	MODEM_MODEL=$(at_first_line "$MODEM_AT_PORT" 'AT+CGMM') || return 1
	MODEM_SOURCE="at"
	MODEM_MANUFACTURER=$(at_first_line "$MODEM_AT_PORT" 'AT+CGMI')
	MODEM_IMEI=$(at_first_line "$MODEM_AT_PORT" 'AT+CGSN')
	read_swpkgv ||
		MODEM_REVISION=$(at_first_line "$MODEM_AT_PORT" 'AT+CGMR') ||
		MODEM_REVISION=$(at_first_line "$MODEM_AT_PORT" 'AT+GMR')
	return 0
}

# The version that --expected-version is compared with: the modem firmware
# (#SWPKGV line 2, e.g. M0R.010000-B022) when the modem gives it, otherwise
# the revision (package version, e.g. 45.00.010-B022-P0R.001600).
modem_version() {
	if [ -n "$MODEM_FIRMWARE" ]; then
		printf '%s' "$MODEM_FIRMWARE"
	else
		printf '%s' "$MODEM_REVISION"
	fi
}

modem_json() {
	printf '{"usb_path":%s,"manufacturer":%s,' "$(json_string "$MODEM_USB")" \
		"$(json_string "$MODEM_MANUFACTURER")"
	printf '"model":%s,"revision":%s,"firmware":%s,"imei":%s,' \
		"$(json_string "$MODEM_MODEL")" \
		"$(json_string "$MODEM_REVISION")" "$(json_string "$MODEM_FIRMWARE")" \
		"$(json_string "$MODEM_IMEI")"
	# MODEM_JSON_EXTRA: further members (",\"key\":value"), e.g. modem-info.sh's
	# carrier object
	printf '"ports":{"at":%s,"diag":%s},"mode":%s,"source":%s,"usb_id":%s%s}' \
		"$(json_string "$MODEM_AT_PORT")" "$(json_string "$MODEM_DIAG_PORT")" \
		"$(json_string "$MODEM_MODE")" "$(json_string "$MODEM_SOURCE")" \
		"$(json_string "$MODEM_USB_ID")" "$MODEM_JSON_EXTRA"
}
