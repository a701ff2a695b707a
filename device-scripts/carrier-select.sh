#!/bin/sh
# carrier-select.sh: makes one of the modem's stored carrier images the
# active one, waits for the modem to answer again and reads the active image
# back (docs/user/device-contract.rst, "Selecting the carrier image"). No
# image is transferred. Prints one JSON object on one line:
# {"result", "usb_path", "image", "active", "selection", "detail"}
#
#   --image INDEX     the stored image to activate (its AT#GETFW index)
#   --name NAME       the name the modem lists for it: checked, since the
#                     server's reading may be older than the modem's list
#   --usb-path P      the modem (sysfs USB path); default: the first
#   --wait SECONDS    how long the modem may take to answer again (default 90)
#
# Exit codes (result):
#   0  switched, already-active
#   3  no-modem, unsupported, unknown-image: refused, nothing was sent
#   4  refused: the modem answered ERROR to the switch (its selection
#      mode put back)
#   5  not-back: the modem did not answer again within --wait
#   6  not-switched: it answers, with another image active
#   64 bad arguments
# POSIX sh for BusyBox ash. The server sends it on the standard input of
# `sh -s` with the library inlined (openwisp_modem_upgrader/carrier_switch.py).

EXIT_REFUSED_UNTOUCHED=3
EXIT_SWITCH_REFUSED=4
EXIT_NOT_BACK=5
EXIT_NOT_SWITCHED=6
EXIT_USAGE=64

if [ -z "$CARRIER_SELECT_BUNDLED" ]; then
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

usage() {
	printf 'carrier-select.sh: %s\n' "$1" >&2
	exit "$EXIT_USAGE"
}

# full_match NAME VALUE EXTENDED-REGEX: exits 64 unless VALUE matches whole
full_match() {
	case $2 in *'
'*) usage "$1 is not valid" ;; esac
	printf '%s\n' "$2" | grep -Eqx "$3" || usage "$1 is not valid"
}

parse_arguments() {
	SELECT_IMAGE='' SELECT_NAME='' SELECT_WAIT=90 SELECT_USB=''
	while [ $# -gt 0 ]; do
		[ $# -ge 2 ] || usage "$1 needs a value"
		case $1 in
		--image) full_match "$1" "$2" '[1-9][0-9]?'; SELECT_IMAGE=$2 ;;
		--name) full_match "$1" "$2" '[A-Za-z0-9][A-Za-z0-9_.-]{0,31}'; SELECT_NAME=$2 ;;
		--usb-path) full_match "$1" "$2" '[0-9]{1,3}-[0-9]{1,3}(\.[0-9]{1,3}){0,6}'; MODEM_USB_PATH=$2 ;;
		--wait) full_match "$1" "$2" '[1-9][0-9]{0,3}'; SELECT_WAIT=$2 ;;
		*) usage "unknown option $1" ;;
		esac
		shift 2
	done
	if [ -z "$SELECT_IMAGE" ] || [ -z "$SELECT_NAME" ]; then
		usage "--image and --name are required"
	fi
}

# finish CODE RESULT DETAIL: prints the outcome and exits with CODE
finish() {
	printf '{"result":%s,"usb_path":%s,"image":%s,"active":%s,"selection":%s,"detail":%s}\n' \
		"$(json_string "$2")" "$(json_string "${SELECT_USB:-$MODEM_USB}")" \
		"$(json_string "$SELECT_IMAGE")" "$(json_string "$CARRIER_ACTIVE")" \
		"$(json_string "$CARRIER_SELECTION")" "$(json_string "$3")"
	exit "$1"
}

# modem_answers: the modem is on USB in normal mode and its AT port answers
modem_answers() {
	find_modem_usb && [ "$MODEM_MODE" = normal ] || return 1
	MODEM_AT_PORT=$(tty_of_interface "$MODEM_USB" "$AT_INTERFACE") || return 1
	at_query "$MODEM_AT_PORT" AT >/dev/null
}

# check_stored_image: refuses (nothing sent) unless the modem lists image
# SELECT_IMAGE under the name SELECT_NAME
check_stored_image() {
	modem_answers ||
		finish "$EXIT_REFUSED_UNTOUCHED" no-modem "no modem answering AT commands${MODEM_USB_PATH:+ at $MODEM_USB_PATH}"
	SELECT_USB=$MODEM_USB
	read_carrier_images
	[ -n "$CARRIER_IMAGES_JSON" ] ||
		finish "$EXIT_REFUSED_UNTOUCHED" unsupported "the modem lists no stored carrier image (AT#GETFW)"
	case $CARRIER_IMAGES_JSON in
	*"{\"index\":\"$SELECT_IMAGE\",\"name\":\"$SELECT_NAME\","*) ;;
	*) finish "$EXIT_REFUSED_UNTOUCHED" unknown-image "the modem stores no image $SELECT_IMAGE named $SELECT_NAME" ;;
	esac
	[ "$CARRIER_ACTIVE" != "$SELECT_IMAGE" ] ||
		finish 0 already-active "image $SELECT_IMAGE ($SELECT_NAME) is already active"
}

# switch_image: the automatic selection by SIM off (Telit refuses a switch
# while it is on), then the switch; the modem reboots into the image
switch_image() {
	si_selection_before=$CARRIER_SELECTION
	if [ "$si_selection_before" != manual ]; then
		at_query "$MODEM_AT_PORT" 'AT#ACTIVEFW=0,2' >/dev/null ||
			finish "$EXIT_SWITCH_REFUSED" refused "the modem refused to turn its automatic image selection off (AT#ACTIVEFW=0,2)"
	fi
	if ! at_query "$MODEM_AT_PORT" "AT#ACTIVEFW=1,$SELECT_IMAGE" >/dev/null; then
		[ "$si_selection_before" = auto ] &&
			at_query "$MODEM_AT_PORT" 'AT#ACTIVEFW=0,1' >/dev/null
		read_carrier_images
		finish "$EXIT_SWITCH_REFUSED" refused "the modem refused the switch (AT#ACTIVEFW=1,$SELECT_IMAGE answered ERROR)"
	fi
}

# wait_for_image: until --wait has passed, reads the active image whenever
# the modem answers (it may answer once more before its reboot)
wait_for_image() {
	wfi_deadline=$(($(date +%s) + SELECT_WAIT))
	wfi_answered=
	while [ "$(date +%s)" -lt "$wfi_deadline" ]; do
		pause 1
		modem_answers || continue
		wfi_answered=1
		read_carrier_images
		[ "$CARRIER_ACTIVE" = "$SELECT_IMAGE" ] &&
			finish 0 switched "image $SELECT_IMAGE ($SELECT_NAME) is active"
	done
	[ -n "$wfi_answered" ] ||
		finish "$EXIT_NOT_BACK" not-back "the modem did not answer again within ${SELECT_WAIT}s of the switch"
	finish "$EXIT_NOT_SWITCHED" not-switched "the modem answers with image ${CARRIER_ACTIVE:-?} active, not $SELECT_IMAGE"
}

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/carrier-select.XXXXXX") || exit 1
trap 'rm -rf "$SCRATCH"' EXIT

main() {
	parse_arguments "$@"
	check_stored_image
	switch_image
	wait_for_image
}

main "$@"
