"""An OpenWrt-like router with an emulated Telit FN990A, on this machine.

``EmulatedRouter`` builds a private root directory holding:

* ``bin/``: BusyBox applets (minus those OpenWrt lacks), the fake tools of
  :mod:`device.fakes` (uxfp, mmcli, sms_tool, uci), OpenSSH's ``scp``
  (dropbear has none) and optionally ``curl``; it is the router's whole PATH;
* ``sys/``: a fake sysfs tree for the modem's USB device and tty ports;
* ``state/``: the modem state the fake tools answer from;
* ``tmp/``: where the server uploads firmware and scripts.

With ``ssh=True`` a real dropbear listens on 127.0.0.1 with key-only login
as root; a forced command runs every session under ``ash`` with the
busybox-only PATH. dropbear reads ``~root/.ssh/authorized_keys``: it runs
in a private mount namespace where the router's own ``.ssh`` is bound over
``/root/.ssh``, so the machine's real file is never touched.
"""

import atexit
import glob
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from .modem import DEFAULT_STATE, ModemState, select_carrier_image, sim_from_word

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEVICE_SCRIPTS = os.path.join(REPO, "device-scripts")
# OpenWrt's BusyBox is built without these (see shared device notes)
ABSENT_APPLETS = (
    "timeout nohup setsid stty stat realpath base64 sha512sum lsusb flock "
    "ssl_client httpd telnet"
).split()
FAKE_TOOLS = ("uxfp", "mmcli", "sms_tool", "uci", "ifstatus", "ifup")
# Make emulated runs fast; the scripts' defaults suit real modems.
FAST_SCRIPT_ENV = {"POLL_INTERVAL": "0.1", "INHIBIT_SETTLE": "0.1", "AT_TIMEOUT": "5"}

_keys_dir = None

# Read-only answers come from files that device.fakes.render_view writes
# after every state change (first line: exit status), which spares a Python
# start per AT command or mmcli query; the rest goes to device/fakes.py.
_ANSWER = """answer() {
    [ -f "$1" ] || return 0
    { read -r code; if [ "$code" = 0 ]; then cat; else cat >&2; fi; } <"$1"
    exit "$code"
}
"""
FAST_PATHS = {
    "uci": _ANSWER
    + """[ "$1" = -q ] && shift
if [ $# -eq 2 ] && [ "$1" = get ]; then
    case $2 in */* | .*) exit 1 ;; esac
    answer "$view/uci/$2"
    exit 1
fi
""",
    "ifstatus": _ANSWER
    + """case $1 in */* | .* | '') ;; *) answer "$view/ifstatus/$1" ;; esac
""",
    "mmcli": _ANSWER
    + """case "$*" in
-L) answer "$view/mmcli/-L" ;;
"-m 0 -J") answer "$view/mmcli/-m_0_-J" ;;
esac
""",
    "sms_tool": _ANSWER
    + """if [ $# -eq 4 ] && [ "$1" = -d ] && [ "$3" = at ]; then
    case $4 in
    *[!A-Z0-9+#?]*) ;;
    *)
        if [ -f "$view/sms_tool/$4" ]; then
            { read -r _; read -r port; } <"$view/sms_tool/port"
            # another modem's port (or none): the Python tool answers
            if [ -n "$port" ] && [ "$2" = "$port" ]; then
                printf '["at", "%s"]\\n' "$4" >>"$events"
                answer "$view/sms_tool/$4"
            fi
        fi
        ;;
    esac
fi
""",
}


def _keys():
    """Host and client keys, generated once per process (RSA keygen is slow)."""
    global _keys_dir
    if _keys_dir is None:
        _keys_dir = tempfile.mkdtemp(prefix="emurouter-keys-")
        atexit.register(shutil.rmtree, _keys_dir, True)
        quiet = {
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
            "check": True,
        }
        subprocess.run(
            ["dropbearkey", "-t", "ed25519", "-f", os.path.join(_keys_dir, "host_key")],
            **quiet,
        )
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-m",
                "PEM",
                "-t",
                "rsa",
                "-b",
                "2048",
                "-N",
                "",
                "-f",
                os.path.join(_keys_dir, "client_key"),
            ],
            **quiet,
        )
    return _keys_dir


_applets = None


def _busybox_applets():
    global _applets
    if _applets is None:
        listing = subprocess.run(
            ["busybox", "--list"], capture_output=True, text=True, check=True
        )
        _applets = listing.stdout.split()
    return _applets


def _free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmulatedRouter:
    username = "root"

    def __init__(
        self,
        ssh=True,
        modem_manager=True,
        curl=True,
        netns=False,
        host="127.0.0.1",
        uci=None,
        script_env=None,
        **modem,
    ):
        """``modem`` may set any key of ``modem.DEFAULT_STATE`` (model,
        firmware, revision, imei, mode, fault, flash_duration, reboot_delay,
        extra_modems: a list of further modems, see ``modem.EXTRA_MODEM``).
        ``modem_manager=False`` leaves mmcli out (the AT path is used).
        ``netns=True`` runs dropbear inside a network namespace of its own
        (see :mod:`device.netns`)."""
        unknown = set(modem) - set(DEFAULT_STATE)
        if unknown:
            raise TypeError(f"unknown modem values: {sorted(unknown)}")
        self.ssh_enabled = ssh
        self.modem_manager = modem_manager
        self.curl = curl
        self.netns = None
        self.want_netns = netns
        self.host = host
        self.port = None
        self.uci = dict(
            uci
            or {
                "openwisp.http.url": "http://127.0.0.1:9",
                "openwisp.http.uuid": "5f0d2b0e-0000-4000-8000-000000000001",
                "openwisp.http.key": "emulatedkey0123456789",
            }
        )
        self.script_env = dict(FAST_SCRIPT_ENV, **(script_env or {}))
        self._modem_values = modem
        self._dropbear = None
        self._tmpfs_mounts = []
        self._http_server = None
        self.http_status = 204
        self.root = None

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.root = tempfile.mkdtemp(prefix="emurouter-")
        for sub in ("bin", "tmp", "etc/init.d", "home/.ssh", "state"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        self.modem = ModemState(self.root)
        self.modem.create(uci=self.uci, **self._modem_values)
        self._install_bin()
        self.set_uptime(86400)
        try:
            if self.want_netns:
                from .netns import Netns

                self.netns = Netns.create()
                self.host = self.netns.inner_address
                with self.modem.update() as state:
                    state["netns"] = self.netns.describe()
            if self.ssh_enabled:
                self._start_dropbear()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if not self.root:
            return
        self._kill_router_processes()
        if self._http_server:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None
        if self.netns:
            self.netns.delete()
            self.netns = None
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    # --- paths and environment --------------------------------------------

    @property
    def bin_dir(self):
        return os.path.join(self.root, "bin")

    @property
    def tmp_dir(self):
        return os.path.join(self.root, "tmp")

    @property
    def sysfs_root(self):
        return os.path.join(self.root, "sys")

    @property
    def modem_service(self):
        """A fake init script of the modem daemon (``stop``/``start``)."""
        return os.path.join(self.root, "etc", "init.d", "modem-daemon")

    @property
    def private_key(self):
        with open(os.path.join(_keys(), "client_key")) as f:
            return f.read()

    @property
    def private_key_path(self):
        return os.path.join(_keys(), "client_key")

    def env(self):
        """The environment of a process on the router."""
        return dict(
            self.script_env,
            PATH=self.bin_dir,
            SYSFS_ROOT=self.sysfs_root,
            HOME=os.path.join(self.root, "home"),
            TMPDIR=self.tmp_dir,
            PROC_UPTIME=os.path.join(self.root, "state", "uptime"),
        )

    def run(self, args, timeout=60, env=None, cwd=None, **kwargs):
        """Runs ``ash args...`` on the router (locally, no SSH); ``env``
        adds variables to the router's environment."""
        command = [os.path.join(self.bin_dir, "ash"), *args]
        if self.netns:
            # the host's iproute2: the router's PATH only has BusyBox's ip
            ip = shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")
            command = [ip, "netns", "exec", self.netns.name, *command]
        return subprocess.run(
            command,
            env=dict(self.env(), **(env or {})),
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    def ssh_command(self, command):
        """argv of an OpenSSH client running ``command`` on the router."""
        return [
            "ssh",
            "-q",
            "-i",
            self.private_key_path,
            "-p",
            str(self.port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            f"{self.username}@{self.host}",
            command,
        ]

    # --- modem control -----------------------------------------------------

    def set_modem(self, **values):
        unknown = set(values) - set(DEFAULT_STATE)
        if unknown:
            raise TypeError(f"unknown modem values: {sorted(unknown)}")
        if isinstance(values.get("sim"), str):
            values["sim"] = sim_from_word(values["sim"])
        with self.modem.update() as state:
            state.update(values)

    def modem_state(self):
        return self.modem.read()

    def swap_sim(self, sim):
        """Takes the SIM out (``sim=None``) or puts another one in (a dict
        like ``modem.SIM_ATT_US``); in automatic selection mode the modem
        then activates the stored image of the SIM's network."""
        with self.modem.update() as state:
            state["sim"] = dict(sim) if sim else None
            select_carrier_image(state)

    def set_fault(self, name):
        self.set_modem(fault=name)

    def set_flash_duration(self, seconds):
        self.set_modem(flash_duration=seconds)

    def set_reboot_delay(self, seconds):
        self.set_modem(reboot_delay=seconds)

    def leave_in_flash_mode(self, usb_id=None):
        """A power loss in the middle of a flash (emulated): the modem comes
        back in a flashing mode (``usb_id``: 1bc7:9010 Telit bootloader,
        05c6:9008 Qualcomm EDL, 18d1:d00d fastboot) and answers no AT."""
        values = {"mode": "flashing"}
        if usb_id:
            values["usb_flashing_id"] = usb_id
        self.set_modem(**values)

    def set_uptime(self, seconds):
        """What the router's /proc/uptime says (seconds since boot)."""
        with open(os.path.join(self.root, "state", "uptime"), "w") as f:
            f.write(f"{seconds}.42 {seconds * 2}.17\n")

    def set_power_source(self, word):
        """An operator's power-source hook (``power_source_command``)
        printing ``word``; returns its path on the router."""
        path = os.path.join(self.root, "etc", "power-source")
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\necho {word}\n")
        os.chmod(path, 0o755)
        return path

    def serve_http(self):
        """An HTTP reachability target on the loopback side of the router
        (its data session's device is ``lo``): answers ``http_status``
        to every GET. Returns its URL."""
        if self.netns:
            raise RuntimeError("serve_http: the target would be outside the netns")
        if self._http_server is None:
            router = self

            class Target(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(router.http_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

                def log_message(self, *args):
                    pass

            self._http_server = http.server.ThreadingHTTPServer(
                ("127.0.0.1", 0), Target
            )
            threading.Thread(
                target=self._http_server.serve_forever, daemon=True
            ).start()
        return f"http://127.0.0.1:{self._http_server.server_address[1]}/generate_204"

    def set_uci(self, **values):
        """``set_uci(**{'openwisp.http.url': ...})``"""
        self.uci.update(values)
        self.set_modem(uci=self.uci)

    # --- internals ---------------------------------------------------------

    def _install_bin(self):
        bin_dir = self.bin_dir
        # what `busybox --install -s` does, without its 0.2 s per router
        busybox = shutil.which("busybox")
        for applet in _busybox_applets():
            # a fake tool may share an applet's name (ifup): never both, or
            # writing the shim would follow the symlink into busybox itself
            if applet not in ABSENT_APPLETS and applet not in FAKE_TOOLS:
                os.symlink(busybox, os.path.join(bin_dir, applet))
        tools = (
            FAKE_TOOLS
            if self.modem_manager
            else tuple(t for t in FAKE_TOOLS if t != "mmcli")
        )
        python = sys.executable
        fakes = os.path.join(HERE, "fakes.py")
        for tool in tools + ("modem-daemon",):
            path = (
                os.path.join(bin_dir, tool)
                if tool != "modem-daemon"
                else self.modem_service
            )
            if os.path.lexists(path):
                os.unlink(path)  # never write through a symlink
            with open(path, "x") as f:
                f.write(
                    "#!/bin/sh\n"
                    f"view={self.root}/state/view\n"
                    f"events={self.root}/state/events\n"
                    + FAST_PATHS.get(tool, "")
                    + f'exec {python} -S {fakes} {self.root} {tool} "$@"\n'
                )
            os.chmod(path, 0o755)
        os.symlink("/usr/bin/scp", os.path.join(bin_dir, "scp"))
        if self.curl and shutil.which("curl"):
            os.symlink(shutil.which("curl"), os.path.join(bin_dir, "curl"))

    def _start_dropbear(self):
        keys = _keys()
        with open(os.path.join(keys, "client_key.pub")) as f:
            public_key = f.read().strip()
        entry = os.path.join(self.root, "etc", "ssh-session")
        exports = "".join(f"export {k}='{v}'\n" for k, v in sorted(self.env().items()))
        with open(entry, "w") as f:
            f.write(
                "#!/bin/sh\n"
                "# forced command: every session gets the router PATH and ash\n"
                f"{exports}cd {self.root}\n"
                'if [ -z "$SSH_ORIGINAL_COMMAND" ]; then exec ash -l; fi\n'
                'exec ash -c "$SSH_ORIGINAL_COMMAND"\n'
            )
        os.chmod(entry, 0o755)
        ssh_dir = os.path.join(self.root, "home", ".ssh")
        with open(os.path.join(ssh_dir, "authorized_keys"), "w") as f:
            f.write(
                f'command="{entry}",no-port-forwarding,no-agent-forwarding,'
                f"no-X11-forwarding {public_key}\n"
            )
        os.chmod(ssh_dir, 0o700)
        # a reboot keeps the port the server knows
        self.port = self.port or (_free_port(self.host) if not self.netns else 22)
        dropbear = [
            "dropbear",
            "-F",
            "-E",
            "-s",
            "-m",
            "-j",
            "-k",
            "-W",
            "2097152",
            "-r",
            os.path.join(keys, "host_key"),
            "-p",
            f"{self.host}:{self.port}",
            "-P",
            os.path.join(self.root, "dropbear.pid"),
        ]
        command = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mkdir -p -m 700 /root/.ssh && mount --bind "$0" /root/.ssh && exec "$@"',
            ssh_dir,
            *dropbear,
        ]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns.name, *command]
        self._dropbear_log = open(os.path.join(self.root, "dropbear.log"), "w")
        self._dropbear = subprocess.Popen(
            command,
            stdout=self._dropbear_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._dropbear.poll() is not None:
                raise RuntimeError(f"dropbear exited: {self._read_log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"dropbear not listening: {self._read_log()}")

    def mount_tmpfs(self, path, size_kib):
        """A small filesystem of its own at ``path``, as the router sees it.

        dropbear runs in a private mount namespace: mount inside it.
        """
        os.makedirs(path, exist_ok=True)
        self._tmpfs_mounts.append((path, size_kib))
        subprocess.run(
            ["nsenter", "-t", str(self._dropbear.pid), "-m", "mount", "-t", "tmpfs"]
            + ["-o", f"size={size_kib}k", "tmpfs", path],
            check=True,
        )

    def reboot(self, down_seconds=0.0):
        """A power cycle: every process of the router dies (SSH sessions,
        wrappers), its tmpfs mounts come back empty, and dropbear listens
        again on the same address after ``down_seconds``."""
        mounts, self._tmpfs_mounts = self._tmpfs_mounts, []
        self._kill_router_processes()
        time.sleep(down_seconds)
        self._start_dropbear()
        for path, size_kib in mounts:
            self.mount_tmpfs(path, size_kib)

    def go_offline(self):
        """The router drops off the network (its processes die, dropbear
        stops listening) until ``come_back()``."""
        self._kill_router_processes()

    def come_back(self):
        self._start_dropbear()

    def path_on_router(self, path):
        """``path`` as the router's processes see it (inside dropbear's mount
        namespace, where its tmpfs mounts live)."""
        return f"/proc/{self._dropbear.pid}/root{path}"

    def _read_log(self):
        with open(os.path.join(self.root, "dropbear.log")) as f:
            return f.read()

    def _kill_router_processes(self):
        """Kills every process of this router by PID: dropbear and its
        sessions, detached wrappers (whole sessions), fake-tool daemons."""
        if self._dropbear:
            _kill_group(self._dropbear.pid)
            self._dropbear.wait()
            self._dropbear_log.close()
            self._dropbear = None
        for pid_file in glob.glob(
            os.path.join(self.tmp_dir, "**", "*pid"), recursive=True
        ):
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                continue
            if pid > 1 and _mentions(pid, self.root):
                _kill_group(pid)
        try:
            state = self.modem.read()
            for pid in state["bg_pids"] + [state["inhibited_by"] or 0]:
                if pid > 1 and _mentions(pid, self.root):
                    _kill_pid(pid)
        except (OSError, ValueError):
            pass
        # anything else still naming this root on its command line
        for _ in range(50):
            pids = _pids_mentioning(self.root)
            if not pids:
                break
            for pid in pids:
                _kill_pid(pid)
            time.sleep(0.02)


def _kill_pid(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(pid):
    """Kills the process group led by ``pid`` (a session leader started
    detached), or only ``pid`` when it leads no group."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _mentions(pid, root):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return root.encode() in f.read()
    except OSError:
        return False


def _pids_mentioning(root):
    me = os.getpid()
    found = []
    needle = root.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found
