"""Service health of a modem: the readings of ``modem-health.sh``, the
pre-flight gate and the post-flash service verification (issue 22).

A leaf: pure functions of the readings and the upgrade options, so the gate
and the verification are decided in one place and tested without a router.
The readings' meaning, and what is assumed rather than confirmed for the
FN990A, is in docs/user/device-contract.rst ("Service health").
"""

import json
import re

from .device_contract import CONTROL, GarbageOutput, excerpt

HEALTH_SCRIPT = "modem-health.sh"

# a remediation step the router ran, and how it went
_ACTION = r"(?:apn|ifup|service):(?:ok|failed)"
# every key modem-health.sh prints, and the full match its value must be
HEALTH_KEYS = {
    "usb_path": r"(?:[0-9]{1,3}-[0-9]{1,3}(?:\.[0-9]{1,3}){0,6})?",
    "mode": r"normal|flashing|absent",
    "usb_id": r"(?:[0-9a-f]{4}:[0-9a-f]{4})?",
    "at": r"ok|silent|",
    "sim": r"ready|absent|pin|unknown|",
    "registration": r"home|roaming|searching|denied|none|unknown|",
    "rat": r"lte|nr|",
    "rsrp": r"-?[0-9]{1,3}|",
    "sinr": r"-?[0-9]{1,3}|",
    "apn": r"[A-Za-z0-9][A-Za-z0-9.-]{0,99}|",
    "pdp_type": r"IP|IPV6|IPV4V6|",
    "interface": r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}|",
    "data": r"up|down|unknown|",
    "address": r"[0-9A-Fa-f.:]{1,45}|",
    "device": r"[A-Za-z0-9_.@-]{1,32}|",
    "reachable": r"yes|no|unsupported|",
    "http_status": r"[0-9]{3}|",
    "uptime": r"[0-9]{1,10}|",
    "power": r"[a-z0-9_-]{1,32}|",
    "actions": rf"(?:{_ACTION}(?: {_ACTION})*)?",
}
REGISTERED = ("home", "roaming")
# values the options carry to the router's shell (full match, like the script)
INTERFACE = r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,14})?$"
# a host (pinged) or an http(s) URL (fetched by curl): modem-health.sh's
# TARGET_PATTERN
TARGET = (
    r"^(?:[A-Za-z0-9][A-Za-z0-9.:-]{0,252}|https?://[A-Za-z0-9.-]{1,253}"
    r"(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]{0,200})?)?$"
)
SERVICE_PATH = r"^(?:/[A-Za-z0-9._+-]{1,64}){1,8}$|^$"
# the power-source hook's answer the gate accepts
MAINS = "mains"


def parse_health(output):
    """The reading (a dict of strings, ``rsrp``/``sinr`` as int or None);
    ``GarbageOutput`` unless every key is there and fully matches."""
    try:
        reading = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise GarbageOutput(f"not a health reading: {excerpt(output)!r}")
    if not isinstance(reading, dict) or set(reading) != set(HEALTH_KEYS):
        raise GarbageOutput(f"not a health reading: {excerpt(output)!r}")
    for key, pattern in HEALTH_KEYS.items():
        value = reading[key]
        if (
            not isinstance(value, str)
            or CONTROL.search(value)
            or not re.fullmatch(pattern, value)
        ):
            raise GarbageOutput(f"bad {key} in the health reading: {value!r}"[:200])
    for key in ("rsrp", "sinr", "uptime"):
        reading[key] = int(reading[key]) if reading[key] else None
    return reading


def health_arguments(script, usb_path, options, remediation=()):
    """argv of one reading (``remediation``: steps of ``remediation_steps``
    to apply first)."""
    args = ["sh", script]
    if usb_path:
        args += ["--usb-path", usb_path]
    if options.get("data_interface"):
        args += ["--interface", options["data_interface"]]
    if options.get("reachability_target"):
        args += ["--target", options["reachability_target"]]
    if options.get("power_source_command"):
        args += ["--power-command", options["power_source_command"]]
    for step in remediation:
        args += list(step[1])
    return args


# -- the pre-flight gate ------------------------------------------------------

SIM_PROBLEMS = {
    "absent": "no SIM card",
    "pin": "the SIM is locked (PIN/PUK)",
    "unknown": "the SIM state cannot be read",
    "": "the SIM state cannot be read",
}


def gate_refusal(reading, options):
    """Why the upgrade must not start, or None. ``options``: the upgrader's
    options with their defaults."""
    mode = reading["mode"]
    if mode == "flashing":
        if options.get("recovery_run"):
            return None
        return (
            f"the modem is in a flashing mode (USB {reading['usb_id']}): an "
            "interrupted flash; start a recovery run with the image that was "
            "being flashed"
        )
    if options.get("recovery_run"):
        return "a recovery run needs a modem in a flashing mode; this one is normal"
    if mode == "absent":
        return "no modem found on USB"
    if reading["at"] != "ok":
        return f"the modem (USB {reading['usb_id']}) does not answer AT commands"
    if options.get("require_sim", True) and reading["sim"] != "ready":
        return SIM_PROBLEMS[reading["sim"]]
    if options.get("require_registration", True) and (
        reading["registration"] not in REGISTERED
    ):
        return f"the modem is not registered ({reading['registration'] or 'unknown'})"
    return signal_problem(reading, options) or router_problem(reading, options)


def router_problem(reading, options):
    """The router's own state against the optional gates (uptime, power
    source), or None."""
    floor = options.get("min_uptime") or 0
    uptime = reading.get("uptime")
    if floor and (uptime is None or uptime < floor):
        return (
            f"the router has been up for {uptime}s only, the floor is {floor}s "
            "(a router that just rebooted may reboot again)"
            if uptime is not None
            else "the router's uptime cannot be read"
        )
    if options.get("power_source_command") and reading.get("power") != MAINS:
        return (
            f"the router is not on mains power (the power-source hook says "
            f"{reading.get('power') or 'nothing'})"
        )
    return None


def reachability_problem(reading, options):
    """Why the reachability target did not answer, or None."""
    target = options.get("reachability_target")
    if not target or reading["reachable"] == "yes":
        return None
    through = options.get("data_interface") or "the default route"
    if reading["reachable"] == "unsupported":
        return f"{target} cannot be checked: an HTTP check needs curl on the router"
    status = reading.get("http_status")
    if status and status != "000":
        return f"{target} answered HTTP {status} through {through}"
    return f"{target} unreachable through {through}"


def signal_problem(reading, options):
    """The signal below its floors, or None (a value the modem does not
    report is not judged)."""
    rsrp, sinr = reading["rsrp"], reading["sinr"]
    floor = options.get("min_rsrp")
    if floor is not None and rsrp is not None and rsrp < floor:
        return f"signal too weak: RSRP {rsrp} dBm, the floor is {floor} dBm"
    floor = options.get("min_sinr")
    if floor is not None and sinr is not None and sinr < floor:
        return f"signal too noisy: SINR {sinr} dB, the floor is {floor} dB"
    return None


# -- the post-flash verification ------------------------------------------------


def service_problems(reading, baseline, options):
    """What is not restored after the flash (empty: service restored)."""
    if reading["mode"] != "normal" or reading["at"] != "ok":
        return [f"the modem does not answer AT (USB mode {reading['mode']})"]
    problems = []
    if reading["sim"] != "ready" and (baseline or {}).get("sim") == "ready":
        problems.append(SIM_PROBLEMS[reading["sim"]])
    if reading["registration"] not in REGISTERED:
        problems.append(f"not registered ({reading['registration'] or 'unknown'})")
    if baseline and baseline.get("apn") and reading["apn"] != baseline["apn"]:
        problems.append(
            f"APN profile lost (context 1 is {reading['apn'] or 'empty'!s}, "
            f"was {baseline['apn']})"
        )
    if options.get("data_interface") and reading["data"] != "up":
        problems.append(
            f"no data session ({options['data_interface']} is "
            f"{reading['data'] or 'unknown'})"
        )
    problem = reachability_problem(reading, options)
    if problem:
        problems.append(problem)
    if reading["registration"] in REGISTERED:
        problem = signal_problem(reading, options)
        drop = options.get("max_signal_drop")
        before = (baseline or {}).get("rsrp")
        if problem:
            problems.append(problem)
        elif None not in (drop, before, reading["rsrp"]) and (
            before - reading["rsrp"] > drop
        ):
            problems.append(
                f"signal dropped: RSRP {reading['rsrp']} dBm, {before} dBm before "
                f"the flash (more than {drop} dB)"
            )
    return problems


def remediation_steps(reading, baseline, options):
    """The cheap steps worth trying for this reading: ``(name, extra
    arguments of modem-health.sh)``, in order."""
    steps = []
    if (
        baseline
        and baseline.get("apn")
        and reading["apn"] != baseline["apn"]
        and reading["at"] == "ok"
    ):
        steps.append(
            (
                f"re-apply the APN {baseline['apn']} to PDP context 1",
                [
                    "--apply-apn",
                    baseline["apn"],
                    "--pdp-type",
                    baseline.get("pdp_type") or "IPV4V6",
                ],
            )
        )
    if options.get("modem_daemon_service"):
        steps.append(
            (
                f"restart the modem daemon ({options['modem_daemon_service']})",
                ["--restart-service", options["modem_daemon_service"]],
            )
        )
    if options.get("data_interface"):
        steps.append(
            (
                f"restart the interface {options['data_interface']}",
                ["--ifup"],
            )
        )
    return steps


NOT_RESTORED = "flashed, service not restored"


def service_failure(log):
    """The "flashed, service not restored: ..." line of an operation's log
    (its last), or None."""
    for line in reversed((log or "").splitlines()):
        if line.startswith(NOT_RESTORED):
            return line
    return None


def summary(reading):
    """One line for the log."""
    if reading["mode"] != "normal":
        return f"modem in {reading['mode']} mode (USB {reading['usb_id'] or '-'})"
    if reading["at"] != "ok":
        return "modem does not answer AT"
    parts = [
        f"SIM {reading['sim'] or '?'}",
        f"registration {reading['registration'] or '?'}"
        + (f" ({reading['rat']})" if reading["rat"] else ""),
    ]
    if reading["rsrp"] is not None:
        parts.append(f"RSRP {reading['rsrp']} dBm")
    if reading["sinr"] is not None:
        parts.append(f"SINR {reading['sinr']} dB")
    if reading["apn"]:
        parts.append(f"APN {reading['apn']}")
    if reading["interface"]:
        parts.append(
            f"{reading['interface']} {reading['data'] or '?'}"
            + (f" {reading['address']}" if reading["address"] else "")
        )
    if reading["reachable"]:
        parts.append(f"target reachable: {reading['reachable']}")
    if reading.get("uptime") is not None:
        parts.append(f"router up {reading['uptime']}s")
    if reading.get("power"):
        parts.append(f"power {reading['power']}")
    return ", ".join(parts)


# -- the upgrade options (merged into every wrapper upgrader's schema) ----------

OPTIONS = {
    "preflight_checks": {
        "type": "boolean",
        "title": (
            "Pre-flight gate: start only when the modem answers AT, is not in "
            "a flashing mode, has a ready SIM, is registered and its signal "
            "is above the floors"
        ),
        "default": True,
    },
    "require_sim": {
        "type": "boolean",
        "title": "Gate: a ready SIM is required",
        "default": True,
    },
    "require_registration": {
        "type": "boolean",
        "title": "Gate: network registration is required",
        "default": True,
    },
    "min_rsrp": {
        "type": "integer",
        "title": "Signal floor: lowest RSRP in dBm (gate and verification)",
        "minimum": -160,
        "maximum": -40,
        "default": -125,
    },
    "min_sinr": {
        "type": "integer",
        "title": "Signal floor: lowest SINR in dB, where the modem reports it",
        "minimum": -30,
        "maximum": 40,
        "default": -10,
    },
    "service_verification": {
        "type": "boolean",
        "title": (
            "After the flash, verify the service (registration, data session, "
            "reachability, signal against the pre-flight baseline)"
        ),
        "default": True,
    },
    "service_timeout": {
        "type": "integer",
        "title": "Time allowed for the service to come back (seconds)",
        "minimum": 5,
        "maximum": 3600,
        "default": 180,
    },
    "max_signal_drop": {
        "type": "integer",
        "title": "Largest RSRP drop from the baseline accepted after the flash (dB)",
        "minimum": 1,
        "maximum": 100,
        "default": 30,
    },
    "data_interface": {
        "type": "string",
        "title": (
            "The router's cellular interface (netifd name, e.g. wwan): its "
            "data session is verified; empty: not verified"
        ),
        "pattern": INTERFACE,
        "maxLength": 15,
        "default": "",
    },
    "reachability_target": {
        "type": "string",
        "title": (
            "Reachability target checked through that interface after the "
            "flash: an address or host name is pinged, an http:// or https:// "
            "URL fetched (curl, a 2xx or 3xx answer); empty: none"
        ),
        "pattern": TARGET,
        "maxLength": 470,
        "default": "",
    },
    "min_uptime": {
        "type": "integer",
        "title": (
            "Gate: lowest uptime of the router in seconds (a router that just "
            "rebooted may be on a flaky supply); 0: not checked"
        ),
        "minimum": 0,
        "maximum": 30 * 86400,
        "default": 0,
    },
    "power_source_command": {
        "type": "string",
        "title": (
            "Gate: a command on the router that prints its power source in "
            "one word (your hook: OpenWrt reports none in general); the "
            "upgrade starts only when it prints 'mains'; empty: not checked"
        ),
        "pattern": SERVICE_PATH,
        "maxLength": 255,
        "default": "",
    },
    "remediation": {
        "type": "boolean",
        "title": (
            "Remediation: when the service does not come back, re-apply the "
            "saved APN and restart the interface (and the modem daemon)"
        ),
        "default": False,
    },
    "modem_daemon_service": {
        "type": "string",
        "title": (
            "Init script restarted by the remediation (e.g. "
            "/etc/init.d/modemmanager); empty: not restarted"
        ),
        "pattern": SERVICE_PATH,
        "maxLength": 255,
        "default": "",
    },
    "reflash_previous": {
        "type": "boolean",
        "title": (
            "Remediation: if the service is still not restored, re-flash the "
            "previous build from the catalogue (a linked operation, once)"
        ),
        "default": False,
    },
    "recovery_run": {
        "type": "boolean",
        "title": (
            "Recovery run: the modem is stuck in a flashing mode; flash this "
            "image with --lossrecovery"
        ),
        "default": False,
    },
}
