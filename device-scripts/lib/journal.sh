# shellcheck shell=sh
# The operation journal: DIR/<operation-id>/journal, append-only, one record
# per line, TAB separated (control characters in messages become spaces
# or are dropped):
#   <seq> <epoch-seconds> <status> <percent> <message>
# seq starts at 1 and grows by 1; percent never decreases; status is one of
# in-progress, success, failed, aborted. Only the main process writes it.

JOURNAL_SEQ=0
JOURNAL_PERCENT=0

journal_open() { # journal-file
	JOURNAL=$1
	if [ -s "$JOURNAL" ]; then
		# a restarted operation continues the numbering and the percent
		JOURNAL_SEQ=$(tail -n 1 "$JOURNAL" | cut -f 1)
		JOURNAL_PERCENT=$(tail -n 1 "$JOURNAL" | cut -f 4)
	fi
	case $JOURNAL_SEQ in '' | *[!0-9]*) JOURNAL_SEQ=0 ;; esac
	case $JOURNAL_PERCENT in '' | *[!0-9]*) JOURNAL_PERCENT=0 ;; esac
}

# journal STATUS PERCENT MESSAGE
journal() {
	j_percent=$2
	[ "$j_percent" -lt "$JOURNAL_PERCENT" ] && j_percent=$JOURNAL_PERCENT
	[ "$j_percent" -gt 100 ] && j_percent=100
	JOURNAL_PERCENT=$j_percent
	JOURNAL_SEQ=$((JOURNAL_SEQ + 1))
	j_message=$(printf '%s' "$3" | tr '\t\r\n' '   ' | tr -d '\000-\010\013-\037')
	# one line per record in reports: a record is never empty
	[ -n "$j_message" ] || j_message=-
	printf '%s\t%s\t%s\t%s\t%s\n' "$JOURNAL_SEQ" "$(date +%s)" "$1" \
		"$j_percent" "$j_message" >>"$JOURNAL"
}

# progress PERCENT MESSAGE: an in-progress record
progress() {
	journal in-progress "$1" "$2"
}
