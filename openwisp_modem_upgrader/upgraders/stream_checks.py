"""What the first bytes of an uploaded image tell: archive, text, or the
software version in a firmware stream's header.

Only the start of a file is ever looked at (``BaseModemUpgrader.check_image``
gets the first ``IMAGE_HEAD_SIZE`` bytes): images may be gigabytes. The
router's wrapper (``device-scripts/modem-upgrade.sh``, ``check_stream``)
applies the same header rule before it stops anything.
"""

import re

# what check_image() is given: the file's start, never more
IMAGE_HEAD_SIZE = 64 * 1024
# where a stream's header, and the software version in it, is looked for
STREAM_HEADER_SIZE = 4096

# magic numbers of archive and compression formats: what a vendor ships a
# stream in, never the stream itself
ARCHIVE_MAGIC = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
TAR_MAGIC_OFFSET = 257  # "ustar" in a POSIX tar header

# A Telit package version as #SWPKGV's first line prints it
# (``45.00.010-B022-P0R.001600``): its first two digits name the chipset
# family. It counts only as a word of its own: not preceded by a letter,
# digit, dot or dash (the wrapper cuts the header into such words).
PACKAGE_VERSION = re.compile(
    rb"(?<![0-9A-Za-z.-])([0-9]{2})\.[0-9]{2}\.[0-9]{3}-B[0-9]{3}[0-9A-Za-z.-]*"
)


def archive_kind(head):
    """``"zip"``, ``"gzip"``... when ``head`` starts an archive, else None."""
    for magic, kind in ARCHIVE_MAGIC:
        if head.startswith(magic):
            return kind
    if head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "tar"
    return None


def is_text(head):
    """True when ``head`` (the file's start) is text: no NUL byte and valid
    UTF-8. A firmware stream is binary; the router checks ASCII only."""
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # a multi-byte character cut by the end of the head is still text
        return error.start >= len(head) - 3 and error.reason == "unexpected end of data"
    return True


def header_version(head):
    """The package version in a stream's header (its first
    ``STREAM_HEADER_SIZE`` bytes), or None when the header has none that
    can be read."""
    match = PACKAGE_VERSION.search(head[:STREAM_HEADER_SIZE])
    return match.group(0).decode("ascii") if match else None
