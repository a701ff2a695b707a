"""The two Celery queues of docs/developer/deployment.rst, as the test
project configures them: the project routes the module's tasks by name to
``modem_upgrader`` (image transfers, detection), and the engine's short
tasks name the control queue themselves, so they never wait behind a
transfer whatever the project's routes."""

from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.test import SimpleTestCase, TestCase
from django.utils import timezone

# registers the tasks, as a worker's autodiscovery does
from openwisp_controller.connection import tasks as controller_tasks  # noqa: F401

from .. import settings as app_settings
from .. import tasks

CONTROL_TASKS = {
    "openwisp_modem_upgrader.drive_modem_upgrades",
    "openwisp_modem_upgrader.fail_stuck_operations",
    "openwisp_modem_upgrader.dispatch_modem_upgrades",
    "openwisp_modem_upgrader.follow_modem_upgrade",
    "openwisp_modem_upgrader.fan_out_batch",
}


def published_options(task_name, **options):
    """The options a message of ``task_name`` is sent with: the task's own
    (queue, expiry) over the project's routes, as ``apply_async`` merges
    them."""
    task = current_app.tasks[task_name]
    merged = dict(task._get_exec_options(), **options)
    return current_app.amqp.router.route(merged, task_name)


def queue_of(task_name, **options):
    return published_options(task_name, **options)["queue"].name


class TestModemUpgraderQueues(SimpleTestCase):
    def test_short_tasks_on_the_control_queue(self):
        self.assertEqual(app_settings.CONTROL_QUEUE, "modem_upgrader_control")
        for name in CONTROL_TASKS:
            with self.subTest(task=name):
                self.assertEqual(queue_of(name), "modem_upgrader_control")

    def test_transfers_and_detection_on_the_module_queue(self):
        names = [
            n
            for n in current_app.tasks
            if n.startswith("openwisp_modem_upgrader.") and n not in CONTROL_TASKS
        ]
        # the upgrade itself and the detection tasks
        self.assertGreaterEqual(len(names), 4, names)
        self.assertIn("openwisp_modem_upgrader.upgrade_modem_firmware", names)
        for name in names:
            with self.subTest(task=name):
                self.assertEqual(queue_of(name), "modem_upgrader")

    def test_other_tasks_stay_on_the_default_queue(self):
        controller = [
            n for n in current_app.tasks if n.startswith("openwisp_controller.")
        ]
        self.assertTrue(controller)
        for name in controller:
            with self.subTest(task=name):
                self.assertEqual(queue_of(name), "celery")

    def test_documented_route(self):
        self.assertEqual(
            settings.CELERY_TASK_ROUTES,
            {"openwisp_modem_upgrader.*": {"queue": "modem_upgrader"}},
        )

    def test_driver_and_dispatch_messages_expire_within_a_period(self):
        period = app_settings.CONTROL_MESSAGE_EXPIRES
        self.assertEqual(period, float(app_settings.DRIVER_SCHEDULE))
        for name in (
            "openwisp_modem_upgrader.drive_modem_upgrades",
            "openwisp_modem_upgrader.dispatch_modem_upgrades",
        ):
            with self.subTest(task=name):
                self.assertEqual(published_options(name)["expires"], period)
        # a follow-up is replaced by a newer one once its lease ends
        self.assertEqual(
            published_options("openwisp_modem_upgrader.follow_modem_upgrade")[
                "expires"
            ],
            app_settings.FOLLOW_LEASE,
        )
        # transfers never expire: a lost or stale one is handled by its token
        self.assertIsNone(
            published_options("openwisp_modem_upgrader.upgrade_modem_firmware").get(
                "expires"
            )
        )

    def test_beat_entry_of_the_driver(self):
        entry = current_app.conf.beat_schedule["drive_modem_upgrades"]
        self.assertEqual(entry["task"], "openwisp_modem_upgrader.drive_modem_upgrades")
        self.assertEqual(
            entry["options"],
            {
                "queue": "modem_upgrader_control",
                "expires": app_settings.CONTROL_MESSAGE_EXPIRES,
            },
        )
        # a beat publishing by name alone (task not imported) routes it alike
        self.assertEqual(
            current_app.amqp.router.route(dict(entry["options"]), entry["task"])[
                "queue"
            ].name,
            "modem_upgrader_control",
        )


class TestDispatchMessages(TestCase):
    def test_one_dispatch_message_for_many_requests(self):
        from unittest import mock

        from django.core.cache import cache

        from ..publish import QUEUED_KEY, dispatch_soon
        from ..scheduler import dispatch

        cache.delete(QUEUED_KEY)
        # the note outlives this test otherwise: later tests would ask for
        # no dispatch
        self.addCleanup(cache.delete, QUEUED_KEY)
        with mock.patch.object(tasks.dispatch_modem_upgrades, "delay") as delay:
            for _ in range(50):
                dispatch_soon()
            self.assertEqual(delay.call_count, 1)
            # once that dispatch starts, a new request publishes again
            dispatch(now=timezone.now() + timedelta(seconds=1))
            dispatch_soon()
            self.assertEqual(delay.call_count, 2)
