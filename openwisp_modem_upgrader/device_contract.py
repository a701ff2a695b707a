"""The router contract, defined once on the server's side.

What the device scripts (``device-scripts/``) and the server agree on: the
wrapper's exit codes and journal format, the files it keeps on the router
and the markers of the server's journal read, the JSON ``modem-info.sh``
prints, and the fields of the router's progress reports. The upgraders, the
engine, detection and the device-report view read them from here; the
device-script tests (``tests/device/``) check the shell scripts against
them (docs/user/device-contract.rst).
"""

import json
import posixpath
import re
from dataclasses import dataclass

from .shell_values import usb_path_validator

EXIT_SUCCESS = 0
# nothing was written to the modem (including a signal before the flash):
# the server may retry
EXIT_RECOVERABLE = 1
# bad image, wrong model, tool error, wrong version after the flash
EXIT_IRRECOVERABLE = 2
# the flash was interrupted: the modem may be left in flashing mode or lost
EXIT_ABORTED = 3
# another instance holds this operation's lock
EXIT_BUSY = 4
# bad or hostile arguments: refused before anything started
EXIT_USAGE = 64

EXIT_CODES = {
    "EXIT_SUCCESS": EXIT_SUCCESS,
    "EXIT_RECOVERABLE": EXIT_RECOVERABLE,
    "EXIT_IRRECOVERABLE": EXIT_IRRECOVERABLE,
    "EXIT_ABORTED": EXIT_ABORTED,
    "EXIT_BUSY": EXIT_BUSY,
    "EXIT_USAGE": EXIT_USAGE,
}

# journal record states (the operation statuses the router may report)
JOURNAL_STATES = ("in-progress", "success", "failed", "aborted")
JOURNAL_FIELDS = ("seq", "epoch", "state", "percent", "message")
JOURNAL_SEPARATOR = "\t"


@dataclass(frozen=True)
class JournalRecord:
    seq: int
    epoch: int
    state: str
    percent: int
    message: str


def parse_journal_line(line):
    """One record of the journal file, or ``None`` when the line is not one
    (a torn last line, garbage): readers skip it rather than guess."""
    fields = line.rstrip("\n").split(JOURNAL_SEPARATOR, len(JOURNAL_FIELDS) - 1)
    if len(fields) != len(JOURNAL_FIELDS):
        return None
    seq, epoch, state, percent, message = fields
    if not (seq.isdigit() and epoch.isdigit() and percent.isdigit()):
        return None
    if state not in JOURNAL_STATES:
        return None
    return JournalRecord(int(seq), int(epoch), state, min(int(percent), 100), message)


def contiguous_tail(records):
    """The records after the last gap in ``seq``: only these can be applied
    (a gap means records were lost between two reads)."""
    tail = []
    for record in records:
        if tail and record.seq != tail[-1].seq + 1:
            tail = []
        tail.append(record)
    return tail


# -- files on the router -----------------------------------------------------

# everything the server puts on a router lives under <remote_dir>/WORK_DIR
WORK_DIR = "openwisp-modem-upgrader"
SCRIPTS_DIR = "scripts"
# the wrapper's files in <work dir>/<operation id>/
JOURNAL_FILE = "journal"
EXIT_CODE_FILE = "exit_code"
# an image staged ahead of its window (``staged_image_command``)
STAGED_IMAGE_SCRIPT = "staged-image.sh"
# ``staged-image.sh verify``: the copy does not match its sha256 (removed);
# ``remove``: a flashing wrapper runs (EXIT_BUSY), nothing removed
STAGED_EXIT_MISMATCH = 3
# printed by the server's journal read (``journal_read_command``)
NO_JOURNAL_MARKER = "--no-journal--"
EXIT_CODE_MARKER = "--exit-code--"


def router_paths(remote_dir, operation_id, image_name):
    """Where the scripts, the image and an operation's journal live."""
    base = posixpath.join(remote_dir, WORK_DIR)
    return {
        "base": base,
        "scripts": posixpath.join(base, SCRIPTS_DIR),
        "firmware": posixpath.join(base, f"{image_name}.bin"),
        "journal_dir": posixpath.join(base, str(operation_id)),
    }


def staged_image_command(paths, action, sha256, quote):
    """The shell command checking (``verify``) or removing (``remove``) an
    image staged on the router, by ``staged-image.sh``. Without the scripts
    (another upgrade's preparation replaced them, which also removed any
    other image) a removal is a plain ``rm -f``."""
    script = posixpath.join(paths["scripts"], STAGED_IMAGE_SCRIPT)
    firmware = quote(paths["firmware"])
    if action == "verify":
        arguments = f"verify --firmware {firmware} --sha256 {quote(sha256)}"
        return f"sh {quote(script)} {arguments}"
    arguments = f"remove --workdir {quote(paths['base'])} --firmware {firmware}"
    return (
        f"if [ -f {quote(script)} ]; then sh {quote(script)} {arguments};"
        f" else rm -f {firmware}; fi"
    )


def journal_read_command(journal_dir, seen, quote):
    """One shell command printing the journal records after ``seen``, then
    ``EXIT_CODE_MARKER`` and the wrapper's exit code if it exited; only
    ``NO_JOURNAL_MARKER`` when the wrapper never started."""
    journal = posixpath.join(journal_dir, JOURNAL_FILE)
    exit_file = posixpath.join(journal_dir, EXIT_CODE_FILE)
    return (
        f"[ -d {quote(journal_dir)} ] || {{ echo '{NO_JOURNAL_MARKER}'; exit 0; }};"
        f" awk -F '\\t' -v seen={int(seen)} '$1 > seen' {quote(journal)}"
        f" 2>/dev/null; echo '{EXIT_CODE_MARKER}'; cat {quote(exit_file)}"
        " 2>/dev/null; true"
    )


def parse_journal_read(output):
    """``(started, records, exit code or None)`` of a journal read's output:
    only the records after the last gap (``contiguous_tail``)."""
    if NO_JOURNAL_MARKER in output:
        return False, [], None
    records, _, exit_part = output.partition(EXIT_CODE_MARKER)
    parsed = [parse_journal_line(line) for line in records.splitlines()]
    exit_part = exit_part.strip()
    exit_code = int(exit_part) if exit_part.isdigit() else None
    return True, contiguous_tail([record for record in parsed if record]), exit_code


# -- the router's progress reports (HTTP) -------------------------------------

# the body lib/report.sh posts: {"seq", "progress_percent", "status", "log"}
REPORT_FIELDS = frozenset(("progress_percent", "status", "log", "seq"))
# a report's status: the journal state of its last record
REPORT_STATES = JOURNAL_STATES


# -- modem-info.sh's JSON ------------------------------------------------------

MODEM_KEYS = {
    "usb_path",
    "manufacturer",
    "model",
    "revision",
    "firmware",
    "imei",
    "ports",
    "mode",
    "source",
    "usb_id",
}
# longest value accepted per key (the model fields' lengths)
MAX_LENGTHS = {
    "manufacturer": 64,
    "model": 64,
    "revision": 128,
    "firmware": 64,
    "imei": 32,
    "source": 16,
    "usb_id": 9,
    "mode": 16,
}
USB_ID = re.compile(r"[0-9a-f]{4}:[0-9a-f]{4}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class GarbageOutput(ValueError):
    """modem-info.sh answered something that is not its documented JSON."""


def parse_modem_list(output):
    """The list of modem dicts modem-info.sh printed; ``GarbageOutput`` else."""
    try:
        modems = json.loads(output)
    except ValueError as error:
        raise GarbageOutput(f"not JSON ({error}): {excerpt(output)}")
    if not isinstance(modems, list):
        raise GarbageOutput(f"not a JSON list: {excerpt(output)}")
    seen = set()
    for modem in modems:
        _check_modem(modem)
        if modem["usb_path"] in seen:
            raise GarbageOutput(f"USB path {modem['usb_path']} listed twice")
        seen.add(modem["usb_path"])
    return modems


def _check_modem(modem):
    if not isinstance(modem, dict) or not (
        MODEM_KEYS <= set(modem) <= MODEM_KEYS | OPTIONAL_MODEM_KEYS
    ):
        raise GarbageOutput(f"unexpected modem entry: {excerpt(json.dumps(modem))}")
    if "carrier" in modem:
        check_carrier(modem["carrier"])
    ports = modem["ports"]
    if not isinstance(ports, dict) or set(ports) != {"at", "diag"}:
        raise GarbageOutput("unexpected ports entry")
    for key in MODEM_KEYS - {"ports"}:
        value = modem[key]
        if not isinstance(value, str) or CONTROL.search(value):
            raise GarbageOutput(f"{key} is not a plain string")
        if len(value) > MAX_LENGTHS.get(key, 32):
            raise GarbageOutput(f"{key} is too long")
    try:
        usb_path_validator(modem["usb_path"])
    except Exception:
        raise GarbageOutput(f"not a USB path: {modem['usb_path'][:32]!r}")
    if modem["mode"] not in ("normal", "flashing"):
        raise GarbageOutput(f"unknown mode {modem['mode'][:16]!r}")
    if modem["usb_id"] and not USB_ID.fullmatch(modem["usb_id"]):
        raise GarbageOutput(f"not a USB id: {modem['usb_id']!r}")


# -- modem-info.sh's SIM and carrier readings ("carrier") -----------------------

# modem-info.sh prints "carrier" since carrier inventory; an older script
# on a router may leave it out
OPTIONAL_MODEM_KEYS = {"carrier"}
CARRIER_KEYS = {"sim", "iccid", "imsi", "operator", "images", "active", "selection"}
CARRIER_IMAGE_KEYS = {"index", "name", "version"}
SIM_STATES = ("", "ready", "locked", "absent", "unknown")
CARRIER_SELECTIONS = ("", "auto", "manual")
ICCID = re.compile(r"[0-9]{18,21}[0-9A-Fa-f]?")
IMSI = re.compile(r"[0-9]{6,15}")
IMAGE_INDEX = re.compile(r"[0-9]{1,2}")
MAX_CARRIER_IMAGES = 8


def _plain(value, key, limit):
    if not isinstance(value, str) or CONTROL.search(value) or len(value) > limit:
        raise GarbageOutput(f"carrier {key} is not a plain string of {limit} at most")


def check_carrier(carrier):
    """The "carrier" object of a modem entry, strictly; ``GarbageOutput``."""
    if not isinstance(carrier, dict) or set(carrier) != CARRIER_KEYS:
        raise GarbageOutput(f"unexpected carrier entry: {excerpt(json.dumps(carrier))}")
    for key, limit in (("sim", 16), ("iccid", 22), ("imsi", 15), ("operator", 64)):
        _plain(carrier[key], key, limit)
    for key, limit in (("active", 2), ("selection", 16)):
        _plain(carrier[key], key, limit)
    if carrier["sim"] not in SIM_STATES:
        raise GarbageOutput(f"unknown SIM state {carrier['sim']!r}")
    if carrier["selection"] not in CARRIER_SELECTIONS:
        raise GarbageOutput(f"unknown selection mode {carrier['selection']!r}")
    for key, pattern in (("iccid", ICCID), ("imsi", IMSI), ("active", IMAGE_INDEX)):
        if carrier[key] and not pattern.fullmatch(carrier[key]):
            raise GarbageOutput(f"not a SIM {key}: {carrier[key]!r}")
    images = carrier["images"]
    if not isinstance(images, list) or len(images) > MAX_CARRIER_IMAGES:
        raise GarbageOutput("carrier images are not a short list")
    for image in images:
        if not isinstance(image, dict) or set(image) != CARRIER_IMAGE_KEYS:
            raise GarbageOutput("unexpected carrier image entry")
        _plain(image["index"], "image index", 2)
        _plain(image["name"], "image name", 32)
        _plain(image["version"], "image version", 64)
        if not IMAGE_INDEX.fullmatch(image["index"]) or not image["name"]:
            raise GarbageOutput("carrier image without index or name")


def excerpt(text, limit=120):
    """A short printable excerpt of an answer, for error messages."""
    text = CONTROL.sub(" ", str(text)).strip()
    return text[:limit] + ("..." if len(text) > limit else "")


def detected_version(info):
    """The firmware version a modem-info entry reports."""
    return info.get("firmware") or info.get("revision")


def flashed_modem(modems, usb_path, modem_model):
    """The entry of the modem an operation flashed (``usb_path``; when it
    named none, the modem of ``modem_model``); ``LookupError`` when it is
    not (yet) listed in normal mode."""
    candidates = [
        m
        for m in modems
        if m["mode"] == "normal" and (m["usb_path"] == usb_path if usb_path else True)
    ]
    if not usb_path and len(candidates) > 1:
        # the wrapper flashed the first modem of the vendor
        candidates = [m for m in candidates if m["model"] == modem_model]
    if not candidates:
        raise LookupError(f"modem {usb_path or 'to verify'} not listed yet")
    return candidates[0]


# -- carrier-select.sh: one stored carrier image made active ------------------

CARRIER_SELECT_SCRIPT = "carrier-select.sh"
# exit code -> the results carrier-select.sh prints with it
CARRIER_SELECT_RESULTS = {
    0: ("switched", "already-active"),
    3: ("no-modem", "unsupported", "unknown-image"),  # nothing was sent
    4: ("refused",),  # the modem answered ERROR; its selection mode put back
    5: ("not-back",),  # no answer within --wait after the switch
    6: ("not-switched",),  # it answers, with another image active
}
CARRIER_SELECT_UNTOUCHED = 3
CARRIER_SELECT_KEYS = {"result", "usb_path", "image", "active", "selection", "detail"}


def parse_carrier_select(output, code):
    """carrier-select.sh's one JSON line, strictly, for its exit ``code``;
    ``GarbageOutput`` when it is anything else."""
    lines = [line for line in (output or "").splitlines() if line.strip()]
    try:
        outcome = json.loads(lines[-1]) if len(lines) == 1 else None
    except ValueError:
        outcome = None
    if not isinstance(outcome, dict) or set(outcome) != CARRIER_SELECT_KEYS:
        raise GarbageOutput(f"unexpected carrier-select output: {excerpt(output)}")
    for key in CARRIER_SELECT_KEYS:
        _plain(outcome[key], key, 300 if key == "detail" else 32)
    if outcome["result"] not in CARRIER_SELECT_RESULTS.get(code, ()):
        raise GarbageOutput(f"carrier-select.sh exited with {code}: {excerpt(output)}")
    if outcome["active"] and not IMAGE_INDEX.fullmatch(outcome["active"]):
        raise GarbageOutput(f"not an image index: {outcome['active']!r}")
    return outcome
