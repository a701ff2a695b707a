"""Fake router tools answering from the emulated modem state.

Run as ``python3 fakes.py <router-root> <tool> [args...]``; the router's
``bin/`` holds one small shim per tool that does exactly that. The tools
stand in for closed binaries or daemons (uxfp, ModemManager, a serial AT
client, uci), so they are Python; the scripts under test stay BusyBox-only.
"""

import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from device.firmware import HEADER_SIZE, read_header  # noqa: E402
from device.modem import (  # noqa: E402
    AT_PORT,
    DIAG_PORT,
    MM_DEVICE_UID,
    ModemState,
    modems,
    update_modem,
)

FAIL_LINE = "[+] could not complete firmware upload"


def say(text, end="\n"):
    sys.stdout.write(text + end)
    sys.stdout.flush()


# --- uxfp ------------------------------------------------------------------


def uxfp(modem, args):
    options = {"lossrecovery": False, "file": None, "port": None}
    it = iter(args)
    for arg in it:
        if arg in ("--file", "--port", "--speed"):
            options[arg[2:]] = next(it, None)
        elif arg == "--lossrecovery":
            options["lossrecovery"] = True
        elif arg == "--debug":
            # exercises escaping: quotes, backslash, tab and a control char
            say('[d] device said "READY"\\ok\tbaud=\x07115200')
        elif arg in ("--serial", "--noprogress", "--json", "--report"):
            options[arg[2:]] = True
        elif arg == "--show-diag-ports":
            say(DIAG_PORT)
            return 0
        else:
            say(f"[-] unknown option {arg}")
            return 1
    modem.event("uxfp", *args)
    state = modem.read()
    slot, target = _modem_on_port(state, options["port"])
    problem = _uxfp_refusal(state, target, options)
    if problem:
        say(problem)
        say(FAIL_LINE)
        return 1
    # when each flash ran, per modem: tests prove flashes did not overlap
    modem.event("flash-start", target["usb_path"], time.time())
    try:
        return _flash(modem, slot, target, options)
    finally:
        modem.event("flash-end", target["usb_path"], time.time())


def _modem_on_port(state, port):
    """``(slot, modem)`` whose DIAG port is ``port``; the first modem when
    none is (the refusal then names the port)."""
    for slot, candidate in modems(state):
        if port == f"/dev/{candidate['diag_tty']}":
            return slot, candidate
    return 0, modems(state)[0][1]


def _flash(modem, slot, target, options):
    header = read_header(options["file"])
    old = {"firmware": target["firmware"], "revision": target["revision"]}
    new = {"firmware": header["firmware"], "revision": header["revision"]}
    fault = target["fault"]
    say("[+] enter boot mode")
    _set_mode(modem, slot, "flashing")
    # the modem being flashed is the router's only uplink (netns routers)
    _uplink(target, "down")
    say("[+] phase 2: the device will disconnect and reconnect")
    say("[+] uploading firmware")
    total = header["length"] + HEADER_SIZE
    steps = 10
    for step in range(1, steps + 1):
        time.sleep(target["flash_duration"] / steps)
        if step == steps // 2 + 1 and fault:
            code = _uxfp_fault(modem, slot, target, fault, old)
            if code is not None:
                return code
        percent = step * 100 // steps
        # the real tool redraws its progress line with a carriage return
        sent = total * step // steps
        say(
            f"[+] flashing [modem] {percent}%, transferred {sent}/{total} B",
            end="\r" if step < steps else "\n",
        )
    say("[+] firmware uploaded successfully!")
    if fault == "stuck-flashing":
        return 0
    _set_mode(modem, slot, "absent")
    if fault == "no-return":
        return 0
    if fault == "stale-version":
        new = old
    new = dict(new, **_flash_side_effects(target))
    _later(
        modem,
        target["reboot_delay"],
        slot,
        dict(new, mode="normal", cfun=1),
        uplink="up",
    )
    return 0


def _flash_side_effects(target):
    """What the new firmware changes besides its version (health knobs)."""
    effects = {}
    if target.get("apn_lost_on_flash"):
        effects["apn"] = ""
    if target.get("registration_after_flash"):
        effects["registration"] = target["registration_after_flash"]
    return effects


def _uxfp_refusal(state, target, options):
    path, port = options["file"], options["port"]
    if not path or not port:
        return "[-] usage: uxfp --file <stream.bin> --port <dev>"
    if not os.path.isfile(path):
        return f"[-] cannot open {path}"
    header = read_header(path)
    if not header:
        return "[-] not a firmware stream"
    if os.path.getsize(path) != HEADER_SIZE + header["length"]:
        return "[-] stream file is truncated"
    if target["mode"] == "absent":
        return f"[-] no device on {port}"
    if port != f"/dev/{target['diag_tty']}":
        return f"[-] {port} is not a DIAG port"
    if target["mode"] == "flashing" and not options["lossrecovery"]:
        return "[-] device is in flashing mode: use --lossrecovery"
    if not header["revision"].startswith("45."):
        return (
            f'[-] stream software version {header["revision"]} is not for this chipset'
        )
    if header["model"] != target["model"]:
        return f'[-] stream is for {header["model"]}, device is {target["model"]}'
    return None


def _uxfp_fault(modem, slot, target, fault, old):
    if fault == "tool-error":
        say("[-] unexpected answer from device")
        say(FAIL_LINE)
        _set_mode(modem, slot, "absent")
        _later(
            modem,
            target["reboot_delay"],
            slot,
            dict(old, mode="normal", cfun=1),
            uplink="up",
        )
        return 1
    if fault == "interrupt":
        say("[-] device disconnected")
        say(FAIL_LINE)
        return 2
    if fault == "power-loss":
        _set_mode(modem, slot, "absent")
        say("[-] device disconnected")
        say(FAIL_LINE)
        return 2
    if fault == "hang":
        while True:
            time.sleep(3600)
    return None


def _set_mode(modem, slot, mode):
    with modem.update() as state:
        update_modem(state, slot, {"mode": mode})


def _later(modem, delay, slot, values, uplink=None):
    """Applies ``values`` to the modem ``slot`` after ``delay`` s, in a
    daemon."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, 1024)
    try:
        with modem.update() as state:
            state["bg_pids"].append(os.getpid())
        time.sleep(delay)
        with modem.update() as state:
            update_modem(state, slot, values)
            state["bg_pids"].remove(os.getpid())
        if uplink:
            _uplink(modems(state)[slot][1], uplink)
    finally:
        os._exit(0)


def _uplink(state, action):
    if state["fault"] == "uplink-loss" and state.get("netns"):
        import shutil
        import subprocess

        netns = state["netns"]
        # the host's iproute2, not the router's BusyBox applet (no -n there)
        ip = shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")
        subprocess.run(
            [ip, "-n", netns["name"], "link", "set", netns["inner"], action],
            check=False,
        )


# --- read-only answers ------------------------------------------------------
# Pure functions of the state: (stdout, exit status). The CLI entry points
# below print them; ModemState also renders them into state/view/ after every
# change so that the bin/ shims can answer without starting Python.

MM_PATH = "/org/freedesktop/ModemManager1/Modem/0"


def _mm_visible(state):
    return (
        state["mode"] == "normal"
        and not state["inhibited_by"]
        and state["fault"] != "silent"
    )


def mmcli_answer(state, args):
    if args == ["-L"]:
        lines = [
            f"    {MM_PATH[:-1]}{index} [{found['manufacturer']}] {found['model']}\n"
            for index, found in modems(state)
            if _mm_visible(found)
        ]
        return "".join(lines) or "No modems were found\n", 0
    if len(args) == 3 and args[0] == "-m" and args[2] == "-J":
        index = args[1]
        if index == MM_PATH:
            index = "0"
        found = dict(modems(state)).get(int(index)) if index.isdigit() else None
        if found is None or not _mm_visible(found):
            return "error: couldn't find modem\n", 1
        document = _mm_json(found)
        document["modem"]["generic"]["device"] = found["uid"]
        return json.dumps(document, separators=(",", ":")) + "\n", 0
    return None


def _mm_json(state):
    return {
        "modem": {
            "3gpp": {"imei": state["imei"], "operator-name": "--"},
            "dbus-path": MM_PATH,
            "generic": {
                "device": MM_DEVICE_UID,
                "drivers": ["option", "cdc_mbim"],
                "equipment-identifier": state["imei"],
                "hardware-revision": "--",
                "manufacturer": state["manufacturer"],
                "model": state["model"],
                "plugin": "telit",
                "ports": [
                    "cdc-wdm0 (mbim)",
                    "ttyUSB0 (qcdm)",
                    "ttyUSB2 (at)",
                    "ttyUSB3 (at)",
                ],
                "primary-port": "cdc-wdm0",
                "revision": state["revision"],
                "state": "registered",
            },
        }
    }


def at_port(state):
    """The port that answers AT commands now, or None (``state``: the
    router's, i.e. its first modem's, or one modem's of ``modems()``)."""
    if state["mode"] != "normal" or state["fault"] == "silent":
        return None
    return f"/dev/{state['at_tty']}" if "at_tty" in state else AT_PORT


def at_answer(state, command):
    """Answer to a read-only AT command, as the modem prints it."""
    firmware = state["firmware"]
    build = firmware.rsplit("-", 1)[-1]
    answers = {
        "AT": [],
        "AT+CGMI": [state["manufacturer"]],
        "AT+CGMM": [state["model"]],
        "AT+CGSN": [state["imei"]],
        "AT+CGMR": [state["revision"]],
        "AT+GMR": [state["revision"]],
        "AT#SWPKGV": [state["revision"], firmware, "P0R.001600", f"A0R.000000-{build}"],
    }
    if state["fault"] == "no-swpkgv":
        del answers["AT#SWPKGV"]
    # the SIM's answers (AT+CPIN? too) are the carrier emulation's
    if command in CARRIER_AT_COMMANDS:
        return carrier_at_answer(state, command)
    if command in HEALTH_AT_COMMANDS:
        return health_at_text(health_at_answer(state, command))
    lines = answers.get(command)
    if lines is None:
        return "\r\nERROR\r\n"
    return "".join(f"\r\n{line}\r\n" for line in lines) + "\r\nOK\r\n"


# SIM and carrier-image readings: 3GPP TS 27.007 (+CPIN?, +CIMI, +COPS?),
# Telit's #CCID, and the multi-carrier family's #GETFW / #ACTIVEFW. The
# formats of the last two are assumptions (docs/user/device-contract.rst).
CARRIER_AT_COMMANDS = ("AT+CPIN?", "AT#CCID", "AT+CIMI", "AT+COPS?")
CARRIER_AT_COMMANDS += ("AT#GETFW", "AT#ACTIVEFW?")
SIM_NOT_INSERTED = "+CME ERROR: 10"
SIM_PIN_REQUIRED = "+CME ERROR: 11"


def carrier_at_answer(state, command):
    sim = state.get("sim")
    locked = bool(sim) and sim.get("state") == "locked"
    if command == "AT+CPIN?":
        lines = ["+CPIN: SIM PIN" if locked else "+CPIN: READY"] if sim else None
    elif command in ("AT#CCID", "AT+CIMI"):
        if not sim or (locked and command == "AT+CIMI"):
            error = SIM_PIN_REQUIRED if sim else SIM_NOT_INSERTED
            return f"\r\n{error}\r\n"
        lines = [f"#CCID: {sim['iccid']}" if command == "AT#CCID" else sim["imsi"]]
    elif command == "AT+COPS?":
        registered = sim and not locked and sim.get("operator")
        lines = [f'+COPS: 0,0,"{sim["operator"]}",7' if registered else "+COPS: 0"]
    elif not state.get("carrier_commands", True):
        return "\r\nERROR\r\n"
    elif command == "AT#GETFW":
        lines = [
            f'#GETFW: {index},"{image["name"]}","{image["version"]}"'
            for index, image in enumerate(state["carrier_images"], start=1)
        ]
    else:  # AT#ACTIVEFW?
        auto = 1 if state["carrier_selection"] == "auto" else 0
        lines = [f"#ACTIVEFW: {state['active_carrier_image']},{auto}"]
    if lines is None:
        return f"\r\n{SIM_NOT_INSERTED}\r\n"
    return "".join(f"\r\n{line}\r\n" for line in lines) + "\r\nOK\r\n"


AT_COMMANDS = ("AT", "AT+CGMI", "AT+CGMM", "AT+CGSN", "AT+CGMR", "AT+GMR", "AT#SWPKGV")
AT_COMMANDS += CARRIER_AT_COMMANDS


# --- service health (issue 22): emulation of 3GPP TS 27.007 answers --------
# Assumed for the FN990A, not confirmed: see the state's knobs in modem.py.

# <stat> of +CEREG / +C5GREG
REGISTRATION_STAT = {"none": 0, "home": 1, "searching": 2, "denied": 3, "roaming": 5}
HEALTH_AT_COMMANDS = ("AT+CPIN?", "AT+CEREG?", "AT+C5GREG?", "AT+CESQ", "AT+CGDCONT?")


def registered(state):
    return state.get("registration") in ("home", "roaming")


def data_session_up(state):
    """The router's cellular interface has an address: the modem answers,
    its radio is on, a SIM is ready, it is registered, PDP context 1 has an
    APN and the firmware is not a data-breaking one."""
    return (
        state["mode"] == "normal"
        and state["fault"] != "silent"
        and state.get("cfun", 1) == 1
        and sim_status(state) == "ready"
        and registered(state)
        and bool(state.get("apn"))
        and state["firmware"] not in state.get("data_broken_firmware", [])
    )


def sim_status(state):
    """The health reading's word for the SIM of the carrier emulation's
    state (``sim``: None without a SIM, a dict whose ``state`` is ready or
    locked): ready, absent or pin."""
    sim = state.get("sim")
    if not sim:
        return "absent"
    return "pin" if sim.get("state") == "locked" else "ready"


def health_at_answer(state, command):
    """Lines of a health AT command's answer; None: ERROR; a string: that
    final line instead of OK (``+CME ERROR: 10``)."""
    sim = sim_status(state)
    if command == "AT+CPIN?":
        if sim == "absent":
            return "+CME ERROR: 10"  # SIM not inserted
        return ["+CPIN: READY" if sim == "ready" else "+CPIN: SIM PIN"]
    if sim != "ready" and command in ("AT+CGDCONT?",):
        return "+CME ERROR: 10"
    stat = REGISTRATION_STAT.get(state.get("registration"), 0)
    if sim != "ready" or state.get("cfun", 1) != 1:
        stat = 0
    nr = state.get("rat") == "nr"
    if command == "AT+CEREG?":
        return [f"+CEREG: 0,{0 if nr else stat}"]
    if command == "AT+C5GREG?":
        return [f"+C5GREG: 0,{stat if nr else 0}"]
    if command == "AT+CESQ":
        # rsrp index: -141 + n dBm; ss_rsrp: -157 + n; ss_sinr: -23 + n/2 dB
        rsrp, sinr = int(state.get("rsrp", -95)), int(state.get("sinr", 12))
        if stat == 0 and state.get("registration") == "none":
            return ["+CESQ: 99,99,255,255,255,255,255,255,255"]
        if nr:
            return [f"+CESQ: 99,99,255,255,255,255,40,{rsrp + 157},{(sinr + 23) * 2}"]
        return [f"+CESQ: 99,99,255,255,20,{rsrp + 141},255,255,255"]
    if command == "AT+CGDCONT?":
        if not state.get("apn"):
            return []
        return [f'+CGDCONT: 1,"{state["pdp_type"]}","{state["apn"]}","0.0.0.0",0,0']
    return None


def health_at_text(answer):
    if answer is None:
        return "\r\nERROR\r\n"
    if isinstance(answer, str):
        return f"\r\n{answer}\r\n"
    return "".join(f"\r\n{line}\r\n" for line in answer) + "\r\nOK\r\n"


def ifstatus_answer(state, args):
    """``ifstatus <interface>`` as OpenWrt's netifd prints it (the keys the
    health reading uses)."""
    if len(args) != 1 or args[0] != state.get("data_interface"):
        return f"Interface {args[0] if args else ''} not found\n", 1
    if not data_session_up(state):
        document = {"up": False, "pending": False, "l3_device": ""}
    else:
        document = {
            "up": True,
            "l3_device": state["data_device"],
            "ipv4-address": [{"address": state["data_address"], "mask": 8}],
        }
    return json.dumps(document, indent="\t") + "\n", 0


def render_view(state, view):
    """Writes the read-only answers for the bin/ shims (see router.py)."""
    answers = {
        "mmcli/-L": mmcli_answer(state, ["-L"]),
        "mmcli/-m_0_-J": mmcli_answer(state, ["-m", "0", "-J"]),
        "sms_tool/port": (at_port(state) or "", 0),
    }
    for command in AT_COMMANDS + HEALTH_AT_COMMANDS:
        answers[f"sms_tool/{command}"] = (at_answer(state, command), 0)
    interface = state.get("data_interface")
    if interface:
        answers[f"ifstatus/{interface}"] = ifstatus_answer(state, [interface])
    for key, value in state["uci"].items():
        answers[f"uci/{key}"] = (value + "\n", 0)
    for name, (text, code) in answers.items():
        path = os.path.join(view, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(f"{code}\n{text}")
        os.replace(path + ".tmp", path)


# --- mmcli -----------------------------------------------------------------


def mmcli(modem, args):
    if len(args) == 1 and args[0].startswith("--inhibit-device="):
        return _mm_inhibit(modem, args[0].split("=", 1)[1])
    answer = mmcli_answer(modem.read(), args)
    if answer is None:
        sys.stderr.write(f"error: unsupported arguments {args}\n")
        return 1
    text, code = answer
    (sys.stdout if code == 0 else sys.stderr).write(text)
    return code


def _mm_inhibit(modem, uid):
    slots = {found["uid"]: slot for slot, found in modems(modem.read())}
    if uid not in slots:
        sys.stderr.write(f"error: couldn't inhibit device: unknown uid {uid}\n")
        return 1
    slot = slots[uid]
    with modem.update() as state:
        if modems(state)[slot][1]["inhibited_by"]:
            sys.stderr.write("error: device already inhibited\n")
            return 1
        update_modem(state, slot, {"inhibited_by": os.getpid()})
    modem.event("inhibit", uid)

    def release(*_):
        with modem.update() as state:
            update_modem(state, slot, {"inhibited_by": None})
        modem.event("uninhibit", uid)
        os._exit(0)

    signal.signal(signal.SIGTERM, release)
    signal.signal(signal.SIGINT, release)
    say("successfully inhibited device")
    while True:
        signal.pause()


# --- AT commands (as sms_tool -d PORT at COMMAND) --------------------------


def sms_tool(modem, args):
    if len(args) != 4 or args[0] != "-d" or args[2] != "at":
        sys.stderr.write("usage: sms_tool -d <port> at <command>\n")
        return 1
    port, command = args[1], args[3].upper()
    modem.event("at", command)
    state = modem.read()
    for slot, found in modems(state):
        if port != at_port(found):
            continue
        if command in ("AT+CFUN=0", "AT+CFUN=1"):
            with modem.update() as s:
                update_modem(s, slot, {"cfun": int(command[-1])})
            sys.stdout.write("\r\nOK\r\n")
            return 0
        if command.startswith("AT+CGDCONT=1,"):
            return _set_pdp_context(modem, slot, args[3])
        if command.startswith("AT#ACTIVEFW="):
            return _set_active_carrier_image(modem, slot, found, command)
        sys.stdout.write(at_answer(found, command))
        return 0
    sys.stderr.write(f"sms_tool: cannot open {port}\n")
    return 1


def _set_pdp_context(modem, slot, command):
    """AT+CGDCONT=1,"<type>","<apn>": PDP context 1 (case kept: APNs are
    case-insensitive on the network, but the answer shows what was set)."""
    parts = command.split(",", 2)
    if len(parts) != 3:
        sys.stdout.write("\r\nERROR\r\n")
        return 0
    pdp_type, apn = (part.strip('"') for part in parts[1:])
    with modem.update() as s:
        update_modem(s, slot, {"apn": apn, "pdp_type": pdp_type})
    modem.event("cgdcont", apn)
    sys.stdout.write("\r\nOK\r\n")
    return 0


def _set_active_carrier_image(modem, slot, found, command):
    """AT#ACTIVEFW=<op_mode>,<option>, as Telit documents it for its
    multi-carrier families (an emulation; the FN990A's exact behaviour is
    assumed, docs/user/device-contract.rst): op_mode 0 sets the automatic
    selection by SIM (option 2: off, 0 or 1: on); op_mode 1 activates the
    stored image <option>, refused while the automatic selection is on, and
    reboots the modem."""
    match = re.fullmatch(r"AT#ACTIVEFW=([01]),([0-9]{1,2})", command)
    fault = found.get("carrier_switch_fault")
    if not match or not found.get("carrier_commands", True):
        sys.stdout.write("\r\nERROR\r\n")
        return 0
    op_mode, option = int(match.group(1)), int(match.group(2))
    if op_mode == 0:
        if option > 2:
            sys.stdout.write("\r\nERROR\r\n")
            return 0
        with modem.update() as state:
            update_modem(
                state, slot, {"carrier_selection": "manual" if option == 2 else "auto"}
            )
        sys.stdout.write("\r\nOK\r\n")
        return 0
    images = found["carrier_images"]
    if (
        found.get("carrier_selection") == "auto"
        or not 1 <= option <= len(images)
        or fault == "refused"
    ):
        sys.stdout.write("\r\nERROR\r\n")
        return 0
    modem.event("activefw", str(option))
    sys.stdout.write("\r\nOK\r\n")
    sys.stdout.flush()
    # the modem reboots into the image: it leaves USB, then comes back
    active = found["active_carrier_image"] if fault == "stale" else option
    _set_mode(modem, slot, "absent")
    if fault != "no-return":
        _later(
            modem,
            found["reboot_delay"],
            slot,
            {"mode": "normal", "active_carrier_image": active},
        )
    return 0


# --- netifd: ifstatus, ifup (health readings and remediation) --------------


def ifstatus(modem, args):
    text, code = ifstatus_answer(modem.read(), args)
    (sys.stdout if code == 0 else sys.stderr).write(text)
    return code


def ifup(modem, args):
    """Brings the interface up again: the session comes up when everything
    it needs is there (``data_session_up``), as netifd's proto handler would."""
    if len(args) != 1 or args[0] != modem.read().get("data_interface"):
        sys.stderr.write(f"Interface {args[0] if args else ''} not found\n")
        return 1
    modem.event("ifup", args[0])
    return 0


# --- uci and the modem daemon's init script --------------------------------


def uci(modem, args):
    args = [a for a in args if a != "-q"]
    if len(args) == 2 and args[0] == "get":
        value = modem.read()["uci"].get(args[1])
        if value is None:
            return 1
        say(value)
        return 0
    return 1


def modem_daemon(modem, args):
    if args in (["stop"], ["start"]):
        with modem.update() as state:
            state["daemon"] = "stopped" if args == ["stop"] else "running"
        modem.event("daemon", args[0])
        return 0
    return 1


TOOLS = {
    "uxfp": uxfp,
    "mmcli": mmcli,
    "sms_tool": sms_tool,
    "uci": uci,
    "modem-daemon": modem_daemon,
    "ifstatus": ifstatus,
    "ifup": ifup,
}


def main(argv):
    root, tool, args = argv[1], argv[2], argv[3:]
    return TOOLS[tool](ModemState(root), args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
