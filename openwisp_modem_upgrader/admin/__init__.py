"""Admin pages: the firmware catalogue and the upgrade operations."""

from . import catalogue, operations  # noqa: F401
