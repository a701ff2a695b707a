"""The cipher the module's SSH connections negotiate (issue 20)."""

import socket
import threading

import paramiko
from device.router import EmulatedRouter
from django.test import SimpleTestCase, TestCase

from openwisp_controller.connection.exceptions import NoWorkingDeviceConnectionError

from ..ssh import PreferredCipherTransport, working_connection
from . import TestModemUpgraderMixin

GCM = "aes128-gcm@openssh.com"


def negotiate(client_transport_class):
    """The cipher a client transport of ``client_transport_class`` and a
    paramiko server offering every cipher it has (AES-GCM included) agree
    on: key exchange only, over a socket pair."""
    client_sock, server_sock = socket.socketpair()
    server = paramiko.Transport(server_sock)
    server.add_server_key(paramiko.ECDSAKey.generate())
    started = threading.Thread(
        target=server.start_server, kwargs={"server": paramiko.ServerInterface()}
    )
    started.start()
    client = client_transport_class(client_sock)
    try:
        client.start_client(timeout=60)
        return client.local_cipher, client.remote_cipher
    finally:
        client.close()
        started.join(60)
        server.close()


class TestPreferredCipher(SimpleTestCase):
    def test_gcm_chosen_when_the_server_offers_it(self):
        self.assertEqual(negotiate(PreferredCipherTransport), (GCM, GCM))

    def test_paramiko_alone_would_choose_ctr(self):
        # the preference is what changes the choice
        self.assertEqual(negotiate(paramiko.Transport), ("aes128-ctr", "aes128-ctr"))

    def test_every_paramiko_cipher_still_offered(self):
        self.assertEqual(
            sorted(PreferredCipherTransport._preferred_ciphers),
            sorted(paramiko.Transport._preferred_ciphers),
        )


class TestWorkingConnection(TestModemUpgraderMixin, TestCase):
    tags = {"router"}

    def setUp(self):
        super().setUp()
        self.router = EmulatedRouter(modem_manager=False)
        self.router.start()
        self.addCleanup(self.router.stop)
        org = self._get_org()
        self.device = self._create_device(
            organization=org,
            management_ip=self.router.host,
            last_ip=self.router.host,
        )
        self._create_config(device=self.device)
        self.credentials = self._create_credentials(
            organization=org,
            params={
                "username": "root",
                "key": self.router.private_key,
                "port": self.router.port,
            },
        )
        self._create_device_connection(device=self.device, credentials=self.credentials)

    def test_router_without_gcm_falls_back_to_ctr(self):
        # dropbear (OpenWrt's SSH server) offers no AES-GCM by default
        connection = working_connection(self.device)
        self.addCleanup(connection.disconnect)
        transport = connection.connector_instance.shell.get_transport()
        self.assertIsInstance(transport, PreferredCipherTransport)
        self.assertEqual(transport.local_cipher, "aes128-ctr")
        output, code = connection.connector_instance.exec_command(
            "echo ready", raise_unexpected_exit=False
        )
        self.assertEqual((output.strip(), code), ("ready", 0))
        connection.refresh_from_db()
        self.assertTrue(connection.is_working)

    def test_no_working_connection_raises_like_openwisp_controller(self):
        self.router.stop()
        with self.assertRaises(NoWorkingDeviceConnectionError) as raised:
            working_connection(self.device)
        self.assertEqual(raised.exception.connection.device, self.device)
        self.assertFalse(raised.exception.connection.is_working)
