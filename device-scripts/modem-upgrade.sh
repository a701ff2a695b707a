#!/bin/sh
# modem-upgrade.sh: flashes a cellular modem's firmware with the vendor tool
# (Telit uxfp for the FN990A), journaling every step on the device and
# reporting progress to OpenWISP while the uplink allows.
# POSIX sh for BusyBox ash. Contract: docs/user/device-contract.rst.

EXIT_SUCCESS=0
EXIT_RECOVERABLE=1   # nothing was written to the modem (a signal included), the server may retry
EXIT_IRRECOVERABLE=2 # bad image, wrong model, tool error, wrong version after flash
EXIT_ABORTED=3       # flash interrupted (modem left in flashing mode or lost) or killed
EXIT_BUSY=4          # another instance holds this operation's lock
EXIT_USAGE=64        # bad or hostile arguments

case $0 in
*/*) SCRIPT_DIR=${0%/*} ;;
*) SCRIPT_DIR=. ;;
esac
SCRIPT_DIR=$(cd "$SCRIPT_DIR" && pwd) || exit 1
SELF="$SCRIPT_DIR/${0##*/}"
# shellcheck source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=lib/journal.sh
. "$SCRIPT_DIR/lib/journal.sh"
# shellcheck source=lib/report.sh
. "$SCRIPT_DIR/lib/report.sh"
# shellcheck source=lib/download.sh
. "$SCRIPT_DIR/lib/download.sh"

MIN_FREE_KB=${MIN_FREE_KB:-64}
POLL_INTERVAL=${POLL_INTERVAL:-2}
INHIBIT_SETTLE=${INHIBIT_SETTLE:-1}

main() {
	parse_arguments "$@"
	[ -n "$DETACH" ] && detach "$@"
	take_lock
	start_operation
	download_firmware
	verify_firmware_file
	check_stream
	identify_modem
	release_modem_ports
	flash_modem
	wait_for_modem_reboot
	verify_modem_version
	finish "$EXIT_SUCCESS" "firmware $EXPECTED_VERSION verified"
}

usage() {
	printf 'modem-upgrade.sh: %s\n' "$1" >&2
	printf 'see docs/user/device-contract.rst for the arguments\n' >&2
	exit "$EXIT_USAGE"
}

# check_value NAME VALUE CHARSET-PATTERN: exits 64 unless VALUE is non-empty
# and made only of the characters of the bracket pattern CHARSET-PATTERN.
check_value() {
	[ -n "$2" ] || usage "$1 needs a value"
	case $2 in
	*[!$3]*) usage "$1 has characters outside [$3]" ;;
	esac
	[ "${#2}" -le 512 ] || usage "$1 is too long"
}

check_number() {
	check_value "$1" "$2" '0-9.'
	case $2 in
	.* | *.*.* | *.) usage "$1 is not a number" ;;
	esac
}

# check_usb_path NAME VALUE: a sysfs USB path such as 1-1.2, nothing else.
check_usb_path() {
	check_value "$1" "$2" '0-9.-'
	printf '%s\n' "$2" | grep -Eq '^[0-9]{1,3}-[0-9]{1,3}(\.[0-9]{1,3}){0,6}$' ||
		usage "$1 is not a USB path like 1-1.2"
}

parse_arguments() {
	OPERATION_ID='' FIRMWARE='' SHA256='' EXPECTED_VERSION='' EXPECTED_MODEL=''
	WORKDIR='' TOOL=${UXFP:-uxfp} TOOL_ARGS='' REPORT_URL='' DEVICE_UUID='' DEVICE_KEY=''
	NO_CHECKSUM='' DETACH='' MODEM_SERVICE='' LOSSRECOVERY='' MODEM_USB_PATH=''
	STREAM_PREFIX='' PULL='' IMAGE_SIZE='' DOWNLOAD_TIMEOUT=1800 DOWNLOAD_VERIFIED=''
	FLASH_TIMEOUT=1800 REBOOT_TIMEOUT=300 REPORT_INTERVAL=10
	FINAL_REPORT_TIMEOUT=600 HTTP_TIMEOUT=10
	while [ $# -gt 0 ]; do
		pa_option=$1
		case $pa_option in
		--no-checksum) NO_CHECKSUM=1; shift; continue ;;
		--detach)
			# the detached copy gets the same arguments and must not detach again
			[ -z "$MODEM_UPGRADE_DETACHED" ] && DETACH=1
			shift
			continue
			;;
		--lossrecovery) LOSSRECOVERY=1; shift; continue ;;
		--pull) PULL=1; shift; continue ;;
		--*=*) usage "use '--option value', not '$pa_option'" ;;
		--*) [ $# -ge 2 ] || usage "$pa_option needs a value" ;;
		*) usage "unexpected argument" ;;
		esac
		pa_value=$2
		shift 2
		case $pa_option in
		--operation-id) check_value "$pa_option" "$pa_value" '0-9a-f-'; OPERATION_ID=$pa_value ;;
		--firmware) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._/+-'; FIRMWARE=$pa_value ;;
		--sha256) check_value "$pa_option" "$pa_value" '0-9a-fA-F'; SHA256=$pa_value ;;
		--expected-version) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._+-'; EXPECTED_VERSION=$pa_value ;;
		--expected-model) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._+-'; EXPECTED_MODEL=$pa_value ;;
		--workdir) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._/+-'; WORKDIR=$pa_value ;;
		--tool) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._/+-'; TOOL=$pa_value ;;
		--tool-args) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._=:/,+ -'; TOOL_ARGS=$pa_value ;;
		--report-url) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._~:/%@+-'; REPORT_URL=$pa_value ;;
		--device-uuid) check_value "$pa_option" "$pa_value" '0-9a-fA-F-'; DEVICE_UUID=$pa_value ;;
		--device-key) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._~-'; DEVICE_KEY=$pa_value ;;
		--modem-service) check_value "$pa_option" "$pa_value" 'A-Za-z0-9._/+-'; MODEM_SERVICE=$pa_value ;;
		--usb-path) check_usb_path "$pa_option" "$pa_value"; MODEM_USB_PATH=$pa_value ;;
		--stream-prefix) check_value "$pa_option" "$pa_value" '0-9A-Za-z.'; STREAM_PREFIX=$pa_value ;;
		--flash-timeout) check_number "$pa_option" "$pa_value"; FLASH_TIMEOUT=$pa_value ;;
		--reboot-timeout) check_number "$pa_option" "$pa_value"; REBOOT_TIMEOUT=$pa_value ;;
		--report-interval) check_number "$pa_option" "$pa_value"; REPORT_INTERVAL=$pa_value ;;
		--final-report-timeout) check_number "$pa_option" "$pa_value"; FINAL_REPORT_TIMEOUT=$pa_value ;;
		--http-timeout) check_number "$pa_option" "$pa_value"; HTTP_TIMEOUT=$pa_value ;;
		--image-size) check_value "$pa_option" "$pa_value" '0-9'; IMAGE_SIZE=$pa_value ;;
		--download-timeout) check_number "$pa_option" "$pa_value"; DOWNLOAD_TIMEOUT=$pa_value ;;
		*) usage "unknown option $pa_option" ;;
		esac
	done
	[ -n "$OPERATION_ID" ] || usage "--operation-id is required"
	[ -n "$FIRMWARE" ] || usage "--firmware is required"
	[ -n "$EXPECTED_VERSION" ] || usage "--expected-version is required"
	[ -n "$EXPECTED_MODEL" ] || usage "--expected-model is required"
	[ -n "$WORKDIR" ] || usage "--workdir is required"
	[ "${#OPERATION_ID}" -le 64 ] || usage "--operation-id is too long"
	if [ -z "$NO_CHECKSUM" ]; then
		[ "${#SHA256}" -eq 64 ] || usage "--sha256 needs 64 hex digits (or --no-checksum)"
		SHA256=$(printf '%s' "$SHA256" | tr 'A-F' 'a-f')
	fi
	if [ -n "$PULL" ]; then
		# a downloaded image is always verified before the modem is touched
		[ -z "$NO_CHECKSUM" ] || usage "--pull needs the sha256 (no --no-checksum)"
		case $IMAGE_SIZE in
		'' | 0*) usage "--pull needs --image-size (bytes, more than 0)" ;;
		esac
	fi
	for pa_number in "$FLASH_TIMEOUT" "$REBOOT_TIMEOUT" "$FINAL_REPORT_TIMEOUT" "$HTTP_TIMEOUT" "$DOWNLOAD_TIMEOUT"; do
		case $pa_number in *.*) usage "timeouts are whole seconds" ;; esac
	done
	unset MODEM_UPGRADE_DETACHED
	OPDIR="$WORKDIR/$OPERATION_ID"
	SCRATCH=$OPDIR
	JOURNAL="$OPDIR/journal"
}

lock_holder_alive() {
	lh_pid=$(cat "$OPDIR/lock/pid" 2>/dev/null)
	[ -n "$lh_pid" ] && kill -0 "$lh_pid" 2>/dev/null
}

# Re-executes this script in its own session (start-stop-daemon -b, since
# OpenWrt has neither nohup nor setsid) and prints the journal path.
detach() {
	mkdir -p "$OPDIR" || exit "$EXIT_RECOVERABLE"
	if [ -d "$OPDIR/lock" ] && lock_holder_alive; then
		printf '%s\n' "$JOURNAL"
		exit "$EXIT_BUSY"
	fi
	rm -f "$OPDIR/detach.pid"
	MODEM_UPGRADE_DETACHED=1 start-stop-daemon -S -b -m -p "$OPDIR/detach.pid" \
		-x "$(command -v sh)" -- "$SELF" "$@" || exit "$EXIT_RECOVERABLE"
	printf '%s\n' "$JOURNAL"
	exit "$EXIT_SUCCESS"
}

# mkdir is atomic; the holder's pid tells a live lock from a stale one left
# by a process that was killed with SIGKILL or lost power.
take_lock() {
	mkdir -p "$OPDIR" || exit "$EXIT_RECOVERABLE"
	if ! mkdir "$OPDIR/lock" 2>/dev/null; then
		lock_holder_alive && exit "$EXIT_BUSY"
		sleep 1 # the holder may be between mkdir and writing its pid
		lock_holder_alive && exit "$EXIT_BUSY"
		rm -rf "$OPDIR/lock"
		mkdir "$OPDIR/lock" 2>/dev/null || exit "$EXIT_BUSY"
	fi
	printf '%s\n' "$$" >"$OPDIR/lock/pid"
	if [ -f "$OPDIR/exit_code" ]; then
		# already finished: starting it again changes nothing
		tl_code=$(cat "$OPDIR/exit_code")
		rm -rf "$OPDIR/lock"
		printf '%s\n' "$JOURNAL"
		exit "$tl_code"
	fi
}

start_operation() {
	printf '%s\n' "$$" >"$OPDIR/pid"
	journal_open "$JOURNAL"
	trap on_exit EXIT
	trap 'on_signal TERM' TERM
	trap 'on_signal INT' INT
	# the SSH session that started us may vanish with the uplink: carry on
	trap '' HUP PIPE
	resolve_report_endpoint
	# a pulled image's download fills the server's transfer range, 0-10
	so_percent=10
	[ -n "$PULL" ] && so_percent=0
	progress "$so_percent" "operation $OPERATION_ID started (pid $$) on device ${DEVICE_UUID:-?} for $EXPECTED_MODEL $EXPECTED_VERSION"
	reporter_start
}

resolve_report_endpoint() {
	REPORT_ENDPOINT=
	if have_command "$UCI"; then
		[ -n "$REPORT_URL" ] || REPORT_URL=$("$UCI" -q get openwisp.http.url 2>/dev/null)
		[ -n "$DEVICE_UUID" ] || DEVICE_UUID=$("$UCI" -q get openwisp.http.uuid 2>/dev/null)
		[ -n "$DEVICE_KEY" ] || DEVICE_KEY=$("$UCI" -q get openwisp.http.key 2>/dev/null)
	fi
	# values read from UCI pass the same checks as arguments
	case $REPORT_URL in
	'' | *[!A-Za-z0-9._~:/%@+-]*) REPORT_URL= ;;
	esac
	case $DEVICE_KEY in
	'' | *[!A-Za-z0-9._~-]*) DEVICE_KEY= ;;
	esac
	case $DEVICE_UUID in
	*[!0-9a-fA-F-]*) DEVICE_UUID= ;;
	esac
	[ -n "$REPORT_URL" ] && [ -n "$DEVICE_KEY" ] || return 0
	REPORT_ENDPOINT="${REPORT_URL%/}/api/v1/modem-upgrader/upgrade-operation/$OPERATION_ID/?key=$DEVICE_KEY"
}

# --- stages ----------------------------------------------------------------

verify_firmware_file() {
	if [ ! -f "$FIRMWARE" ] || [ ! -r "$FIRMWARE" ] || [ ! -s "$FIRMWARE" ]; then
		finish "$EXIT_RECOVERABLE" "firmware file $FIRMWARE is missing or empty"
	fi
	vf_free=$(df -Pk "$OPDIR" 2>/dev/null | awk 'NR == 2 { print $4 }')
	case $vf_free in '' | *[!0-9]*) vf_free=$MIN_FREE_KB ;; esac
	[ "$vf_free" -ge "$MIN_FREE_KB" ] ||
		finish "$EXIT_RECOVERABLE" "only ${vf_free} KB free in $WORKDIR"
	if [ -n "$NO_CHECKSUM" ]; then
		progress 20 "checksum verification skipped (--no-checksum)"
		return 0
	fi
	if [ -n "$DOWNLOAD_VERIFIED" ]; then
		progress 20 "image in place"
		return 0
	fi
	progress 10 "verifying sha256 of $FIRMWARE"
	vf_sum=$(sha256sum "$FIRMWARE" | cut -d ' ' -f 1)
	[ "$vf_sum" = "$SHA256" ] ||
		finish "$EXIT_IRRECOVERABLE" "sha256 mismatch: expected $SHA256, file has $vf_sum (incomplete or corrupted upload)"
	progress 20 "sha256 verified"
}

# Refuses a file that cannot be a firmware stream before the modem is
# touched (ModemManager and the radio are still as they were): archives and text (the first 64 KiB only
# printable ASCII), and, with --stream-prefix, a stream whose header (first
# 4 KiB) carries a Telit package version (45.00.010-B022-...) of another
# chipset. A header with no such version is left to the tool. The server
# applies the same rules at upload (upgraders/stream_checks.py). The same
# file would be refused again: the irrecoverable code, so the server does
# not retry it, and a message that says the modem is untouched.
check_stream() {
	[ -n "$STREAM_PREFIX" ] || return 0
	cs_head="$OPDIR/stream.head"
	dd if="$FIRMWARE" of="$cs_head" bs=65536 count=1 2>/dev/null ||
		finish "$EXIT_RECOVERABLE" "cannot read $FIRMWARE: modem untouched"
	cs_kind=$(archive_kind "$cs_head")
	if [ -n "$cs_kind" ]; then
		rm -f "$cs_head"
		finish "$EXIT_IRRECOVERABLE" "refused before stopping anything: $FIRMWARE is a $cs_kind archive, not a firmware stream; modem untouched"
	fi
	if [ "$(tr -d '\011\012\015\040-\176' <"$cs_head" | wc -c)" -eq 0 ]; then
		rm -f "$cs_head"
		finish "$EXIT_IRRECOVERABLE" "refused before stopping anything: $FIRMWARE is text, not a firmware stream; modem untouched"
	fi
	cs_version=$(dd if="$cs_head" bs=4096 count=1 2>/dev/null | tr -c '0-9A-Za-z.-' '\n' |
		grep -m 1 -E '^[0-9]{2}[.][0-9]{2}[.][0-9]{3}-B[0-9]{3}')
	rm -f "$cs_head"
	if [ -z "$cs_version" ]; then
		progress 20 "stream header has no readable software version: the tool checks the stream"
		return 0
	fi
	case $cs_version in
	"$STREAM_PREFIX"*) progress 20 "stream software version $cs_version" ;;
	*) finish "$EXIT_IRRECOVERABLE" "refused before stopping anything: the stream's software version $cs_version is for another chipset (expected $STREAM_PREFIX...); modem untouched" ;;
	esac
}

# archive_kind FILE: prints zip, gzip, xz, 7z, bzip2, zstd or tar when FILE
# starts with that format's magic number.
archive_kind() {
	ak_magic=$(dd if="$1" bs=6 count=1 2>/dev/null | tr '\000' '@')
	case $ak_magic in
	"PK$(printf '\003\004')"* | "PK$(printf '\005\006')"* | "PK$(printf '\007\010')"*) echo zip ;;
	"$(printf '\037\213')"*) echo gzip ;;
	"$(printf '\3757zXZ')@") echo xz ;;
	"7z$(printf '\274\257\047\034')"*) echo 7z ;;
	BZh*) echo bzip2 ;;
	"$(printf '\050\265\057\375')"*) echo zstd ;;
	*)
		[ "$(dd if="$1" bs=1 skip=257 count=5 2>/dev/null)" = ustar ] && echo tar
		;;
	esac
	return 0
}

identify_modem() {
	identify_modem_state
	case $MODEM_MODE in
	absent) finish "$EXIT_RECOVERABLE" "no modem found on USB" ;;
	flashing)
		LOSSRECOVERY=1
		progress 20 "modem found in flashing mode (USB $MODEM_USB_ID): recovering with --lossrecovery; its model cannot be read, the tool checks the image"
		return 0
		;;
	esac
	[ -n "$MODEM_MODEL" ] ||
		finish "$EXIT_RECOVERABLE" "modem (USB $MODEM_USB_ID) does not answer"
	[ "$MODEM_MODEL" = "$EXPECTED_MODEL" ] ||
		finish "$EXIT_IRRECOVERABLE" "image is for $EXPECTED_MODEL but the modem is $MODEM_MODEL: refused"
	progress 20 "modem $MODEM_MANUFACTURER $MODEM_MODEL, firmware $(modem_version), revision $MODEM_REVISION, IMEI $MODEM_IMEI (via $MODEM_SOURCE)"
	if [ "$(modem_version)" = "$EXPECTED_VERSION" ]; then
		progress 20 "modem already runs $EXPECTED_VERSION: flashing it again"
	fi
}

release_modem_ports() {
	have_command "$TOOL" || finish "$EXIT_RECOVERABLE" "flashing tool $TOOL not found"
	if [ -n "$MODEM_UID" ] && have_command "$MMCLI"; then
		inhibit_modem_manager
	elif [ -n "$MODEM_SERVICE" ]; then
		run_bounded 60 "$MODEM_SERVICE" stop >/dev/null 2>&1 ||
			finish "$EXIT_RECOVERABLE" "could not stop $MODEM_SERVICE"
		SERVICE_STOPPED=1
		progress 20 "$MODEM_SERVICE stopped"
	fi
	if [ "$MODEM_MODE" = normal ]; then
		if at_query "$MODEM_AT_PORT" 'AT+CFUN=0' >/dev/null; then
			RADIO_OFF=1
			progress 20 "radio off (AT+CFUN=0)"
		else
			progress 20 "AT+CFUN=0 not acknowledged, flashing anyway"
		fi
	fi
	find_modem_usb
	FLASH_PORT=$(tty_of_interface "$MODEM_USB" "$DIAG_INTERFACE") ||
		finish "$EXIT_RECOVERABLE" "no DIAG port under $SYSFS_ROOT/bus/usb/devices/$MODEM_USB:1.$DIAG_INTERFACE"
}

inhibit_modem_manager() {
	rm -f "$OPDIR/inhibit.pid"
	start_inhibitor
	pause "$INHIBIT_SETTLE"
	im_wait=0
	while [ ! -s "$OPDIR/inhibit.pid" ] && [ "$im_wait" -lt 50 ]; do
		pause 0.1
		im_wait=$((im_wait + 1))
	done
	if ! kill -0 "$(cat "$OPDIR/inhibit.pid" 2>/dev/null)" 2>/dev/null; then
		restore_modem_ports
		finish "$EXIT_RECOVERABLE" "ModemManager refused to inhibit $MODEM_UID"
	fi
	progress 20 "ModemManager inhibited on $MODEM_UID"
}

# The inhibition lasts as long as its mmcli process lives. A guardian
# subshell ends it when asked (restore_modem_ports) and also when this script
# is gone, even killed with SIGKILL, so the ports are never left inhibited.
start_inhibitor() {
	(
		trap 'kill -TERM "$im_mmcli" 2>/dev/null; wait "$im_mmcli"; exit 0' TERM
		"$MMCLI" --inhibit-device="$MODEM_UID" >/dev/null 2>&1 &
		im_mmcli=$!
		printf '%s\n' "$im_mmcli" >"$OPDIR/inhibit.pid"
		while kill -0 "$$" 2>/dev/null && kill -0 "$im_mmcli" 2>/dev/null; do
			sleep 1 &
			wait $!
		done
		kill -TERM "$im_mmcli" 2>/dev/null
		wait "$im_mmcli"
	) </dev/null >/dev/null 2>&1 &
	INHIBIT_PID=$!
}

flash_modem() {
	set -- --file "$FIRMWARE" --port "$FLASH_PORT"
	[ -n "$LOSSRECOVERY" ] && set -- "$@" --lossrecovery
	set -f
	for fm_arg in $TOOL_ARGS; do
		set -- "$@" "$fm_arg"
	done
	set +f
	progress 20 "running $TOOL $*"
	rm -f "$OPDIR/tool.raw" "$OPDIR/tool.lines"
	mkfifo "$OPDIR/tool.raw" "$OPDIR/tool.lines" ||
		finish "$EXIT_RECOVERABLE" "cannot create fifos in $OPDIR"
	FLASH_STARTED=1
	"$TOOL" "$@" >"$OPDIR/tool.raw" 2>&1 &
	TOOL_PID=$!
	# progress lines may end in \r only
	tr '\r' '\n' <"$OPDIR/tool.raw" >"$OPDIR/tool.lines" &
	watchdog_start "$FLASH_TIMEOUT" "$TOOL_PID"
	while IFS= read -r fm_line; do
		handle_tool_line "$fm_line"
	done <"$OPDIR/tool.lines"
	wait "$TOOL_PID"
	fm_rc=$?
	TOOL_PID=
	watchdog_stop
	rm -f "$OPDIR/tool.raw" "$OPDIR/tool.lines"
	if watchdog_fired; then
		flash_failed "$TOOL did not finish within ${FLASH_TIMEOUT}s: killed"
	elif [ "$fm_rc" -ne 0 ]; then
		flash_failed "$TOOL failed with exit status $fm_rc"
	fi
	progress 90 "$TOOL finished"
	restore_modem_ports
}

# Maps "[+] flashing [<name>] <pct>%, transferred <n>/<total> B" to 20-90%;
# other non-empty lines go to the journal as they are.
handle_tool_line() {
	printf '%s\n' "$1" >>"$OPDIR/tool.log"
	case $1 in
	'') return 0 ;;
	*'flashing ['*'] '*'%'*)
		htl_pct=${1##*\] }
		htl_pct=${htl_pct%%%*}
		htl_pct=${htl_pct%%.*}
		case $htl_pct in '' | *[!0-9]*) progress "$JOURNAL_PERCENT" "$1"; return 0 ;; esac
		[ "$htl_pct" -gt 100 ] && htl_pct=100
		htl_pct=$((20 + htl_pct * 70 / 100))
		[ "$htl_pct" -gt "$JOURNAL_PERCENT" ] && progress "$htl_pct" "$1"
		;;
	*) progress "$JOURNAL_PERCENT" "$1" ;;
	esac
	return 0
}

# After a failed flash the modem tells which outcome is true: back in normal
# mode (the old firmware still runs: irrecoverable error of the tool), or
# left in flashing mode / gone (interrupted: needs --lossrecovery).
flash_failed() {
	restore_modem_ports
	progress "$JOURNAL_PERCENT" "$1; waiting up to ${REBOOT_TIMEOUT}s to see the modem's state"
	ff_deadline=$(($(date +%s) + REBOOT_TIMEOUT))
	while :; do
		find_modem_usb
		[ "$MODEM_MODE" != absent ] && break
		[ "$(date +%s)" -lt "$ff_deadline" ] || break
		pause "$POLL_INTERVAL"
	done
	case $MODEM_MODE in
	normal)
		# a refused image leaves the modem as it was, radio off included
		ff_port=$(tty_of_interface "$MODEM_USB" "$AT_INTERFACE") &&
			at_query "$ff_port" 'AT+CFUN=1' >/dev/null
		finish "$EXIT_IRRECOVERABLE" "$1; modem is back in normal mode"
		;;
	flashing) finish "$EXIT_ABORTED" "$1; modem left in flashing mode (USB $MODEM_USB_ID): run again to recover with --lossrecovery" ;;
	*) finish "$EXIT_ABORTED" "$1; modem lost (not on USB after ${REBOOT_TIMEOUT}s)" ;;
	esac
}

wait_for_modem_reboot() {
	progress 90 "waiting up to ${REBOOT_TIMEOUT}s for the modem to answer"
	wr_deadline=$(($(date +%s) + REBOOT_TIMEOUT))
	while :; do
		find_modem_usb
		if [ "$MODEM_MODE" = normal ]; then
			wr_port=$(tty_of_interface "$MODEM_USB" "$AT_INTERFACE") &&
				at_query "$wr_port" AT >/dev/null && break
		fi
		[ "$(date +%s)" -lt "$wr_deadline" ] || modem_not_back
		pause "$POLL_INTERVAL"
	done
	progress 95 "modem answers again"
}

modem_not_back() {
	if [ "$MODEM_MODE" = flashing ]; then
		finish "$EXIT_ABORTED" "modem still in flashing mode (USB $MODEM_USB_ID) ${REBOOT_TIMEOUT}s after the flash: run again to recover with --lossrecovery"
	fi
	finish "$EXIT_IRRECOVERABLE" "modem did not answer within ${REBOOT_TIMEOUT}s after the flash (USB mode: $MODEM_MODE)"
}

verify_modem_version() {
	# a modem that just re-enumerated may need a moment to tell its version
	vm_tries=0
	while :; do
		identify_modem_state
		vm_version=$(modem_version)
		[ -n "$vm_version" ] || [ "$vm_tries" -ge 5 ] && break
		vm_tries=$((vm_tries + 1))
		pause "$POLL_INTERVAL"
	done
	[ "$vm_version" = "$EXPECTED_VERSION" ] ||
		finish "$EXIT_IRRECOVERABLE" "modem runs '$vm_version' after the flash, expected $EXPECTED_VERSION"
	progress 100 "modem $MODEM_MODEL runs $vm_version (revision $MODEM_REVISION)"
}

# --- ending ----------------------------------------------------------------

# Gives back what release_modem_ports took. Safe to call more than once.
restore_modem_ports() {
	if [ -n "$INHIBIT_PID" ]; then
		kill -TERM "$INHIBIT_PID" 2>/dev/null
		wait "$INHIBIT_PID" 2>/dev/null
		INHIBIT_PID=
	fi
	if [ -n "$SERVICE_STOPPED" ]; then
		run_bounded 60 "$MODEM_SERVICE" start >/dev/null 2>&1
		SERVICE_STOPPED=
	fi
	if [ -n "$RADIO_OFF" ] && [ -z "$FLASH_STARTED" ]; then
		at_query "$MODEM_AT_PORT" 'AT+CFUN=1' >/dev/null
	fi
	RADIO_OFF=
}

# finish CODE MESSAGE: the only way out once the operation has started.
finish() {
	trap '' TERM INT
	case $1 in
	"$EXIT_SUCCESS") fi_status=success ;;
	"$EXIT_ABORTED") fi_status=aborted ;;
	*) fi_status=failed ;;
	esac
	if [ -n "$TOOL_PID" ]; then
		kill -TERM "$TOOL_PID" 2>/dev/null
		TOOL_PID=
	fi
	if [ -n "$FETCH_PID" ]; then
		kill -TERM "$FETCH_PID" 2>/dev/null
		FETCH_PID=
	fi
	watchdog_stop
	restore_modem_ports
	[ "$1" = "$EXIT_SUCCESS" ] && JOURNAL_PERCENT=100
	journal "$fi_status" "$JOURNAL_PERCENT" "$2"
	printf '%s\n' "$1" >"$OPDIR/exit_code"
	# the outcome is recorded: a signal now only cuts the last reports short
	FINAL_CODE=$1
	trap 'release_operation; exit "$FINAL_CODE"' TERM INT
	reporter_stop
	report_final "$FINAL_REPORT_TIMEOUT"
	release_operation
	exit "$1"
}

release_operation() {
	trap - EXIT
	rm -f "$OPDIR/pid"
	rm -rf "$OPDIR/lock"
}

# shellcheck disable=SC2317 # invoked by trap
on_signal() {
	if [ -n "$FLASH_STARTED" ]; then
		finish "$EXIT_ABORTED" "killed by signal $1 during or after the flash: modem state unknown"
	fi
	# nothing was written: the server may retry, no recovery flash needed
	finish "$EXIT_RECOVERABLE" "killed by signal $1 before flashing: modem untouched"
}

# an unexpected exit (a bug, set -e in a caller...) still frees the ports
# shellcheck disable=SC2317 # invoked by trap
on_exit() {
	finish "$EXIT_ABORTED" "ended unexpectedly"
}

main "$@"
