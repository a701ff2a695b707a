"""A network namespace holding an emulated router, linked to the host by a
veth pair, so that a fault can take the router's uplink down.

Addresses are 10.213.<n>.1 (host end) and 10.213.<n>.2 (router end) on a
/30 that this run assigns itself; nothing else is routed there. Needs root.
"""

import fcntl
import itertools
import os
import subprocess
import tempfile

_counter = itertools.count()


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def available():
    """True when network namespaces can be created here."""
    probe = f"emuprobe{os.getpid()}"
    if _ip("netns", "add", probe, check=False).returncode:
        return False
    _ip("netns", "del", probe, check=False)
    return True


class Netns:
    def __init__(self, name, host_if, inner_if, subnet):
        self.name = name
        self.host_if = host_if
        self.inner = inner_if
        self.host_address = f"10.213.{subnet}.1"
        self.inner_address = f"10.213.{subnet}.2"

    @classmethod
    def create(cls):
        # suites in other processes create namespaces at the same time: the
        # choice of a subnet and its address are made under one lock
        with open(
            os.path.join(tempfile.gettempdir(), "emurouter-netns.lock"), "w"
        ) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return cls._create()

    @classmethod
    def _create(cls):
        used = _ip("-o", "addr").stdout
        tag = f"{os.getpid() % 10000}x{next(_counter)}"
        # every one of the 250 subnets is a candidate (a fleet benchmark
        # creates 200 namespaces), starting from one of this process's own
        first = os.getpid() + next(_counter)
        for step in range(250):
            subnet = (first + step) % 250 + 1
            if f"10.213.{subnet}." not in used:
                break
        else:
            raise RuntimeError("no free 10.213.x.0/30 subnet")
        netns = cls(f"emurouter{tag}", f"emh{tag}", f"emi{tag}", subnet)
        try:
            netns._build()
        except BaseException:
            netns.delete()
            raise
        return netns

    def _build(self):
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.inner)
        _ip("link", "set", self.inner, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        _ip(
            "-n",
            self.name,
            "addr",
            "add",
            f"{self.inner_address}/30",
            "dev",
            self.inner,
        )
        _ip("-n", self.name, "link", "set", self.inner, "up")

    def set_uplink(self, up):
        _ip("-n", self.name, "link", "set", self.inner, "up" if up else "down")

    def describe(self):
        return {"name": self.name, "inner": self.inner, "host_if": self.host_if}

    def delete(self):
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.host_if, check=False)
