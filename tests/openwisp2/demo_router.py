"""Runs one emulated router (dropbear + busybox + fake Telit FN990A) for the
demo until it is terminated, and describes it in a JSON file for demo.py.

Usage: python openwisp2/demo_router.py DESCRIPTION.json
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from device.router import EmulatedRouter  # noqa: E402


def main(description_path):
    # a slower flash than the tests' so the progress bar can be watched
    router = EmulatedRouter(host="127.0.0.2", flash_duration=20, reboot_delay=5)
    router.start()
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    try:
        with open(description_path + ".tmp", "w") as description:
            json.dump(
                {
                    "host": router.host,
                    "port": router.port,
                    "private_key": router.private_key,
                    "modem": router.modem_state(),
                },
                description,
            )
        os.rename(description_path + ".tmp", description_path)
        while True:
            time.sleep(3600)
    finally:
        router.stop()


if __name__ == "__main__":
    main(sys.argv[1])
