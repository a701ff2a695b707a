"""Commands on a router over its OpenWISP ``DeviceConnection``.

The connection may drop at any time (the modem being flashed can be the
router's only uplink): every failure is turned into a
``RecoverableModemFailure`` and ``reconnect()`` opens a new session.
"""

import shlex
import socket
import time

import swapper
from paramiko import Transport
from paramiko.ssh_exception import SSHException

from openwisp_controller.connection.connectors.exceptions import (
    CommandFailedException,
    CommandTimeoutException,
)
from openwisp_controller.connection.exceptions import NoWorkingDeviceConnectionError

from .exceptions import RecoverableModemFailure, RouterUnreachable

SSH_CONNECTOR = "openwisp_controller.connection.connectors.ssh.Ssh"
# AEAD first: AES-GCM costs the worker less CPU per byte than AES-CTR with
# a separate HMAC (benchmarks/cipher_benchmark.py); a router that offers no
# GCM (OpenWrt's dropbear by default) negotiates aes128-ctr as before
CHEAPEST_CIPHERS_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


class PreferredCipherTransport(Transport):
    """paramiko's transport with the cheapest strong ciphers first."""

    _preferred_ciphers = CHEAPEST_CIPHERS_FIRST + tuple(
        name
        for name in Transport._preferred_ciphers
        if name not in CHEAPEST_CIPHERS_FIRST
    )


def working_connection(device):
    """``DeviceConnection.get_working_connection(device)``, each connection
    negotiating ``PreferredCipherTransport``'s order (openwisp-controller
    hands its connector's parameters to paramiko's ``SSHClient.connect``).
    Raises ``NoWorkingDeviceConnectionError`` like it."""
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")
    candidates = DeviceConnection.objects.filter(
        device=device, enabled=True, credentials__connector=SSH_CONNECTOR
    ).order_by("-is_working")
    device_connection = None
    for device_connection in candidates.iterator():
        params = device_connection.connector_instance.params
        params["transport_factory"] = PreferredCipherTransport
        if device_connection.connect():
            return device_connection
    raise NoWorkingDeviceConnectionError(connection=device_connection)


class RouterShell:
    def __init__(self, device_connection):
        self.device_connection = device_connection

    @property
    def connector(self):
        return self.device_connection.connector_instance

    @property
    def transport(self):
        transport = self.connector.shell.get_transport()
        if transport is None or not transport.is_active():
            raise RecoverableModemFailure("the SSH session to the router is closed")
        return transport

    def is_connected(self):
        try:
            self.transport
        except (RecoverableModemFailure, AttributeError):
            return False  # closed, or never opened
        return True

    def reconnect(self):
        self.close()
        try:
            self.connector.connect()
        except Exception as error:
            raise RouterUnreachable(f"cannot reach the router: {error}")

    def close(self):
        try:
            self.connector.disconnect()
        except Exception:  # closing a dead session must never fail an upgrade
            pass

    def run(self, argv, timeout=30, exit_codes=(0,)):
        """Runs ``argv`` (every item quoted) and returns ``(output, exit code)``."""
        command = " ".join(shlex.quote(str(arg)) for arg in argv)
        return self.run_raw(command, timeout=timeout, exit_codes=exit_codes)

    def run_raw(self, command, timeout=30, exit_codes=(0,)):
        """Runs a command line built only from quoted or constant parts."""
        try:
            output, code = self.connector.exec_command(
                command, timeout=timeout, raise_unexpected_exit=False
            )
        except (CommandTimeoutException, socket.timeout) as error:
            raise RecoverableModemFailure(f"command timed out: {error}") from error
        except (SSHException, OSError, EOFError, CommandFailedException) as error:
            raise RecoverableModemFailure(f"SSH command failed: {error}") from error
        if exit_codes is not None and code not in exit_codes:
            raise CommandExitError(command, code, output)
        return output, code

    def run_script(self, script, timeout=60, max_output=1024 * 1024):
        """Runs ``script`` with ``sh -s`` (sent on stdin, nothing uploaded).

        One command in the open session: no SCP, no extra round trip.
        Returns ``(stdout, exit code)``; raises ``RecoverableModemFailure``
        on SSH errors and when ``timeout`` seconds pass in total.
        """
        deadline = time.monotonic() + timeout
        try:
            channel = self.transport.open_session(timeout=timeout)
            channel.settimeout(timeout)
            channel.exec_command("sh -s")
            channel.sendall(script.encode())
            channel.shutdown_write()
            chunks, size = [], 0
            while True:
                channel.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = channel.recv(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_output:
                    raise RecoverableModemFailure(
                        f"the router's answer exceeds {max_output} bytes"
                    )
                chunks.append(chunk)
            if not channel.status_event.wait(max(deadline - time.monotonic(), 0.01)):
                raise socket.timeout()
            code = channel.exit_status
            channel.close()
        except socket.timeout as error:
            raise CommandTimeout(f"command timed out after {timeout}s") from error
        except (SSHException, OSError, EOFError) as error:
            raise RecoverableModemFailure(f"SSH command failed: {error}") from error
        return b"".join(chunks).decode("utf-8", "replace"), code


class CommandTimeout(RecoverableModemFailure):
    pass


class CommandExitError(RecoverableModemFailure):
    def __init__(self, command, code, output):
        self.code = code
        self.output = output
        super().__init__(f"exit code {code}: {output.strip()[-500:]}")
