"""The router-side wrapper's contract, defined once on the server's side.

``device-scripts/modem-upgrade.sh`` exits with these codes and appends one
journal record per line; the upgraders, the engine and the device-script
tests (``tests/device/``) read them from here, and a test checks that the
shell script declares the same values (docs/user/device-contract.rst).
"""

from dataclasses import dataclass

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
