# shellcheck shell=sh
# shellcheck disable=SC2034 # CARRIER_* variables are read by modem-info.sh
# SIM and carrier-image readings of one modem, the "carrier" object of
# modem-info.sh: SIM state, ICCID, IMSI, the operator, the stored carrier
# images and the active one with its selection mode. POSIX sh, BusyBox ash;
# sourced after lib/common.sh. Every command, and the answer it assumes, is
# in docs/user/device-contract.rst; a modem that does not answer one leaves
# its values empty.

# at_raw PORT COMMAND: the answer lines including the final OK or error (no
# echo, no blank lines); fails only on silence or timeout.
at_raw() {
	ar_out=$(run_bounded "$AT_TIMEOUT" "$AT_HELPER" "$1" "$2" 2>/dev/null) || return 1
	printf '%s\n' "$ar_out" | tr -d '\r' | grep -v -e '^[[:space:]]*$' -e "^$2\$"
}

# read_carrier_state: fills CARRIER_SIM (ready, locked, absent, unknown or
# empty), CARRIER_ICCID, CARRIER_IMSI, CARRIER_OPERATOR, CARRIER_IMAGES_JSON
# (the inside of a JSON array), CARRIER_ACTIVE (an image's index) and
# CARRIER_SELECTION (auto, manual or empty) for the modem identified last.
read_carrier_state() {
	CARRIER_SIM=
	CARRIER_ICCID=
	CARRIER_IMSI=
	CARRIER_OPERATOR=
	CARRIER_IMAGES_JSON=
	CARRIER_ACTIVE=
	CARRIER_SELECTION=
	[ "$MODEM_MODE" = normal ] && [ -n "$MODEM_AT_PORT" ] || return 0
	rcs_pin=$(at_raw "$MODEM_AT_PORT" 'AT+CPIN?') || return 0
	case $rcs_pin in
	*'+CPIN: READY'*) CARRIER_SIM=ready ;;
	*'+CPIN: SIM PIN'* | *'+CPIN: SIM PUK'*) CARRIER_SIM=locked ;;
	*'+CME ERROR: 10'* | *'SIM not inserted'*) CARRIER_SIM=absent ;;
	*) CARRIER_SIM=unknown ;;
	esac
	if [ "$CARRIER_SIM" = ready ]; then
		CARRIER_ICCID=$(at_first_line "$MODEM_AT_PORT" 'AT#CCID' |
			sed -n 's/^#CCID: *\([0-9A-Fa-f]\{18,22\}\)$/\1/p')
		CARRIER_IMSI=$(at_first_line "$MODEM_AT_PORT" 'AT+CIMI' |
			sed -n 's/^\([0-9]\{6,15\}\)$/\1/p')
		CARRIER_OPERATOR=$(at_first_line "$MODEM_AT_PORT" 'AT+COPS?' |
			sed -n 's/^+COPS: [0-9],0,"\([^"]\{1,64\}\)".*/\1/p')
	fi
	read_carrier_images
	return 0
}

# read_carrier_images: AT#GETFW lists the stored images, one
# `#GETFW: <index>,"<carrier>","<version>"` line each; AT#ACTIVEFW? answers
# `#ACTIVEFW: <index>,<automatic selection by SIM: 1 or 0>`.
read_carrier_images() {
	rci_list=$(at_query "$MODEM_AT_PORT" 'AT#GETFW') || return 0
	CARRIER_IMAGES_JSON=$(printf '%s\n' "$rci_list" | tr -d '\000-\011\013-\037' | awk '
		function esc(s) { gsub(/\\/, "\\\\", s); return s }
		/^#GETFW: *[0-9][0-9]?,"[^"]{1,32}","[^"]{0,64}"$/ && count < 8 {
			split($0, part, "\"")
			idx = part[1]
			sub(/^#GETFW: */, "", idx)
			sub(/,$/, "", idx)
			printf "%s{\"index\":\"%s\",\"name\":\"%s\",\"version\":\"%s\"}", \
				sep, idx, esc(part[2]), esc(part[4])
			sep = ","
			count++
		}')
	rci_active=$(at_first_line "$MODEM_AT_PORT" 'AT#ACTIVEFW?') || return 0
	CARRIER_ACTIVE=$(printf '%s\n' "$rci_active" |
		sed -n 's/^#ACTIVEFW: *\([0-9]\{1,2\}\),[01]$/\1/p')
	case $rci_active in
	'#ACTIVEFW: '*,1) CARRIER_SELECTION=auto ;;
	'#ACTIVEFW: '*,0) CARRIER_SELECTION=manual ;;
	esac
	return 0
}

carrier_json() {
	printf '{"sim":%s,"iccid":%s,"imsi":%s,"operator":%s,' \
		"$(json_string "$CARRIER_SIM")" "$(json_string "$CARRIER_ICCID")" \
		"$(json_string "$CARRIER_IMSI")" "$(json_string "$CARRIER_OPERATOR")"
	printf '"images":[%s],"active":%s,"selection":%s}' "$CARRIER_IMAGES_JSON" \
		"$(json_string "$CARRIER_ACTIVE")" "$(json_string "$CARRIER_SELECTION")"
}
