# shellcheck shell=sh
# Progress reports: journal records the server has not acknowledged yet are
# POSTed to
#   <url>/api/v1/modem-upgrader/upgrade-operation/<operation-id>/?key=<key>
# with body {"seq", "progress_percent", "status", "log"}. The acknowledged
# seq lives in DIR/<operation-id>/acked, so a report lost to a link outage is
# sent again, together with what followed, once the link is back.
# Needs: OPDIR, JOURNAL, REPORT_ENDPOINT, HTTP_TIMEOUT, REPORT_INTERVAL.

REPORT_BATCH=200 # records per request, keeps bodies small after an outage

report_acked_seq() {
	ra=$(cat "$OPDIR/acked" 2>/dev/null)
	case $ra in '' | *[!0-9]*) ra=0 ;; esac
	printf '%s' "$ra"
}

report_stopped() {
	[ -f "$OPDIR/report-stopped" ]
}

# report_body ACKED: writes the request body for the records after ACKED to
# $OPDIR/report.json; fails when there is nothing new.
report_body() {
	awk -F '\t' -v acked="$1" -v batch="$REPORT_BATCH" '
		$1 > acked && sent < batch {
			sent++; seq = $1; status = $3; percent = $4
			msg = $5
			gsub(/\\/, "\\\\", msg); gsub(/"/, "\\\"", msg)
			log_text = log_text (sent > 1 ? "\\n" : "") msg
		}
		END {
			if (!sent) exit 1
			printf "{\"seq\": %d, \"progress_percent\": %d, \"status\": \"%s\", \"log\": \"%s\"}\n", seq, percent, status, log_text
		}' "$JOURNAL" | tr -d '\000-\010\013-\037' >"$OPDIR/report.json.tmp"
	# the pipeline's status is tr's: an empty body means nothing was new
	[ -s "$OPDIR/report.json.tmp" ] && mv "$OPDIR/report.json.tmp" "$OPDIR/report.json"
}

# http_post_json URL FILE: prints the HTTP status (000 when unreachable).
http_post_json() {
	if have_command "$CURL"; then
		hp_code=$("$CURL" -s -o /dev/null -w '%{http_code}' -m "$HTTP_TIMEOUT" \
			-H 'Content-Type: application/json' --data-binary "@$2" "$1" 2>/dev/null)
		printf '%s' "${hp_code:-000}"
		return 0
	fi
	# uclient-fetch / BusyBox wget: no status code on stdout, only the exit
	# status and an error text naming the code.
	# (no -T: BusyBox builds may lack it; run_bounded sets the limit)
	if hp_err=$(run_bounded "$HTTP_TIMEOUT" "$WGET" -q -O /dev/null \
		--header 'Content-Type: application/json' --post-data "$(cat "$2")" "$1" 2>&1); then
		printf 200
	else
		case $hp_err in
		*409*) printf 409 ;;
		*) printf 000 ;;
		esac
	fi
}

# report_pending: sends one batch. 0: nothing left to send; 1: failed, retry
# later; 2: more to send; 3: the server declared the operation finished (409).
report_pending() {
	[ -n "$REPORT_ENDPOINT" ] || return 0
	report_stopped && return 3
	rp_acked=$(report_acked_seq)
	report_body "$rp_acked" || return 0
	rp_seq=$(sed -n 's/^{"seq": \([0-9]*\),.*/\1/p' "$OPDIR/report.json")
	rp_code=$(http_post_json "$REPORT_ENDPOINT" "$OPDIR/report.json")
	case $rp_code in
	2??)
		printf '%s\n' "$rp_seq" >"$OPDIR/acked.tmp" && mv "$OPDIR/acked.tmp" "$OPDIR/acked"
		report_body "$rp_seq" && return 2
		return 0
		;;
	409)
		: >"$OPDIR/report-stopped"
		return 3
		;;
	esac
	return 1
}

# Background loop while the upgrade runs; it ends with the script ($1),
# however the script ends.
reporter_loop() {
	while kill -0 "$1" 2>/dev/null; do
		report_pending
		case $? in
		3) return 0 ;;
		2) continue ;;
		esac
		pause "$REPORT_INTERVAL"
	done
}

reporter_start() {
	[ -n "$REPORT_ENDPOINT" ] || return 0
	reporter_loop "$$" >/dev/null 2>&1 &
	REPORTER_PID=$!
}

reporter_stop() {
	if [ -n "$REPORTER_PID" ]; then
		kill -TERM "$REPORTER_PID" 2>/dev/null
		wait "$REPORTER_PID" 2>/dev/null
		REPORTER_PID=
	fi
}

# After the terminal record: keep trying for at most SECONDS, since the
# uplink may be the modem that was just flashed and still coming back.
report_final() { # seconds
	[ -n "$REPORT_ENDPOINT" ] || return 0
	rf_deadline=$(($(date +%s) + $1))
	while :; do
		report_pending
		case $? in
		0 | 3) return 0 ;;
		2) continue ;;
		esac
		[ "$(date +%s)" -lt "$rf_deadline" ] || return 1
		pause "$REPORT_INTERVAL"
	done
}
