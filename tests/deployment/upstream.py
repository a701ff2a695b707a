"""Read-only access to an upstream repository given as a checkout or as a
bare git directory (the files are read from its HEAD commit)."""

import os
import subprocess
from pathlib import Path


class Upstream:
    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(path)
        self.git = self._git_ok()
        self.bare = (
            self.git and self._run("rev-parse", "--is-bare-repository") == "true"
        )
        self.commit = self._run("rev-parse", "HEAD") if self.git else None
        self.date = self._run("log", "-1", "--format=%cI") if self.git else None

    def _run(self, *args):
        return self._run_raw(*args).strip()

    def _git_ok(self):
        try:
            self._run("rev-parse", "HEAD")
            return True
        except (subprocess.CalledProcessError, FileNotFoundError):
            return False

    def describe(self):
        what = (
            f"commit {self.commit} ({self.date})"
            if self.commit
            else "not a git checkout"
        )
        return f"{self.path}: {what}"

    def read(self, name):
        if self.bare:
            return self._run_raw("show", f"HEAD:{name}")
        return (self.path / name).read_text()

    def _run_raw(self, *args):
        return subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def files(self, prefix=""):
        """Every file under prefix (a directory path, '' for all)."""
        if self.bare:
            listing = self._run_raw(
                "ls-tree", "-r", "--name-only", "HEAD", "--", prefix or "."
            )
            return [line for line in listing.splitlines() if line]
        root = self.path / prefix
        if root.is_file():
            return [prefix]
        return [
            str(p.relative_to(self.path))
            for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(self.path).parts
        ]

    def export(self, prefix, destination):
        """Copies the files under prefix into destination, keeping their
        paths relative to prefix."""
        destination = Path(destination)
        prefix = prefix.rstrip("/")
        for name in self.files(prefix):
            relative = os.path.relpath(name, prefix) if prefix else name
            if relative == ".":
                relative = os.path.basename(name)
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if self.bare:
                content = subprocess.run(
                    ["git", "-C", str(self.path), "show", f"HEAD:{name}"],
                    capture_output=True,
                    check=True,
                ).stdout
                target.write_bytes(content)
            else:
                target.write_bytes((self.path / name).read_bytes())
