"""Runs the demo's emulated routers (dropbear + busybox + fake Telit FN990A)
until terminated, and describes them in a JSON file for demo.py.

Routers (name, loopback address, modem): demo-router (FN990A28 on an old
firmware, the one to upgrade), demo-router-b022 (a newer firmware, with
ModemManager absent: read over AT), demo-router-two-modems (a second modem
at USB 1-1.2, flashed like the first: it is the first matching modem of a
mass upgrade, and "every matching modem" flashes both, one after the
other). demo.py adds a fourth device that is never reachable.

Usage: python openwisp2/demo_router.py DESCRIPTION.json
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from device.router import EmulatedRouter  # noqa: E402

ROUTERS = (
    ("demo-router", {"host": "127.0.0.2"}),
    (
        "demo-router-b022",
        {"host": "127.0.0.3", "modem_manager": False, "firmware": "M0R.010000-B022"},
    ),
    (
        "demo-router-two-modems",
        {
            "host": "127.0.0.4",
            "extra_modems": [{"usb_path": "1-1.2", "firmware": "M0R.010000-B022"}],
        },
    ),
)


def main(description_path):
    routers = []
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    try:
        description = []
        for name, options in ROUTERS:
            # a slower flash than the tests' so the progress bar can be watched
            router = EmulatedRouter(flash_duration=20, reboot_delay=5, **options)
            router.start()
            routers.append(router)
            description.append(
                {
                    "name": name,
                    "host": router.host,
                    "port": router.port,
                    "private_key": router.private_key,
                    "modem": router.modem_state(),
                }
            )
        with open(description_path + ".tmp", "w") as output:
            json.dump(description, output)
        os.rename(description_path + ".tmp", description_path)
        while True:
            time.sleep(3600)
    finally:
        for router in routers:
            router.stop()


if __name__ == "__main__":
    main(sys.argv[1])
