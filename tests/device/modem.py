"""The emulated modem's state and the fake sysfs derived from it.

All state lives in ``<router root>/state/state.json`` so that the fake tools
(separate processes started by the scripts under test) and the test process
see the same modem. Every change goes through :meth:`ModemState.update`,
which holds a file lock and re-enumerates in the fake sysfs tree the USB
devices that changed.
"""

import contextlib
import fcntl
import json
import os
import shutil

USB_PATH = "2-1"
MM_DEVICE_UID = f"/sys/devices/platform/soc/xhci-hcd.0/usb2/{USB_PATH}"
NORMAL_USB_ID = "1bc7:1071"
FLASHING_USB_ID = "1bc7:9010"
# interface number -> tty name, in normal mode (DIAG on 0, primary AT on 2)
NORMAL_PORTS = {0: "ttyUSB0", 2: "ttyUSB2", 3: "ttyUSB3"}
FLASHING_PORTS = {0: "ttyUSB0"}
DIAG_PORT = "/dev/ttyUSB0"
AT_PORT = "/dev/ttyUSB2"

FAULTS = (
    None,
    "tool-error",  # the tool fails at 50%, the modem reboots into its old firmware
    "hang",  # the tool stops printing at 50% and never ends
    "interrupt",  # the tool stops at 50%, the modem stays in flashing mode
    "power-loss",  # the modem vanishes at 50% and never comes back
    "no-return",  # the flash succeeds but the modem never re-enumerates
    "stuck-flashing",  # the flash succeeds but the modem stays in flashing mode
    "stale-version",  # the modem comes back still running its old firmware
    "no-swpkgv",  # AT#SWPKGV answers ERROR (AT+CGMR fallback)
    "silent",  # the modem is on USB but answers neither AT nor ModemManager
    "uplink-loss",  # netns routers: the uplink is down while the modem is away
)

# Further modems of the router: each dict overrides these; ``at_tty`` /
# ``diag_tty`` name its ports, ``usb_id`` is its id in its current mode. The
# fake tools flash, inhibit and answer for them like for the first modem;
# ``fault`` is each modem's own.
EXTRA_MODEM = {
    "usb_path": "1-1.2",
    "usb_id": NORMAL_USB_ID,
    "manufacturer": "Telit",
    "model": "FN990A28",
    "firmware": "M0R.010000-B020",
    "revision": "45.00.010-B020-P0R.001600",
    "imei": "351234567890999",
    "mode": "normal",
    "at_tty": "ttyUSB6",
    "diag_tty": "ttyUSB4",
    "inhibited_by": None,
    "cfun": 1,
    "fault": None,
}


def extra_modems(state):
    """The further modems, with their defaults (router-wide values such as
    ``flash_duration`` taken from the state)."""
    return [
        dict(state, **dict(EXTRA_MODEM, **extra))
        for extra in state.get("extra_modems", [])
    ]


def modems(state):
    """Every modem of the router, the first one first: ``(slot, modem)``
    where ``slot`` is what ``update_modem`` takes and ``modem`` the state
    seen from that modem (its ports, USB path and ModemManager uid added)."""
    first = dict(
        state,
        usb_path=USB_PATH,
        diag_tty=DIAG_PORT[len("/dev/") :],
        at_tty=AT_PORT[len("/dev/") :],
        uid=MM_DEVICE_UID,
    )
    found = [(0, first)]
    for slot, extra in enumerate(extra_modems(state), start=1):
        uid = f"/sys/devices/platform/soc/xhci-hcd.1/usb1/{extra['usb_path']}"
        found.append((slot, dict(extra, uid=uid)))
    return found


def update_modem(state, slot, values):
    """Applies ``values`` to one modem of ``state`` (slot 0: the first)."""
    if slot == 0:
        state.update(values)
        return
    extra = state["extra_modems"][slot - 1]
    if "mode" in values:
        # an extra modem's USB id is the one of its current mode
        if values["mode"] == "flashing" and extra.get("mode", "normal") != "flashing":
            extra["normal_usb_id"] = extra.get("usb_id", NORMAL_USB_ID)
            values = dict(values, usb_id=state["usb_flashing_id"])
        elif values["mode"] == "normal" and "normal_usb_id" in extra:
            values = dict(values, usb_id=extra.pop("normal_usb_id"))
    extra.update(values)


# SIMs the tests insert (emulator knobs: ``EmulatedRouter.swap_sim``)
SIM_VODAFONE_IT = {
    "state": "ready",
    "iccid": "8939100012345678901",
    "imsi": "222103456789012",
    "operator": "vodafone IT",
}
SIM_ATT_US = {
    "state": "ready",
    "iccid": "89014103211118510720",
    "imsi": "310410123456789",
    "operator": "AT&T",
}


def sim_from_word(word):
    """The SIM state for the health knobs' words: ready (the default SIM),
    absent (no SIM), pin (the default SIM, locked)."""
    if word == "absent":
        return None
    if word == "pin":
        return dict(SIM_VODAFONE_IT, state="locked")
    if word == "ready":
        return dict(SIM_VODAFONE_IT)
    raise ValueError(f"unknown SIM word {word!r}: ready, absent or pin")


def select_carrier_image(state):
    """The modem's automatic selection by SIM: the stored image made for
    the SIM's network, else the generic one (unchanged in manual mode,
    without a SIM or without such images)."""
    sim = state.get("sim")
    if state.get("carrier_selection") != "auto" or not sim:
        return
    generic = None
    for index, image in enumerate(state["carrier_images"], start=1):
        if any(sim["imsi"].startswith(network) for network in image["networks"]):
            state["active_carrier_image"] = index
            return
        if not image["networks"] and generic is None:
            generic = index
    if generic is not None:
        state["active_carrier_image"] = generic


DEFAULT_STATE = {
    "manufacturer": "Telit",
    "model": "FN990A28",
    "firmware": "M0R.010000-B020",
    "revision": "45.00.010-B020-P0R.001600",
    "imei": "351234567890123",
    "mode": "normal",
    "inhibited_by": None,
    "daemon": "running",
    "cfun": 1,
    "fault": None,
    "flash_duration": 0.5,
    "reboot_delay": 0.3,
    "usb_flashing_id": FLASHING_USB_ID,
    "uci": {},
    "extra_modems": [],
    "netns": None,
    "bg_pids": [],
    "events": [],
    # --- SIM and carrier images (an emulation of the documented behaviour of
    # Telit's multi-carrier families; the exact answer formats are
    # assumptions, docs/user/device-contract.rst). ``sim``: None when no SIM
    # is inserted; its ``state``: ready, or locked (PIN required).
    "sim": dict(SIM_VODAFONE_IT),
    # stored carrier images, AT#GETFW order (index 1 first); ``networks``
    # are the MCC-MNCs an image is for (the emulator's automatic selection)
    "carrier_images": [
        {"name": "GENERIC", "version": "M0R.010000-B020", "networks": []},
        {"name": "ATT", "version": "M0R.010000-B020", "networks": ["310410"]},
    ],
    "active_carrier_image": 1,
    # auto: the modem picks the image of the SIM's network at a SIM swap
    "carrier_selection": "auto",
    # False: AT#GETFW / AT#ACTIVEFW answer ERROR (a single-image modem)
    "carrier_commands": True,
    # switching the active image (AT#ACTIVEFW=1,<index>, after the automatic
    # selection is off: AT#ACTIVEFW=0,2) reboots the modem for
    # ``reboot_delay`` seconds. Failure knob: None, "refused" (the switch
    # answers ERROR, nothing changes), "no-return" (the modem leaves USB and
    # never comes back), "stale" (it comes back with the old image active)
    "carrier_switch_fault": None,
    # --- service health (issue 22), all emulation: the AT answers follow
    # 3GPP TS 27.007; that the FN990A answers exactly so is assumed, not
    # confirmed (docs/user/device-contract.rst, "Service health readings")
    # the SIM is the carrier emulation's "sim" above; ``set_modem(sim=...)``
    # also takes the health words: ready, absent (no SIM), pin (locked)
    "registration": "home",  # home | roaming | searching | denied | none
    "rat": "lte",  # lte: AT+CEREG? carries the state; nr: AT+C5GREG? does
    "rsrp": -95,  # dBm, AT+CESQ (LTE rsrp, or NR ss_rsrp when rat is nr)
    "sinr": 12,  # dB, AT+CESQ's ss_sinr: reported for NR only
    "apn": "internet",  # PDP context 1 (AT+CGDCONT?); "" when lost
    "pdp_type": "IPV4V6",
    # the router's cellular interface (netifd): `ifstatus <name>` answers;
    # its device is lo with 127.0.0.1 so that a real `ping -I` reaches a
    # target on the loopback side
    "data_interface": "wwan",
    "data_device": "lo",
    "data_address": "127.0.0.1",
    # a firmware that loses its APN profile: a flash leaves PDP context 1 empty
    "apn_lost_on_flash": False,
    # a registration state the modem keeps after every flash (None: as before)
    "registration_after_flash": None,
    # firmware versions whose data session never comes up (a broken build)
    "data_broken_firmware": [],
    # `ifup` calls and AT+CGDCONT writes are in the events
}


class ModemState:
    def __init__(self, root):
        self.root = root
        self.dir = os.path.join(root, "state")
        self.path = os.path.join(self.dir, "state.json")
        # what the fake tools did, one JSON list per line (append-only)
        self.events_path = os.path.join(self.dir, "events")
        self.sysfs = os.path.join(root, "sys")

    def create(self, **values):
        os.makedirs(self.dir, exist_ok=True)
        state = json.loads(json.dumps(DEFAULT_STATE))
        state.update(values)
        state.pop("events")
        with self._locked():
            self._save(state)
            self._sync_sysfs(state, None)

    @contextlib.contextmanager
    def _locked(self):
        with open(os.path.join(self.dir, "lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self):
        with open(self.path) as f:
            return json.load(f)

    def _save(self, state):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.path)
        from .fakes import render_view  # fakes imports this module

        render_view(state, os.path.join(self.dir, "view"))

    def read(self):
        """The state, with ``events``: what the fake tools did, in order."""
        with self._locked():
            state = self._load()
        try:
            with open(self.events_path) as f:
                state["events"] = [json.loads(line) for line in f]
        except FileNotFoundError:
            state["events"] = []
        return state

    @contextlib.contextmanager
    def update(self):
        """``with state.update() as s: s['mode'] = 'absent'``"""
        with self._locked():
            state = self._load()
            layout_before = usb_layout(state)
            yield state
            state.pop("events", None)
            self._save(state)
            if usb_layout(state) != layout_before:
                self._sync_sysfs(state, layout_before)

    def event(self, *words):
        line = json.dumps(list(words)) + "\n"
        with self._locked(), open(self.events_path, "a") as f:
            f.write(line)

    def _sync_sysfs(self, state, before):
        """Re-enumerates only the USB devices whose presence, id or ports
        changed since ``before`` (a ``usb_layout``; None: all of them): a
        change to one modem must not make the others vanish for a moment, as
        a real bus would not (a script reading the other modem's ports
        meanwhile saw none: "no DIAG port")."""
        devices = os.path.join(self.sysfs, "bus", "usb", "devices")
        os.makedirs(devices, exist_ok=True)
        hub = os.path.join(devices, "usb2")
        if not os.path.isdir(hub):
            os.makedirs(hub)
            _write(os.path.join(hub, "idVendor"), "1d6b")
            _write(os.path.join(hub, "idProduct"), "0003")
        if before is None:
            for name in os.listdir(devices):
                if name not in ("usb1", "usb2"):
                    shutil.rmtree(os.path.join(devices, name))
            before = {}
        after = usb_layout(state)
        for usb_path in set(before) | set(after):
            if before.get(usb_path) == after.get(usb_path):
                continue
            _remove_usb_device(devices, usb_path)
            if usb_path in after:
                usb_id, ports = after[usb_path]
                _usb_device(devices, usb_path, usb_id, dict(ports))


def usb_layout(state):
    """What the fake sysfs shows of ``state``: ``{usb path: (usb id, ((interface,
    tty), ...))}`` for every modem present on the bus."""
    layout = {}
    for extra in extra_modems(state):
        if extra["mode"] == "absent":
            continue
        ports = {0: extra["diag_tty"]}
        if extra["mode"] == "normal":
            ports[2] = extra["at_tty"]
        layout[extra["usb_path"]] = (extra["usb_id"], tuple(sorted(ports.items())))
    mode = state["mode"]
    if mode == "normal":
        layout[USB_PATH] = (NORMAL_USB_ID, tuple(sorted(NORMAL_PORTS.items())))
    elif mode != "absent":
        layout[USB_PATH] = (
            state["usb_flashing_id"],
            tuple(sorted(FLASHING_PORTS.items())),
        )
    return layout


def _remove_usb_device(devices, usb_path):
    """The device directory and its interfaces (``<usb path>:1.<n>``)."""
    for name in os.listdir(devices):
        if name == usb_path or name.startswith(usb_path + ":"):
            shutil.rmtree(os.path.join(devices, name))


def _usb_device(devices, usb_path, usb_id, ports):
    device = os.path.join(devices, usb_path)
    os.makedirs(device)
    vendor, product = usb_id.split(":")
    _write(os.path.join(device, "idVendor"), vendor)
    _write(os.path.join(device, "idProduct"), product)
    for interface, tty in ports.items():
        os.makedirs(os.path.join(devices, f"{usb_path}:1.{interface}", tty))


def _write(path, text):
    with open(path, "w") as f:
        f.write(text + "\n")
