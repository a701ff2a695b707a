"""The dedicated Celery queue of docs/developer/deployment.rst, as the test
project configures it: routed by task name, so no task declares a queue."""

from celery import current_app
from django.conf import settings
from django.test import SimpleTestCase

# registers the tasks, as a worker's autodiscovery does
from openwisp_controller.connection import tasks as controller_tasks  # noqa: F401

from .. import tasks  # noqa: F401


def queue_of(task_name):
    return current_app.amqp.router.route({}, task_name)["queue"].name


class TestModemUpgraderQueue(SimpleTestCase):
    def test_every_task_of_the_module_on_its_queue(self):
        names = [
            n for n in current_app.tasks if n.startswith("openwisp_modem_upgrader.")
        ]
        # the upgrade, the fan-out, the sweeper and the detection tasks
        self.assertGreaterEqual(len(names), 6, names)
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
