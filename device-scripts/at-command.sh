#!/bin/sh
# at-command.sh PORT COMMAND: sends one AT command, prints the answer up to
# and including the final OK/ERROR line. The default $AT_HELPER of the other
# scripts; replace it (AT_HELPER=...) with anything that has this interface.
# Uses sms_tool when installed, otherwise talks to the tty directly (BusyBox
# has no stty on OpenWrt, so this relies on the port's default line mode).

port=$1
command=$2
case $port in
/dev/tty*) ;;
*) echo "usage: at-command.sh /dev/ttyX AT-COMMAND" >&2; exit 64 ;;
esac

if command -v sms_tool >/dev/null 2>&1; then
	exec sms_tool -d "$port" at "$command"
fi

exec 3<>"$port" || exit 1
printf '%s\r\n' "$command" >&3
# A silent modem ends the loop through read -t (BusyBox ash has it); the
# caller bounds the total time anyway.
# shellcheck disable=SC3045
while IFS= read -r -t 3 line <&3; do
	line=$(printf '%s' "$line" | tr -d '\r')
	[ -n "$line" ] && printf '%s\n' "$line"
	case $line in
	OK | ERROR | "+CME ERROR"*) exit 0 ;;
	esac
done
exit 1
