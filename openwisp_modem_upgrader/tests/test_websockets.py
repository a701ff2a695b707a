"""Live progress consumers: authorization, deltas, coalescing."""

import json
from unittest import mock

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.contrib.auth.models import AnonymousUser
from django.test import Client, TransactionTestCase
from django.urls import reverse

from openwisp_users.migrations import create_default_groups
from openwisp_users.tests.utils import TestMultitenantAdminMixin

from ..base.models import OperationStatus
from ..migrations import assign_default_permissions
from ..routing import get_routes
from ..upgrade import finish_operation, mark_in_progress, record_progress
from ..websockets import ModemUpgradeConsumer
from . import (
    ModemBatchUpgradeOperation,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)

application = URLRouter(get_routes())


class TestModemUpgradeWebsockets(
    TestModemUpgraderMixin, TestMultitenantAdminMixin, TransactionTestCase
):
    """On TransactionTestCase: channels closes the test's database connection
    (PostgreSQL), which a TestCase's transaction would not survive."""

    def setUp(self):
        # earlier flushes may have dropped what data migrations created
        create_default_groups(apps, None)
        assign_default_permissions(
            apps, None, app_label=ModemUpgradeOperation._meta.app_label
        )
        self.org = self._get_org()
        self.device = self._create_modem_device()
        self.image = self._create_image()
        self.operation = ModemUpgradeOperation.objects.create(
            device=self.device, image=self.image
        )
        mark_in_progress(self.operation.pk)
        patcher = mock.patch.object(ModemUpgradeConsumer, "interval", 0.05)
        patcher.start()
        self.addCleanup(patcher.stop)

    def device_path(self):
        return f"/ws/modem-upgrader/device/{self.device.pk}/"

    def run_async(self, coroutine_function):
        return async_to_sync(coroutine_function)()

    async def _connect(self, user, path):
        # timeouts of 30s (channels' default: 1s) where a message is
        # expected: on a busy machine the consumer may take longer than 1s
        communicator = WebsocketCommunicator(application, path)
        communicator.scope["user"] = user
        connected, _ = await communicator.connect(timeout=30)
        return communicator, connected

    def assert_refused(self, user, path):
        async def check():
            communicator, connected = await self._connect(user, path)
            self.assertFalse(connected)
            await communicator.disconnect(timeout=30)

        self.run_async(check)

    def test_authorization(self):
        other = self._create_org(name="other", slug="other")
        self.assert_refused(AnonymousUser(), self.device_path())
        self.assert_refused(
            self._create_administrator(organizations=[other]), self.device_path()
        )
        self.assert_refused(
            self._create_user(username="plain", email="p@x.com"), self.device_path()
        )
        self.assert_refused(
            self._get_admin(),
            "/ws/modem-upgrader/device/"
            + "0" * 8
            + "-0000-0000-0000-"
            + "0" * 12
            + "/",
        )

        async def allowed(user):
            communicator, connected = await self._connect(user, self.device_path())
            self.assertTrue(connected)
            await communicator.disconnect(timeout=30)

        operator = self._create_operator(organizations=[self.org])
        self.run_async(lambda: allowed(operator))

    def test_log_times_in_the_local_time_zone(self):
        record_progress(
            self.operation.pk, 10, "trying again (waiting until 2026-12-03 05:40 UTC)"
        )
        admin = self._get_admin()

        async def scenario():
            communicator, _ = await self._connect(admin, self.device_path())
            first = await communicator.receive_json_from(timeout=30)
            [change] = first["operations"]
            self.assertIn("(waiting until 2026-12-03 06:40 CET)", change["log"])
            self.assertNotIn("UTC", change["log"])
            await communicator.disconnect(timeout=30)

        self.run_async(scenario)
        self.operation.refresh_from_db()
        self.assertIn("2026-12-03 05:40 UTC", self.operation.log)

    def test_initial_state_then_deltas_only(self):
        record_progress(self.operation.pk, 10, "transfer started")
        admin = self._get_admin()

        async def scenario():
            communicator, _ = await self._connect(admin, self.device_path())
            first = await communicator.receive_json_from(timeout=30)
            [change] = first["operations"]
            self.assertEqual(change["id"], str(self.operation.pk))
            self.assertEqual(change["progress"], 10)
            self.assertEqual(change["log_offset"], 0)
            self.assertIn("transfer started", change["log"])
            self.assertTrue(change["cancellable"])
            log_length = len(change["log"])
            # nothing changed: nothing sent
            self.assertTrue(await communicator.receive_nothing(timeout=0.3))
            await record(35, "flashing")
            second = await communicator.receive_json_from(timeout=30)
            [change] = second["operations"]
            self.assertEqual(change["progress"], 35)
            self.assertEqual(change["log_offset"], log_length)
            self.assertEqual(change["log"], "flashing\n")
            await finish()
            third = await communicator.receive_json_from(timeout=30)
            [change] = third["operations"]
            self.assertEqual(change["status"], OperationStatus.SUCCESS)
            self.assertEqual(change["progress"], 100)
            self.assertFalse(change["cancellable"])
            self.assertIsNotNone(change["finished_at"])
            await communicator.disconnect(timeout=30)

        from channels.db import database_sync_to_async

        record = database_sync_to_async(
            lambda progress, message: record_progress(
                self.operation.pk, progress, message
            )
        )
        finish = database_sync_to_async(
            lambda: finish_operation(self.operation.pk, OperationStatus.SUCCESS)
        )
        self.run_async(scenario)

    def test_chatty_device_coalesced(self):
        admin = self._get_admin()
        from channels.db import database_sync_to_async

        @database_sync_to_async
        def burst():
            for progress in range(20, 40):
                record_progress(self.operation.pk, progress, f"line {progress}")

        async def scenario():
            with mock.patch.object(ModemUpgradeConsumer, "interval", 0.5):
                communicator, _ = await self._connect(admin, self.device_path())
                await communicator.receive_json_from(timeout=30)
                await burst()
                message = await communicator.receive_json_from(timeout=30)
                [change] = message["operations"]
                # twenty updates, one message with the latest state
                self.assertEqual(change["progress"], 39)
                self.assertEqual(change["log"].count("line"), 20)
                self.assertTrue(await communicator.receive_nothing(timeout=0.7))
                await communicator.disconnect(timeout=30)

        self.run_async(scenario)

    def test_device_reports_coalesced_without_channel_layer_messages(self):
        """Routers' HTTP reports publish nothing on the channel layer; an
        open page gets their effect in one message per interval."""
        admin = self._get_admin()
        url = reverse(
            "modem_upgrader:api_upgrade_operation_detail", args=[self.operation.pk]
        )
        url = f"{url}?key={self.device.key}"
        layer_class = type(get_channel_layer())
        published = []
        original_send, original_group_send = (
            layer_class.send,
            layer_class.group_send,
        )

        async def send(layer, channel, message):
            published.append(channel)
            return await original_send(layer, channel, message)

        async def group_send(layer, group, message):
            published.append(group)
            return await original_group_send(layer, group, message)

        @database_sync_to_async
        def reports():
            client = Client()
            for seq in range(1, 31):
                body = {
                    "seq": seq,
                    "progress_percent": 40 + seq,
                    "status": "in-progress",
                    "log": f"report {seq}",
                }
                response = client.post(url, json.dumps(body), "application/json")
                self.assertEqual(response.status_code, 200, response.content)

        async def scenario():
            communicator, _ = await self._connect(admin, self.device_path())
            await communicator.receive_json_from(timeout=30)
            await reports()
            message = await communicator.receive_json_from(timeout=30)
            [change] = message["operations"]
            # thirty reports, one message with the latest state
            self.assertEqual(change["progress"], 70)
            self.assertEqual(change["log"].count("report"), 30)
            self.assertTrue(await communicator.receive_nothing(timeout=1))
            await communicator.disconnect(timeout=30)

        with mock.patch.object(
            ModemUpgradeConsumer, "interval", 1.5
        ), mock.patch.multiple(layer_class, send=send, group_send=group_send):
            self.run_async(scenario)
        self.assertEqual(published, [])

    def test_batch_summary_and_operations(self):
        batch = ModemBatchUpgradeOperation.objects.create(
            build=self.image.build, organization=self.org, status="in-progress"
        )
        ModemUpgradeOperation.objects.filter(pk=self.operation.pk).update(batch=batch)
        admin = self._get_admin()
        path = f"/ws/modem-upgrader/batch/{batch.pk}/"
        other = self._create_org(name="other", slug="other")
        self.assert_refused(self._create_administrator(organizations=[other]), path)
        from channels.db import database_sync_to_async

        finish = database_sync_to_async(
            lambda: finish_operation(self.operation.pk, OperationStatus.FAILED, "x")
        )

        async def scenario():
            communicator, _ = await self._connect(admin, path)
            first = await communicator.receive_json_from(timeout=30)
            self.assertEqual(first["batch"]["summary"]["total"], 1)
            self.assertEqual(first["batch"]["summary"]["done"], 0)
            self.assertNotIn("log", first["operations"][0])
            # the page adds rows for operations it did not draw (fan-out)
            self.assertEqual(first["operations"][0]["device"], self.device.name)
            await finish()
            second = await communicator.receive_json_from(timeout=30)
            self.assertEqual(second["batch"]["status"], OperationStatus.FAILED)
            self.assertTrue(second["batch"]["finished"])
            counts = {
                s["value"]: s["count"] for s in second["batch"]["summary"]["statuses"]
            }
            self.assertEqual(counts["failed"], 1)
            self.assertEqual(second["operations"][0]["status"], "failed")
            await communicator.disconnect(timeout=30)

        self.run_async(scenario)

    def test_batch_rollout_box_and_buttons_follow_the_state(self):
        """The go-ahead button, the rollout's state, reason and counts reach
        an open batch page when the canary wave ends, without a reload."""
        from ..base.rollout import RolloutState

        batch = ModemBatchUpgradeOperation.objects.create(
            build=self.image.build,
            organization=self.org,
            status="in-progress",
            canary_size=1,
            confirm_waves=True,
        )
        ModemUpgradeOperation.objects.filter(pk=self.operation.pk).update(
            batch=batch, wave=1
        )
        path = f"/ws/modem-upgrader/batch/{batch.pk}/"
        operator = self._create_operator(organizations=[self.org])

        @database_sync_to_async
        def canary_done():
            ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(
                rollout_state=RolloutState.AWAITING,
                rollout_reason="wave 1 finished: waiting for an operator's go-ahead",
            )

        async def scenario(user, may_act):
            communicator, _ = await self._connect(user, path)
            first = (await communicator.receive_json_from(timeout=30))["batch"]
            self.assertEqual(first["rollout"]["state"], "running")
            self.assertEqual(first["rollout"]["in_flight"], 1)
            self.assertEqual(first["rollout"]["waves"], 1)
            self.assertEqual(first["can_pause"], may_act)
            self.assertIsNone(first["resume_label"])
            self.assertEqual(first["summary"]["bytes_sent_label"], "0\xa0bytes")
            await canary_done()
            second = (await communicator.receive_json_from(timeout=30))["batch"]
            self.assertEqual(second["rollout"]["state"], "awaiting-go-ahead")
            self.assertIn("go-ahead", second["rollout"]["reason"])
            self.assertEqual(
                second["resume_label"], "Give the go-ahead" if may_act else None
            )
            await communicator.disconnect(timeout=30)

        self.run_async(lambda: scenario(self._get_admin(), True))
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(
            rollout_state=RolloutState.RUNNING
        )
        # an operator may view but not steer a rollout: no buttons for them
        self.run_async(lambda: scenario(operator, False))
