#!/usr/bin/env python
"""The worker's CPU per MiB sent, by SSH cipher.

Usage: .venv/bin/python benchmarks/cipher_benchmark.py [SIZE_MIB]

The worker pays the encryption of every image byte. Streams SIZE_MIB
(default 256) with ``transfer.stream_file_to_router`` over each cipher that
paramiko speaks, to an SSH server in another process (paramiko's own server
mode, which discards the bytes: the emulated router's dropbear offers no
AES-GCM), and prints the client's CPU per MiB (every thread of the process)
and the cipher the module's connection negotiates with that server and with
the emulated router's dropbear.
"""

import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

CIPHERS = ("aes128-ctr", "aes256-ctr", "aes128-gcm@openssh.com")


def serve(port_file):
    """An SSH server that accepts any key and swallows what it is sent."""
    import paramiko

    host_key = paramiko.Ed25519Key.from_private_key_file(_host_key())

    class Server(paramiko.ServerInterface):
        def check_auth_publickey(self, username, key):
            return paramiko.AUTH_SUCCESSFUL

        def get_allowed_auths(self, username):
            return "publickey"

        def check_channel_request(self, kind, chanid):
            return paramiko.OPEN_SUCCEEDED

        def check_channel_exec_request(self, channel, command):
            threading.Thread(target=swallow, args=(channel,), daemon=True).start()
            return True

    def swallow(channel):
        while channel.recv(1 << 20):
            pass
        channel.send_exit_status(0)
        channel.close()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    with open(port_file, "w") as f:
        f.write(str(listener.getsockname()[1]))
    while True:
        sock, _ = listener.accept()
        transport = paramiko.Transport(sock)
        transport.add_server_key(host_key)
        transport.start_server(server=Server())


def _host_key():
    from device.router import _keys

    path = os.path.join(_keys(), "paramiko_host_key")
    if not os.path.exists(path):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True
        )
    return path


def connect(host, port, key_path, cipher=None):
    import paramiko

    from openwisp_modem_upgrader.ssh import PreferredCipherTransport

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    options = {"transport_factory": PreferredCipherTransport}
    if cipher:
        disabled = [c for c in paramiko.Transport._preferred_ciphers if c != cipher]
        options = {"disabled_algorithms": {"ciphers": disabled}}
    client.connect(
        host,
        port=port,
        username="root",
        key_filename=key_path,
        look_for_keys=False,
        allow_agent=False,
        **options,
    )
    return client


def main(size_mib):
    import tempfile

    from device.router import EmulatedRouter, _keys

    from openwisp_modem_upgrader.transfer import stream_file_to_router

    key_path = os.path.join(_keys(), "client_key")
    _host_key()
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        server = subprocess.Popen([sys.executable, __file__, "--serve", port_file])
        try:
            while not os.path.exists(port_file) or not open(port_file).read():
                time.sleep(0.05)
            port = int(open(port_file).read())
            image = os.path.join(tmp, "image.bin")
            with open(image, "wb") as f:
                chunk = os.urandom(1 << 20)
                for _ in range(size_mib):
                    f.write(chunk)
            size = size_mib << 20
            client = connect("127.0.0.1", port, key_path)
            chosen = client.get_transport().local_cipher
            client.close()
            print(f"the module's connection negotiates {chosen} with a GCM server")
            print(f"{'cipher':<24} {'MAC':<16} {'client CPU ms/MiB':>18} {'MB/s':>6}")
            for cipher in CIPHERS:
                for _ in range(2):
                    client = connect("127.0.0.1", port, key_path, cipher)
                    transport = client.get_transport()
                    cpu, wall = time.process_time(), time.monotonic()
                    with open(image, "rb") as f:
                        stream_file_to_router(transport, f, size, "/dev/null", 600)
                    cpu = time.process_time() - cpu
                    wall = time.monotonic() - wall
                    print(
                        f"{transport.local_cipher:<24} "
                        f"{'(AEAD)' if 'gcm' in cipher else transport.local_mac:<16} "
                        f"{cpu / size_mib * 1000:>18.2f} {size / wall / 1e6:>6.0f}"
                    )
                    client.close()
        finally:
            server.kill()
            server.wait()
    with EmulatedRouter(modem_manager=False, curl=False) as router:
        client = connect(router.host, router.port, router.private_key_path)
        transport = client.get_transport()
        print(
            f"with the emulated router's dropbear: {transport.local_cipher} "
            f"+ {transport.local_mac}"
        )
        client.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
