"""Sends firmware images to a router: streamed, resumable, rate-capped.

openwisp-controller's ``Ssh.upload()`` wraps the whole file in memory; modem
images reach 1 GB, so this module streams from storage at constant memory.
The image usually travels over a metered cellular link that drops, so a
transfer continues from what the router already holds (``plan_transfer``)
and can be capped in bytes per second. The bytes go over one SSH exec
channel into busybox ``cat``: SCP cannot append to a file.
"""

import hashlib
import shlex
import socket
import time
from dataclasses import dataclass

from paramiko.ssh_exception import SSHException
from scp import SCPClient, SCPException

from .exceptions import IrrecoverableModemFailure, RecoverableModemFailure

CHUNK_SIZE = 1024 * 1024
# what busybox cat (or scp) answers when the target filesystem is full
NO_SPACE = "No space left on device"
# exit code of the append command when the partial file changed under it
EXIT_PARTIAL_CHANGED = 3


class TransferInterrupted(RecoverableModemFailure):
    """The transfer stopped midway; ``router_holds``: bytes of the image the
    router surely holds (more than when this attempt began), or None."""

    def __init__(self, message, router_holds=None):
        super().__init__(message)
        self.router_holds = router_holds


class TransferTimeout(TransferInterrupted):
    pass


def transfer_progressed(error, confirmed_before):
    """Whether a failed attempt moved the image forward: its transfer left
    the router more of the image than any attempt before (a link drop,
    not a failure: the engine does not count the attempt)."""
    router_holds = getattr(error, "router_holds", None)
    return router_holds is not None and router_holds > confirmed_before


@dataclass(frozen=True)
class RouterCopy:
    """What the router holds at the image's path: its size and sha256."""

    size: int = 0
    sha256: str = ""


@dataclass(frozen=True)
class TransferPlan:
    offset: int  # first byte to send
    reason: str  # why, for the operation's log

    @property
    def skip(self):
        return self.reason == "complete"


def plan_transfer(copy, fileobj, size, sha256):
    """Where to start sending: after a prefix the router holds intact.

    ``copy`` is the router's file. A complete copy with the image's sha256
    needs nothing; a shorter one whose sha256 equals that of the same prefix
    of the image (read from ``fileobj``, streamed) is continued; anything
    else is sent again from the start.
    """
    if copy.size == size and copy.sha256 == sha256:
        return TransferPlan(size, "complete")
    if 0 < copy.size < size and copy.sha256 == prefix_sha256(fileobj, copy.size):
        return TransferPlan(copy.size, "resume")
    if copy.size:
        return TransferPlan(0, "mismatch")
    return TransferPlan(0, "absent")


def prefix_sha256(fileobj, length):
    """sha256 of the first ``length`` bytes of ``fileobj``, at constant memory."""
    fileobj.seek(0)
    digest = hashlib.sha256()
    left = length
    while left > 0:
        chunk = fileobj.read(min(CHUNK_SIZE, left))
        if not chunk:
            return ""  # the local file is shorter: no prefix can match
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def probe_command(remote_path):
    """Prints the router copy's size, then (if any) its sha256: one round trip.

    sha256 of a partial copy is the sha256 of the image's prefix of that size.
    """
    path = shlex.quote(remote_path)
    return (
        f"if [ -f {path} ]; then wc -c < {path}; sha256sum < {path};" " else echo 0; fi"
    )


def parse_probe(output):
    words = output.split()
    if not words or not words[0].isdigit():
        raise RecoverableModemFailure(
            f"unexpected answer reading the image on the router: {output[-200:]!r}"
        )
    size = int(words[0])
    sha256 = words[1] if size and len(words) > 1 else ""
    return RouterCopy(size, sha256.lower())


def stream_file_to_router(
    transport,
    fileobj,
    size,
    remote_path,
    timeout,
    offset=0,
    rate_limit=0,
    on_progress=None,
):
    """Sends bytes ``offset..size`` of ``fileobj`` to ``remote_path``.

    From offset 0 the router's file is replaced; from a later offset it is
    appended to, only if it still holds exactly ``offset`` bytes. At most
    ``rate_limit`` bytes per second (0: unlimited). ``on_progress(done,
    size)`` is called as each chunk goes out, so the caller knows what was
    sent even when the link fails. Raises ``RecoverableModemFailure`` when
    the link fails or ``timeout`` seconds pass, ``IrrecoverableModemFailure``
    when the router's storage is full.
    """
    deadline = time.monotonic() + timeout
    path = shlex.quote(remote_path)
    if offset:
        command = (
            f'[ "$(wc -c < {path})" = {int(offset)} ] || exit {EXIT_PARTIAL_CHANGED};'
            f" exec cat >> {path}"
        )
    else:
        command = f"umask 077; exec cat > {path}"
    throttle = RateLimiter(rate_limit)
    # at a cap, chunks of a quarter second keep the rate smooth
    chunk_size = (
        min(CHUNK_SIZE, max(4096, rate_limit // 4)) if rate_limit else CHUNK_SIZE
    )
    channel = None
    done = offset
    # bytes sent but not acknowledged are at most the router's SSH window:
    # what lies before is surely on the router (a link drop loses the rest)
    window = [size]

    def router_holds():
        held = done - window[0]
        return held if held > offset else None

    try:
        channel = transport.open_session(timeout=30)
        window[0] = channel.out_window_size
        # the socket timeout bounds each write; the deadline the whole
        channel.settimeout(max(5.0, min(60.0, float(timeout))))
        channel.exec_command(command)
        fileobj.seek(offset)
        while done < size:
            chunk = fileobj.read(min(chunk_size, size - done))
            if not chunk:
                raise IrrecoverableModemFailure(
                    f"the image file ends at {done} bytes, {size} expected"
                )
            channel.sendall(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, size)
            if time.monotonic() > deadline:
                raise TransferTimeout(
                    f"transfer took longer than {timeout} seconds", router_holds()
                )
            throttle.wait(done - offset)
        channel.shutdown_write()
        code = _exit_status(channel, deadline, router_holds)
        errors = one_line(_read_stderr(channel)) if code else ""
    except (SSHException, OSError, EOFError, socket.timeout) as error:
        errors = one_line(_read_stderr(channel)) if channel is not None else ""
        if NO_SPACE in errors:
            raise _out_of_space(errors) from error
        reason = one_line(error) or type(error).__name__
        raise TransferInterrupted(
            f"transfer interrupted: {reason}", router_holds()
        ) from error
    finally:
        if channel is not None:
            channel.close()
    if code:
        if NO_SPACE in errors:
            raise _out_of_space(errors)
        if code == EXIT_PARTIAL_CHANGED and offset:
            raise RecoverableModemFailure(
                "transfer interrupted: the partial image on the router changed"
            )
        raise RecoverableModemFailure(
            f"transfer interrupted: the router could not store the image "
            f"(exit {code}) {errors}".strip()
        )


def _out_of_space(errors):
    # sending the image again cannot help: the storage is too small
    return IrrecoverableModemFailure(
        f"the router ran out of space while receiving the image ({errors}):"
        " free space there or set the remote_dir option to a larger storage"
    )


def _exit_status(channel, deadline, router_holds):
    while not channel.exit_status_ready():
        if time.monotonic() > deadline:
            raise TransferTimeout(
                "the router did not confirm the image in time", router_holds()
            )
        time.sleep(0.05)
    return channel.recv_exit_status()


def _read_stderr(channel):
    """What the router's command said on stderr, as far as it arrived."""
    try:
        if channel.recv_stderr_ready():
            return channel.recv_stderr(4096).decode(errors="replace")
    except (SSHException, OSError, EOFError, socket.timeout):
        pass  # the link is gone: there is nothing more to read
    return ""


class RateLimiter:
    """Sleeps so that bytes sent since creation stay under ``rate`` per second."""

    def __init__(self, rate):
        self.rate = rate
        self.started = time.monotonic()

    def wait(self, sent):
        if not self.rate:
            return
        ahead = sent / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


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
