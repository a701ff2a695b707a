#!/bin/sh
# staged-image.sh: checks or removes a firmware image staged on the router
# ahead of its maintenance window (the "stage_ahead" upgrade option).
# POSIX sh for BusyBox ash. Contract: docs/user/device-contract.rst,
# "Staged images".
#
#   staged-image.sh verify --firmware PATH --sha256 HEX
#       exits 0 when PATH holds the image of sha256 HEX; 3 when it does not
#       (PATH is then removed: a corrupt copy is never flashed nor continued)
#   staged-image.sh remove --workdir DIR --firmware PATH
#       removes PATH (0, also when it was already gone), unless a flashing
#       wrapper runs in DIR: 4 and nothing removed (it may be flashing it)
# Exits 64 on bad arguments.

EXIT_SUCCESS=0
EXIT_MISMATCH=3
EXIT_BUSY=4
EXIT_USAGE=64
SHA256SUM=${SHA256SUM:-sha256sum}

main() {
	ACTION=$1
	[ "$#" -gt 0 ] && shift
	parse_arguments "$@"
	case $ACTION in
	verify) verify_image ;;
	remove) remove_image ;;
	*) usage "the first argument is verify or remove" ;;
	esac
}

usage() {
	printf 'staged-image.sh: %s\n' "$1" >&2
	exit "$EXIT_USAGE"
}

# check_path NAME VALUE SUFFIX: an absolute path of safe characters, no
# "..", ending with SUFFIX (empty: any)
check_path() {
	[ -n "$2" ] || usage "$1 needs a value"
	case $2 in
	/*) ;;
	*) usage "$1 must be an absolute path" ;;
	esac
	case $2 in
	*[!A-Za-z0-9._/-]* | *..*) usage "$1 has characters outside [A-Za-z0-9._/-] or .." ;;
	esac
	case $2 in
	*"$3") ;;
	*) usage "$1 must end with $3" ;;
	esac
	[ "${#2}" -le 512 ] || usage "$1 is too long"
}

parse_arguments() {
	FIRMWARE='' SHA256='' WORKDIR=''
	while [ "$#" -gt 0 ]; do
		[ "$#" -ge 2 ] || usage "$1 needs a value"
		case $1 in
		--firmware) FIRMWARE=$2 ;;
		--sha256) SHA256=$2 ;;
		--workdir) WORKDIR=$2 ;;
		*) usage "unknown argument" ;;
		esac
		shift 2
	done
	check_path --firmware "$FIRMWARE" .bin
}

verify_image() {
	printf '%s\n' "$SHA256" | grep -Eqx '[0-9a-f]{64}' ||
		usage "--sha256 is not 64 lowercase hex digits"
	vi_actual=''
	[ -f "$FIRMWARE" ] && vi_actual=$("$SHA256SUM" <"$FIRMWARE" | cut -d ' ' -f 1)
	if [ "$vi_actual" = "$SHA256" ]; then
		echo "staged image verified"
		exit "$EXIT_SUCCESS"
	fi
	rm -f "$FIRMWARE"
	echo "staged image does not match its checksum: removed"
	exit "$EXIT_MISMATCH"
}

# a wrapper that has not recorded its exit code and whose pid lives
wrapper_running() {
	for wr_pid_file in "$WORKDIR"/*/lock/pid; do
		[ -f "$wr_pid_file" ] || continue
		[ -f "${wr_pid_file%/lock/pid}/exit_code" ] && continue
		wr_pid=$(cat "$wr_pid_file" 2>/dev/null)
		[ -n "$wr_pid" ] && kill -0 "$wr_pid" 2>/dev/null && return 0
	done
	return 1
}

remove_image() {
	check_path --workdir "$WORKDIR" ''
	case $FIRMWARE in
	"$WORKDIR"/*) ;;
	*) usage "--firmware must be inside --workdir" ;;
	esac
	if wrapper_running; then
		echo "a flashing wrapper runs: the image is kept"
		exit "$EXIT_BUSY"
	fi
	rm -f "$FIRMWARE" || exit "$EXIT_BUSY"
	echo "staged image removed"
	exit "$EXIT_SUCCESS"
}

main "$@"
