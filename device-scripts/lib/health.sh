# shellcheck shell=sh
# shellcheck disable=SC2034 # HEALTH_* variables are read by the sourcing script
# Service health readings of a modem (issue 22): SIM, registration, signal,
# PDP context, the router's cellular interface and a reachability check
# bound to it; and the cheap remediation steps. POSIX sh, BusyBox ash;
# sourced after lib/common.sh (AT commands go through $AT_HELPER).
#
# The AT commands are 3GPP TS 27.007 ones (AT+CPIN?, AT+CEREG?, AT+C5GREG?,
# AT+CESQ, AT+CGDCONT?/=); that the FN990A answers them in the standard
# shape is assumed, not confirmed (docs/user/device-contract.rst). Every
# value printed is matched against a closed character set first.

IFSTATUS=${IFSTATUS:-ifstatus}
IFUP=${IFUP:-ifup}
PING=${PING:-ping}
PROC_UPTIME=${PROC_UPTIME:-/proc/uptime}
# seconds a reachability probe waits for its answer, and probes before "no"
PING_WAIT=${PING_WAIT:-5}
PING_TRIES=${PING_TRIES:-3}

# health_at PORT COMMAND: sets HEALTH_LINES (answer lines, no echo, no
# final line) and HEALTH_FINAL (OK, ERROR, +CME ERROR: n or empty on
# silence); fails unless the final line is OK.
health_at() {
	HEALTH_LINES=
	HEALTH_FINAL=
	ha_out=$(run_bounded "$AT_TIMEOUT" "$AT_HELPER" "$1" "$2" 2>/dev/null |
		tr -d '\r' | grep -v -e '^[[:space:]]*$' | grep -v -F -x -e "$2")
	HEALTH_FINAL=$(printf '%s\n' "$ha_out" | grep -E '^(OK|ERROR|\+CM[ES] ERROR.*)$' | tail -n 1)
	HEALTH_LINES=$(printf '%s\n' "$ha_out" | grep -v -E '^(OK|ERROR|\+CM[ES] ERROR.*)$')
	[ "$HEALTH_FINAL" = OK ]
}

# health_field LINE PREFIX N: the Nth comma-separated field after PREFIX
# ("+CEREG: 0,1" "+CEREG:" 2 -> 1), digits only; fails otherwise.
health_field() {
	hf_rest=${1#"$2"}
	[ "$hf_rest" != "$1" ] || return 1
	hf_value=$(printf '%s\n' "$hf_rest" | tr -d ' ' | cut -d , -f "$3")
	case $hf_value in '' | *[!0-9]*) return 1 ;; esac
	printf '%s' "$hf_value"
}

read_sim() {
	if health_at "$1" 'AT+CPIN?'; then
		case $HEALTH_LINES in
		*'+CPIN: READY'*) HEALTH_SIM=ready ;;
		*'+CPIN: SIM PIN'* | *'+CPIN: SIM PUK'*) HEALTH_SIM=pin ;;
		*) HEALTH_SIM=unknown ;;
		esac
		return 0
	fi
	case $HEALTH_FINAL in
	# 10: SIM not inserted (27.007 +CME error codes)
	'+CME ERROR: 10' | *'SIM not inserted'*) HEALTH_SIM=absent ;;
	*) HEALTH_SIM=unknown ;;
	esac
}

# registration_name STAT: 27.007 <stat> as a word
registration_name() {
	case $1 in
	0) echo none ;;
	1) echo home ;;
	2) echo searching ;;
	3) echo denied ;;
	5) echo roaming ;;
	*) echo unknown ;;
	esac
}

# 5G (C5GREG) first, then LTE (CEREG): the first registered one wins; the
# rat says which answered.
read_registration() {
	HEALTH_REGISTRATION=unknown
	HEALTH_RAT=
	for rr_pair in C5GREG:nr CEREG:lte; do
		rr_command=${rr_pair%%:*}
		health_at "$1" "AT+$rr_command?" || continue
		rr_stat=$(health_field "$HEALTH_LINES" "+$rr_command:" 2) || continue
		rr_name=$(registration_name "$rr_stat")
		case $rr_name in
		home | roaming)
			HEALTH_REGISTRATION=$rr_name
			HEALTH_RAT=${rr_pair#*:}
			return 0
			;;
		esac
		# "searching" or "denied" on LTE says more than "none" on 5G
		case $HEALTH_REGISTRATION in
		unknown | none) HEALTH_REGISTRATION=$rr_name ;;
		esac
	done
	return 0
}

# AT+CESQ: rxlev,ber,rscp,ecno,rsrq,rsrp[,ss_rsrq,ss_rsrp,ss_sinr]; 255 is
# "not known". rsrp n: -141+n dBm; ss_rsrp n: -157+n dBm; ss_sinr n:
# -23+n/2 dB (rounded down to whole dB).
read_signal() {
	HEALTH_RSRP=
	HEALTH_SINR=
	health_at "$1" 'AT+CESQ' || return 0
	rs_line=$(printf '%s\n' "$HEALTH_LINES" | grep -m 1 '^+CESQ:')
	if rs_value=$(health_field "$rs_line" '+CESQ:' 8) && [ "$rs_value" -le 127 ]; then
		HEALTH_RSRP=$((rs_value - 157))
	elif rs_value=$(health_field "$rs_line" '+CESQ:' 6) && [ "$rs_value" -le 97 ]; then
		HEALTH_RSRP=$((rs_value - 141))
	fi
	if rs_value=$(health_field "$rs_line" '+CESQ:' 9) && [ "$rs_value" -le 127 ]; then
		HEALTH_SINR=$(((rs_value - 46) / 2))
	fi
	return 0
}

# PDP context 1: +CGDCONT: 1,"IPV4V6","internet",...
read_pdp_context() {
	HEALTH_APN=
	HEALTH_PDP_TYPE=
	health_at "$1" 'AT+CGDCONT?' || return 0
	rp_line=$(printf '%s\n' "$HEALTH_LINES" | grep -m 1 '^+CGDCONT: *1,')
	rp_type=$(printf '%s\n' "$rp_line" | cut -d , -f 2 | tr -d '"')
	rp_apn=$(printf '%s\n' "$rp_line" | cut -d , -f 3 | tr -d '"')
	case $rp_type in IP | IPV6 | IPV4V6) HEALTH_PDP_TYPE=$rp_type ;; esac
	case $rp_apn in '' | *[!A-Za-z0-9.-]*) ;; *) HEALTH_APN=$rp_apn ;; esac
	return 0
}

# read_data_session INTERFACE: netifd's view of the cellular interface
# (ifstatus prints JSON): up or down, its address and its device.
read_data_session() {
	HEALTH_DATA=
	HEALTH_ADDRESS=
	HEALTH_DEVICE=
	[ -n "$1" ] || return 0
	if ! have_command "$IFSTATUS"; then
		HEALTH_DATA=unknown
		return 0
	fi
	rd_json=$(run_bounded "$AT_TIMEOUT" "$IFSTATUS" "$1" 2>/dev/null) || {
		HEALTH_DATA=unknown
		return 0
	}
	HEALTH_DATA=down
	printf '%s\n' "$rd_json" | grep -q '"up":[[:space:]]*true' || return 0
	rd_address=$(printf '%s\n' "$rd_json" | json_get address)
	rd_device=$(printf '%s\n' "$rd_json" | json_get l3_device)
	case $rd_address in '' | *[!0-9A-Fa-f.:]*) return 0 ;; esac
	case $rd_device in '' | *[!A-Za-z0-9_.@-]*) return 0 ;; esac
	HEALTH_ADDRESS=$rd_address
	HEALTH_DEVICE=$rd_device
	HEALTH_DATA=up
}

# read_reachability TARGET: through the cellular interface's device, a
# ping (TARGET a host) or an HTTP GET by curl (TARGET an http(s) URL: 2xx
# or 3xx is an answer; BusyBox wget cannot bind to a device, so without
# curl the check is "unsupported"). "yes" at the first answer, "no" after
# $PING_TRIES probes of $PING_WAIT seconds.
read_reachability() {
	HEALTH_REACHABLE=
	HEALTH_HTTP_STATUS=
	[ -n "$1" ] || return 0
	case $1 in
	http://* | https://*)
		if ! have_command "$CURL"; then
			HEALTH_REACHABLE=unsupported
			return 0
		fi
		;;
	esac
	if [ "$HEALTH_DATA" != up ]; then
		HEALTH_REACHABLE=no
		return 0
	fi
	rr_try=0
	while [ "$rr_try" -lt "$PING_TRIES" ]; do
		if probe_target "$1"; then
			HEALTH_REACHABLE=yes
			return 0
		fi
		rr_try=$((rr_try + 1))
	done
	HEALTH_REACHABLE=no
}

# probe_target TARGET: one probe bound to $HEALTH_DEVICE
probe_target() {
	case $1 in
	http://* | https://*)
		pt_code=$("$CURL" -s -o /dev/null -w '%{http_code}' --interface "$HEALTH_DEVICE" \
			--max-time "$PING_WAIT" "$1" 2>/dev/null)
		case $pt_code in [0-9][0-9][0-9]) HEALTH_HTTP_STATUS=$pt_code ;; esac
		case $pt_code in 2[0-9][0-9] | 3[0-9][0-9]) return 0 ;; esac
		return 1
		;;
	esac
	"$PING" -c 1 -W "$PING_WAIT" -I "$HEALTH_DEVICE" "$1" >/dev/null 2>&1
}

# read_uptime: whole seconds since the router booted (/proc/uptime)
read_uptime() {
	HEALTH_UPTIME=
	ru_value=$(cut -d . -f 1 "$PROC_UPTIME" 2>/dev/null | cut -d ' ' -f 1)
	case $ru_value in '' | *[!0-9]*) return 0 ;; esac
	HEALTH_UPTIME=$ru_value
}

# read_power_source COMMAND: the operator's hook (OpenWrt reports no power
# source in general) prints one word, e.g. mains or battery; "unknown"
# when it fails or prints anything else.
read_power_source() {
	HEALTH_POWER=
	[ -n "$1" ] || return 0
	rp_word=$(run_bounded "$AT_TIMEOUT" "$1" 2>/dev/null | head -n 1 | tr -d '\r')
	case $rp_word in
	'' | *[!a-z0-9_-]*) HEALTH_POWER=unknown ;;
	*) HEALTH_POWER=$(printf '%s' "$rp_word" | cut -c 1-32) ;;
	esac
}

# --- remediation -------------------------------------------------------------

# remediate_apn PORT TYPE APN: writes PDP context 1 back.
remediate_apn() {
	if health_at "$1" "AT+CGDCONT=1,\"$2\",\"$3\""; then
		HEALTH_ACTIONS="$HEALTH_ACTIONS apn:ok"
	else
		HEALTH_ACTIONS="$HEALTH_ACTIONS apn:failed"
	fi
}

remediate_ifup() {
	if run_bounded 60 "$IFUP" "$1" >/dev/null 2>&1; then
		HEALTH_ACTIONS="$HEALTH_ACTIONS ifup:ok"
	else
		HEALTH_ACTIONS="$HEALTH_ACTIONS ifup:failed"
	fi
}

remediate_service() {
	if run_bounded 60 "$1" restart >/dev/null 2>&1; then
		HEALTH_ACTIONS="$HEALTH_ACTIONS service:ok"
	else
		HEALTH_ACTIONS="$HEALTH_ACTIONS service:failed"
	fi
}

# --- the reading ---------------------------------------------------------------

read_health() {
	HEALTH_AT=
	HEALTH_SIM=
	HEALTH_REGISTRATION=
	HEALTH_RAT=
	HEALTH_RSRP=
	HEALTH_SINR=
	HEALTH_APN=
	HEALTH_PDP_TYPE=
	find_modem_usb
	[ "$MODEM_MODE" = normal ] || return 0
	rh_port=$(tty_of_interface "$MODEM_USB" "$AT_INTERFACE")
	if [ -z "$rh_port" ] || ! health_at "$rh_port" AT; then
		HEALTH_AT=silent
		return 0
	fi
	HEALTH_AT=ok
	HEALTH_PORT=$rh_port
	read_sim "$rh_port"
	read_registration "$rh_port"
	read_signal "$rh_port"
	read_pdp_context "$rh_port"
}

health_json() {
	printf '{"usb_path":%s,"mode":%s,"usb_id":%s,"at":%s,"sim":%s,' \
		"$(json_string "$MODEM_USB")" "$(json_string "$MODEM_MODE")" \
		"$(json_string "$MODEM_USB_ID")" "$(json_string "$HEALTH_AT")" \
		"$(json_string "$HEALTH_SIM")"
	printf '"registration":%s,"rat":%s,"rsrp":%s,"sinr":%s,"apn":%s,"pdp_type":%s,' \
		"$(json_string "$HEALTH_REGISTRATION")" "$(json_string "$HEALTH_RAT")" \
		"$(json_string "$HEALTH_RSRP")" "$(json_string "$HEALTH_SINR")" \
		"$(json_string "$HEALTH_APN")" "$(json_string "$HEALTH_PDP_TYPE")"
	printf '"interface":%s,"data":%s,"address":%s,"device":%s,"reachable":%s,' \
		"$(json_string "$HEALTH_INTERFACE")" "$(json_string "$HEALTH_DATA")" \
		"$(json_string "$HEALTH_ADDRESS")" "$(json_string "$HEALTH_DEVICE")" \
		"$(json_string "$HEALTH_REACHABLE")"
	printf '"http_status":%s,"uptime":%s,"power":%s,' \
		"$(json_string "$HEALTH_HTTP_STATUS")" "$(json_string "$HEALTH_UPTIME")" \
		"$(json_string "$HEALTH_POWER")"
	printf '"actions":%s}\n' "$(json_string "${HEALTH_ACTIONS# }")"
}
