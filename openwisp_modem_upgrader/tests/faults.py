"""Faults injected into real transfers: the SSH session dies mid-image."""

import os
import time
from contextlib import contextmanager
from unittest import mock

from ..upgraders import wrapper

# how long the router may take to store what was sent before a cut (a
# generous bound: a busy machine is slow, never this slow)
ARRIVAL_TIMEOUT = 60


@contextmanager
def cut_transfers(at_fraction, times):
    """The first ``times`` image transfers lose their SSH session once
    ``at_fraction`` of the bytes of that transfer reached the router.

    The cut is driven by bytes, not by time: the sender stops at exactly
    that byte, the link drops once the router's file holds every byte sent
    (a stable partial copy, as a real link loss leaves once the router's
    ``cat`` is gone), so each retry's offset is known whatever the machine's
    speed: ``offset + int((size - offset) * at_fraction)``. The router's
    paths are the host's (``EmulatedRouter.tmp_dir``). Yields the transfers'
    offsets."""
    real = wrapper.stream_file_to_router
    offsets = []

    def cut(transport, fileobj, size, remote_path, timeout, offset=0, **kwargs):
        offsets.append(offset)
        if len(offsets) > times:
            return real(
                transport, fileobj, size, remote_path, timeout, offset, **kwargs
            )
        cut_at = offset + max(1, int((size - offset) * at_fraction))
        on_progress = kwargs.pop("on_progress", None)

        def progress(done, total):
            if on_progress:
                on_progress(done, total)
            if done == cut_at:
                wait_until_stored(remote_path, cut_at)
                transport.close()

        return real(
            transport,
            StopsAt(fileobj, cut_at),
            size,
            remote_path,
            timeout,
            offset,
            on_progress=progress,
            **kwargs,
        )

    with mock.patch.object(wrapper, "stream_file_to_router", cut):
        yield offsets


class StopsAt:
    """``fileobj`` whose reads end at byte ``cut_at`` (a short read there),
    so that the sender reports progress at exactly that byte; later reads
    (after the cut) go on as usual."""

    def __init__(self, fileobj, cut_at):
        self.fileobj = fileobj
        self.cut_at = cut_at

    def read(self, size=-1):
        position = self.fileobj.tell()
        if position < self.cut_at and (size < 0 or position + size > self.cut_at):
            size = self.cut_at - position
        return self.fileobj.read(size)

    def __getattr__(self, name):
        return getattr(self.fileobj, name)


def wait_until_stored(path, length):
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if os.path.getsize(path) >= length:
                return
        except OSError:
            pass  # not created yet
        time.sleep(0.01)
    raise AssertionError(
        f"the router did not store {length} bytes of {path} in {ARRIVAL_TIMEOUT}s"
    )
