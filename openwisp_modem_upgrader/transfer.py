"""Streaming SCP of firmware images to a router, at constant memory.

openwisp-controller's ``Ssh.upload()`` wraps the whole file in memory; modem
images reach 1 GB, so this module streams from storage instead, with a
deadline and progress callbacks.
"""

import time

from paramiko.ssh_exception import SSHException
from scp import SCPClient, SCPException

from .exceptions import IrrecoverableModemFailure, RecoverableModemFailure

CHUNK_SIZE = 1024 * 1024
# what the router's scp answers when the target filesystem is full
NO_SPACE = "No space left on device"


class TransferTimeout(RecoverableModemFailure):
    pass


def stream_file_to_router(
    transport, fileobj, size, remote_path, timeout, on_progress=None, mode="0600"
):
    """Sends ``size`` bytes of ``fileobj`` to ``remote_path`` over ``transport``.

    ``on_progress(sent, size)`` is called as chunks go out. Raises
    ``RecoverableModemFailure`` when the link fails or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout

    def progress(_filename, total, sent):
        if time.monotonic() > deadline:
            raise TransferTimeout(f"transfer took longer than {timeout} seconds")
        if on_progress:
            on_progress(sent, total)

    client = None
    try:
        # the socket timeout bounds each read/write; the deadline the whole
        client = SCPClient(
            transport,
            buff_size=CHUNK_SIZE,
            socket_timeout=max(5.0, min(60.0, float(timeout))),
            progress=progress,
        )
        client.putfo(fileobj, remote_path, mode=mode, size=size)
    except RecoverableModemFailure:
        raise
    except (SCPException, SSHException, OSError, EOFError) as error:
        reason = one_line(error)
        if NO_SPACE in reason:
            # sending the image again cannot help: the storage is too small
            raise IrrecoverableModemFailure(
                f"the router ran out of space while receiving the image ({reason}):"
                " free space there or set the remote_dir option to a larger storage"
            ) from error
        raise RecoverableModemFailure(f"transfer interrupted: {reason}") from error
    finally:
        if client is not None:
            _close_quietly(client)


def one_line(error):
    """An error's text on one line (scp's messages end with a newline)."""
    return " ".join(str(error).split())


def _close_quietly(client):
    try:
        client.close()
    except (SSHException, OSError, EOFError):
        pass  # the link is already gone; the caller has the real error


def upload_directory(transport, local_dir, remote_dir, timeout=120):
    """Copies a small directory tree (the device scripts) in one SCP session."""
    client = None
    try:
        client = SCPClient(transport, socket_timeout=float(timeout))
        # scp -r semantics: remote_dir must not exist, it becomes the copy
        client.put(local_dir, remote_path=remote_dir, recursive=True)
    except (SCPException, SSHException, OSError, EOFError) as error:
        raise RecoverableModemFailure(
            f"uploading the scripts failed: {one_line(error)}"
        )
    finally:
        if client is not None:
            _close_quietly(client)
