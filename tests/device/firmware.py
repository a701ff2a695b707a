"""Generated FN990A-style firmware streams for the emulator.

Layout of a stream (the real format is not public; this one carries what the
fake ``uxfp`` needs, the way the real header carries the software version):

* a 256-byte header: ``MAGIC`` then ``key=value`` lines (``revision``,
  ``firmware``, ``model``, ``length``), padded with NUL bytes;
* ``length`` bytes of deterministic pseudo-random payload.
"""

import hashlib
import os

MAGIC = b"EMU-TELIT-STREAM\n"
HEADER_SIZE = 256
CHUNK_SIZE = 1024 * 1024


def revision_for(version, chipset="45."):
    """Package version (``#SWPKGV`` line 1) matching a firmware version.

    ``M0R.010000-B022`` gives ``45.00.010-B022-P0R.001600``.
    """
    build = version.rsplit("-", 1)[-1] if "-" in version else "B000"
    return f"{chipset}00.010-{build}-P0R.001600"


def build_header(version, revision, model, length):
    fields = (
        f"revision={revision}\nfirmware={version}\nmodel={model}\nlength={length}\n"
    ).encode()
    header = MAGIC + fields
    if len(header) > HEADER_SIZE:
        raise ValueError("header fields too long")
    return header.ljust(HEADER_SIZE, b"\0")


def read_header(path):
    """Returns the header fields of a stream as a dict (empty if no magic)."""
    with open(path, "rb") as stream:
        header = stream.read(HEADER_SIZE)
    if not header.startswith(MAGIC):
        return {}
    text = header[len(MAGIC) :].rstrip(b"\0").decode(errors="replace")
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    fields["length"] = int(fields.get("length", "-1"))
    return fields


def _payload_chunks(seed, size):
    block = hashlib.sha256(seed).digest() * (CHUNK_SIZE // 32)
    remaining = size
    counter = 0
    while remaining > 0:
        counter += 1
        chunk = counter.to_bytes(8, "big") + block[8:]
        yield chunk[: min(remaining, CHUNK_SIZE)]
        remaining -= CHUNK_SIZE


def write_firmware_stream(
    path,
    version,
    chipset="45.",
    model="FN990A28",
    size=64 * 1024,
    corrupt=False,
    revision=None,
):
    """Writes a stream file chunk by chunk and returns its sha256 (hex).

    ``version`` is the modem firmware version (``#SWPKGV`` line 2, e.g.
    ``M0R.010000-B022``); ``revision`` defaults to the package version derived
    from it and ``chipset``. ``size`` is the payload length. ``corrupt``
    flips a byte after the checksum has been computed, as a damaged upload
    would: the returned sha256 is then the one of the intended file.
    """
    revision = revision or revision_for(version, chipset)
    digest = hashlib.sha256()
    header = build_header(version, revision, model, size)
    with open(path, "wb") as stream:
        stream.write(header)
        digest.update(header)
        for chunk in _payload_chunks(f"{revision}/{model}".encode(), size):
            stream.write(chunk)
            digest.update(chunk)
    if corrupt:
        with open(path, "r+b") as stream:
            stream.seek(HEADER_SIZE + size // 2)
            byte = stream.read(1)
            stream.seek(-1, os.SEEK_CUR)
            stream.write(bytes([byte[0] ^ 0xFF]))
    return digest.hexdigest()
