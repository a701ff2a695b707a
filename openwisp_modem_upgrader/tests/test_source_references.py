"""The package's comments and docstrings name only files that exist: a
reference to a removed or renamed module sends a reader nowhere."""

import os
import re

from django.test import SimpleTestCase

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPOSITORY = os.path.dirname(PACKAGE)
FILE_NAME = re.compile(r"\b[A-Za-z0-9_][A-Za-z0-9_/-]*\.(?:py|sh|rst)\b")
# dotted Python paths that look like file names
NOT_FILES = {"django.utils.html"}


def _repository_file_names():
    names = set()
    for root, dirs, files in os.walk(REPOSITORY):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "node_modules"]
        names.update(files)
    return names


def _package_sources():
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "migrations"]
        for name in files:
            path = os.path.join(root, name)
            # this module names missing files on purpose
            if name.endswith(
                (".py", ".sh", ".html", ".js")
            ) and path != os.path.abspath(__file__):
                yield path


class TestSourceReferences(SimpleTestCase):
    def test_every_file_named_in_the_package_exists(self):
        existing = _repository_file_names()
        missing = []
        for path in _package_sources():
            with open(path, encoding="utf-8") as source:
                text = source.read()
            for name in set(FILE_NAME.findall(text)) - NOT_FILES:
                if os.path.basename(name) not in existing:
                    missing.append(f"{os.path.relpath(path, REPOSITORY)}: {name}")
        self.assertEqual(missing, [])

    def test_a_missing_file_is_found(self):
        # the check itself sees a reference to a file that does not exist
        names = FILE_NAME.findall("see ``upgraders/gone_module.py`` and run.sh")
        self.assertEqual(names, ["upgraders/gone_module.py", "run.sh"])
        self.assertNotIn("gone_module.py", _repository_file_names())
