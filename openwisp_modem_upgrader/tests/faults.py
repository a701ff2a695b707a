"""Faults injected into real transfers: the SSH session dies mid-image."""

from contextlib import contextmanager
from unittest import mock

from ..upgraders import wrapper


@contextmanager
def cut_transfers(at_fraction, times):
    """The first ``times`` image transfers lose their SSH session once
    ``at_fraction`` of the bytes of that transfer went out (the router keeps
    what arrived, as after a real link loss). Yields the transfers' offsets."""
    real = wrapper.stream_file_to_router
    offsets = []

    def cut(transport, fileobj, size, remote_path, timeout, offset=0, **kwargs):
        offsets.append(offset)
        if len(offsets) > times:
            return real(
                transport, fileobj, size, remote_path, timeout, offset, **kwargs
            )
        cut_at = offset + int((size - offset) * at_fraction)
        on_progress = kwargs.pop("on_progress", None)

        def progress(done, total):
            if on_progress:
                on_progress(done, total)
            if done >= cut_at:
                transport.close()

        return real(
            transport,
            fileobj,
            size,
            remote_path,
            timeout,
            offset,
            on_progress=progress,
            **kwargs,
        )

    with mock.patch.object(wrapper, "stream_file_to_router", cut):
        yield offsets
