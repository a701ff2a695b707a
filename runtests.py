#!/usr/bin/env python
"""Runs the Django test suite (and the device-script suite) of the module.

``SAMPLE_APP=1`` runs the suite against the swapped models of the sample app.
Extra arguments are passed to Django's test command.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    args = sys.argv[:1] + ["test"]
    takes_value = {"--parallel", "-v", "--verbosity", "-k", "--tag", "--exclude-tag"}
    labels = [
        arg
        for previous, arg in zip([""] + sys.argv[1:], sys.argv[1:])
        if not arg.startswith("-") and previous not in takes_value
    ]
    if not labels:
        # the same tests run against the swapped models when SAMPLE_APP=1
        args.append("openwisp_modem_upgrader")
        if not os.environ.get("SAMPLE_APP"):
            args.append("device")
    args += sys.argv[1:]
    sys.argv = args
    execute_from_command_line(args)
