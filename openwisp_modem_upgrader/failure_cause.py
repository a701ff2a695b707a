"""Why an upgrade failed, in one line: the stage and the failing tool's own
last error line, read from the operation's log (which holds the router's
journal, docs/user/device-contract.rst), so that a stop reason or a
notification says "flash (uxfp): stream software version 44.00... is not for
this chipset" rather than "failure reported by the router".
"""

import re
from dataclasses import dataclass

# the engine's first line of every attempt (engine.run_operation)
ATTEMPT = re.compile(r"attempt \d+ of \d+")
# the wrapper's line before the tool runs (modem-upgrade.sh flash_modem)
TOOL_STARTS = re.compile(r"running (\S+) .*--file .*")
# uxfp marks its errors "[-] "; other tools' lines are taken as they are
TOOL_ERROR = re.compile(r"\[-\]\s*(.+)")
# a tool's progress line (the device contract): says nothing of a failure
TOOL_PROGRESS = re.compile(r".*\] \d+(\.\d+)?%.*")
# finishing messages that only say who noticed, not why
SAYS_NOTHING = re.compile(
    r"failure reported by the router"
    r"|the flash failed \(exit \d+\)"
    r"|the flash was interrupted: .*\(exit \d+\)"
    r"|router (un)?reachable.*"
)
# lines that open a stage, in the order of an attempt: the stage of a
# failure is the one of the last such line before it
STAGE_MARKERS = (
    (ATTEMPT, "preparation"),
    (
        re.compile(
            r"transferring \d+ bytes.*|resuming the transfer.*"
            r"|the router's partial copy does not match.*"
        ),
        "transfer",
    ),
    (re.compile(r"starting the flashing wrapper.*"), "checks on the router"),
    (re.compile(r"operation \S+ started \(pid.*"), "checks on the router"),
    (TOOL_STARTS, "flash"),
    (re.compile(r"\S+ finished|waiting up to \d+s for the modem to answer"), "reboot"),
    (re.compile(r"modem answers again|the router reports success.*"), "version check"),
    # health verification (upgraders/health_checks.py): the gate's reading
    # comes before the transfer, the service's after the version
    (re.compile(r"pre-flight reading: .*"), "pre-flight gate"),
    (re.compile(r"modem verified by the server: .*"), "service verification"),
    # a "select carrier image" operation (carrier_switch.py)
    (re.compile(r"selecting the stored carrier image .*"), "carrier image switch"),
)
MAX_LENGTH = 300


@dataclass(frozen=True)
class FailureCause:
    stage: str
    line: str

    def __str__(self):
        return f"{self.stage}: {self.line}" if self.stage else self.line


def _tool_run(lines):
    """``(tool, its lines, failed)`` of the last tool run, or ``None``."""
    for index in range(len(lines) - 1, -1, -1):
        match = TOOL_STARTS.fullmatch(lines[index])
        if not match:
            continue
        tool = match.group(1).rsplit("/", 1)[-1]
        ends = (f"{match.group(1)} failed with", f"{match.group(1)} did not finish")
        output = []
        for line in lines[index + 1 :]:
            if line.startswith(ends):
                return tool, output, True
            if line == f"{match.group(1)} finished":
                return tool, output, False
            output.append(line)
        # no end recorded: the wrapper was killed (or its end is not read yet)
        return tool, output, True
    return None


def _stage(lines):
    stage = ""
    for line in lines:
        for pattern, name in STAGE_MARKERS:
            if pattern.fullmatch(line):
                stage = name
    return stage


def _error_line(output):
    errors = [TOOL_ERROR.fullmatch(line) for line in output]
    errors = [match.group(1) for match in errors if match]
    if errors:
        return errors[-1]
    said = [line for line in output if not TOOL_PROGRESS.fullmatch(line)]
    return said[-1] if said else ""


def failure_cause(log):
    """The ``FailureCause`` of a finished operation's ``log`` (its last
    attempt), ``None`` when the log says nothing."""
    lines = [line.strip() for line in (log or "").splitlines() if line.strip()]
    for index in range(len(lines) - 1, -1, -1):
        if ATTEMPT.fullmatch(lines[index]):
            lines = lines[index:]
            break
    run = _tool_run(lines)
    if run and run[2]:
        tool, output, _ = run
        line = _error_line(output)
        if line:
            return FailureCause(f"flash ({tool})", line[:MAX_LENGTH])
    stage = _stage(lines)
    if run and stage == "flash":
        stage = f"flash ({run[0]})"
    for line in reversed(lines):
        if not SAYS_NOTHING.fullmatch(line):
            return FailureCause(stage, line[:MAX_LENGTH])
    return None
