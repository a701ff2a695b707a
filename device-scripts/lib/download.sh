# shellcheck shell=sh
# Router-pull transfers: the router downloads the image itself from
#   <url>/api/v1/modem-upgrader/upgrade-operation/<operation-id>/image/?key=<key>
# (the report endpoint's base URL and device key), continuing a partial file
# with a Range request (curl -C -, else BusyBox wget -c), and verifies its
# sha256 before anything touches the modem. The server may redirect to a
# short-lived presigned object-storage URL; both tools follow it.
# Needs: OPDIR, FIRMWARE, SHA256, IMAGE_SIZE, DOWNLOAD_TIMEOUT, REPORT_URL,
# DEVICE_KEY, REPORT_INTERVAL, HTTP_TIMEOUT.

DOWNLOAD_RETRY_PAUSE=${DOWNLOAD_RETRY_PAUSE:-5}

file_size() { # file: bytes, 0 when absent
	fs_size=$(wc -c <"$1" 2>/dev/null)
	case $fs_size in '' | *[!0-9\ ]*) fs_size=0 ;; esac
	printf '%s' $((fs_size + 0))
}

download_endpoint() {
	[ -n "$REPORT_URL" ] && [ -n "$DEVICE_KEY" ] || return 1
	printf '%s' "${REPORT_URL%/}/api/v1/modem-upgrader/upgrade-operation/$OPERATION_ID/image/?key=$DEVICE_KEY"
}

# fetch_in_background URL FILE: one resumable request, appending to FILE;
# sets FETCH_PID.
fetch_in_background() {
	: >"$OPDIR/download.err"
	if have_command "$CURL"; then
		"$CURL" -s -S -f -L -C - --connect-timeout "$HTTP_TIMEOUT" -o "$2" "$1" \
			>/dev/null 2>>"$OPDIR/download.err" &
	else
		"$WGET" -q -c -O "$2" "$1" >/dev/null 2>>"$OPDIR/download.err" &
	fi
	FETCH_PID=$!
}

# download_firmware: the pull stage. A cut download is continued until
# DOWNLOAD_TIMEOUT; past it, or with a wrong sha256, the operation ends
# with the irrecoverable code (modem untouched): the router reports
# "failed" itself, so the server's follow-up and the report must agree on
# the outcome, and a retry within the same deadline would change nothing.
download_firmware() {
	[ -n "$PULL" ] || return 0
	dl_url=$(download_endpoint) ||
		finish "$EXIT_IRRECOVERABLE" "no server URL or device key to download the image from (--report-url/--device-key or UCI openwisp.http): modem untouched"
	dl_deadline=$(($(date +%s) + DOWNLOAD_TIMEOUT))
	dl_size=$(file_size "$FIRMWARE")
	if [ "$dl_size" -gt "$IMAGE_SIZE" ]; then
		rm -f "$FIRMWARE"
		dl_size=0
	fi
	if [ "$dl_size" -gt 0 ]; then
		progress 0 "the router holds $dl_size of $IMAGE_SIZE bytes of the image: resuming the download"
	else
		progress 0 "downloading the image ($IMAGE_SIZE bytes) from the server"
	fi
	while [ "$dl_size" -lt "$IMAGE_SIZE" ]; do
		fetch_in_background "$dl_url" "$FIRMWARE"
		download_watch
		dl_before=$dl_size
		dl_size=$(file_size "$FIRMWARE")
		[ "$dl_size" -lt "$IMAGE_SIZE" ] || break
		# a refusal (wrong key, another operation's image, an operation no
		# longer in progress) is the same on every try
		download_refused &&
			finish "$EXIT_IRRECOVERABLE" "the server refused the download ($(download_error)): modem untouched"
		[ "$(date +%s)" -lt "$dl_deadline" ] ||
			finish "$EXIT_IRRECOVERABLE" "the image was not downloaded within ${DOWNLOAD_TIMEOUT}s ($dl_size of $IMAGE_SIZE bytes received): modem untouched"
		progress "$((dl_size * 10 / IMAGE_SIZE))" "download interrupted at $dl_size of $IMAGE_SIZE bytes ($(download_error)): resuming in ${DOWNLOAD_RETRY_PAUSE}s"
		[ "$dl_size" -gt "$dl_before" ] || pause "$DOWNLOAD_RETRY_PAUSE"
	done
	if [ "$dl_size" -ne "$IMAGE_SIZE" ]; then
		rm -f "$FIRMWARE"
		finish "$EXIT_IRRECOVERABLE" "the download ended at $dl_size bytes, $IMAGE_SIZE expected: file removed, modem untouched"
	fi
	progress 10 "image downloaded ($IMAGE_SIZE bytes), verifying sha256"
	dl_sum=$(sha256sum "$FIRMWARE" | cut -d ' ' -f 1)
	if [ "$dl_sum" != "$SHA256" ]; then
		rm -f "$FIRMWARE"
		finish "$EXIT_IRRECOVERABLE" "sha256 mismatch of the downloaded image: expected $SHA256, got $dl_sum (corrupted download, removed): modem untouched"
	fi
	# verify_firmware_file need not hash the same bytes again
	# shellcheck disable=SC2034 # read by modem-upgrade.sh
	DOWNLOAD_VERIFIED=1
	progress 10 "sha256 verified (downloaded image)"
}

# download_watch: waits for FETCH_PID, journaling the bytes received every
# REPORT_INTERVAL; kills it at the deadline.
download_watch() {
	# whole seconds for the shell's arithmetic (--report-interval may be 0.5)
	dw_every=${REPORT_INTERVAL%%.*}
	case $dw_every in '' | 0) dw_every=1 ;; esac
	dw_next=$(($(date +%s) + dw_every))
	while kill -0 "$FETCH_PID" 2>/dev/null; do
		dw_now=$(date +%s)
		if [ "$dw_now" -ge "$dl_deadline" ]; then
			kill -TERM "$FETCH_PID" 2>/dev/null
			break
		fi
		if [ "$dw_now" -ge "$dw_next" ]; then
			dw_size=$(file_size "$FIRMWARE")
			progress "$((dw_size * 10 / IMAGE_SIZE))" "downloaded $dw_size of $IMAGE_SIZE bytes"
			dw_next=$((dw_now + dw_every))
		fi
		pause 0.2
	done
	wait "$FETCH_PID" 2>/dev/null
	FETCH_PID=
}

# curl -f: "(22) The requested URL returned error: 403";
# BusyBox wget: "server returned error: HTTP/1.1 403 Forbidden"
download_refused() {
	tail -n 1 "$OPDIR/download.err" 2>/dev/null | grep -Eq 'error:( HTTP/1\.[01])? 4[0-9][0-9]'
}

download_error() {
	de_text=$(tail -n 1 "$OPDIR/download.err" 2>/dev/null | tr -cd 'A-Za-z0-9 .,:/()-' | cut -c 1-120)
	printf '%s' "${de_text:-no answer}"
}
