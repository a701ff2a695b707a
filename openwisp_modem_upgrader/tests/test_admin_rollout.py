"""Rollout controls in the admin: the mass-upgrade form's rollout fieldset,
the batch page's state and buttons, the batch list's rollout column."""

import re
from datetime import timedelta
from unittest import mock

from django.test import TestCase
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import strip_tags

from ..base.models import OperationStatus
from ..base.rollout import RolloutState
from ..scheduler import dispatch
from ..upgrade import finish_operation
from . import ModemBatchUpgradeOperation
from .test_admin import admin_url
from .test_admin_batch import MassUpgradeMixin


def action_url(name, batch):
    opts = ModemBatchUpgradeOperation._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=[batch.pk])


BUTTON = re.compile(r'<button [^>]*formaction="([^"]+)"([^>]*)>([^<]*)</button>')


def shown_buttons(response):
    """``{url: label}`` of the buttons a page shows (not ``hidden``)."""
    return {
        url: label
        for url, attributes, label in BUTTON.findall(response.content.decode())
        if " hidden" not in attributes
    }


@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestRolloutForm(MassUpgradeMixin, TestCase):
    def _confirm(self, **extra):
        data = {"organization": self.org.pk, "confirm": "1", **extra}
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(self.preview_url(), data)

    def test_every_rollout_mistake_shown_at_once(self, publish):
        now = timezone.now()
        response = self._confirm(
            canary_size="150",
            canary_percent="true",
            failure_threshold="120",
            failure_threshold_percent="true",
            window_start="22:00",
            deadline=(now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        )
        self.assertEqual(response.status_code, 200)
        errors = response.context["form"].errors
        self.assertEqual(
            set(errors), {"canary_size", "failure_threshold", "window_end", "deadline"}
        )
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        publish.assert_not_called()

    def test_fieldset_with_model_defaults(self, publish):
        response = self.client.get(self.preview_url())
        self.assertContains(response, '<fieldset class="module aligned modem-rollout">')
        default = ModemBatchUpgradeOperation()
        self.assertContains(
            response,
            f'name="max_concurrent" value="{default.max_concurrent}"',
        )
        for name in (
            "canary_size",
            "canary_failure_tolerance",
            "wave_size",
            "confirm_waves",
            "failure_threshold",
        ):
            self.assertContains(response, f'name="{name}"')
        self.assertContains(response, 'type="datetime-local" name="scheduled_at"')
        self.assertContains(response, 'type="time" name="window_start"')
        self.assertContains(response, '<option value="Europe/Rome">')

    def test_time_zone_select_keeps_the_choice(self, publish):
        # written without a template per option (PlainSelect)
        response = self.client.post(
            self.preview_url(),
            {"organization": self.org.pk, "window_timezone": "Europe/Rome"},
        )
        self.assertContains(
            response, '<select name="window_timezone" id="id_window_timezone">'
        )
        self.assertContains(response, '<option value="Europe/Rome" selected>')
        self.assertContains(response, '<option value="Europe/Paris">', count=1)
        self.assertNotContains(response, '<option value="UTC" selected>')

    def test_preview_shows_the_waves(self, publish):
        self._devices(5)
        response = self.client.post(
            self.preview_url(),
            {"organization": self.org.pk, "canary_size": "1", "wave_size": "2"},
        )
        self.assertContains(response, "the canary wave first: 1, 2, 2")

    def test_confirm_with_a_canary_wave(self, publish):
        self._devices(4)
        response = self._confirm(
            max_concurrent="2",
            canary_size="1",
            wave_size="",
            confirm_waves="true",
            failure_threshold="1",
            failure_threshold_percent="false",
            window_start="01:00",
            window_end="05:00",
            window_timezone="Europe/Rome",
        )
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertRedirects(
            response,
            admin_url(ModemBatchUpgradeOperation, "change", batch.pk),
            fetch_redirect_response=False,
        )
        self.assertEqual((batch.max_concurrent, batch.canary_size), (2, 1))
        self.assertEqual(batch.wave_size, 0)
        self.assertTrue(batch.confirm_waves)
        self.assertFalse(batch.failure_threshold_percent)
        self.assertEqual(batch.window_timezone, "Europe/Rome")
        self.assertEqual(
            sorted(batch.operations.values_list("wave", flat=True)), [1, 2, 2, 2]
        )

    def test_empty_fields_take_the_defaults(self, publish):
        self._devices(1)
        self._confirm()
        batch = ModemBatchUpgradeOperation.objects.get()
        default = ModemBatchUpgradeOperation()
        for field in (
            "max_concurrent",
            "failure_threshold",
            "failure_threshold_percent",
            "window_timezone",
        ):
            self.assertEqual(getattr(batch, field), getattr(default, field))

    def test_invalid_rollout_refused(self, publish):
        self._devices(1)
        now = timezone.now()
        for extra, message in (
            ({"window_start": "01:00"}, "Give both ends of the maintenance window"),
            ({"canary_size": "150", "canary_percent": "true"}, "at most 100"),
            ({"max_concurrent": "0"}, "greater than or equal to 1"),
            (
                {"canary_size": "2", "canary_failure_tolerance": "2"},
                "could never stop the batch before wave 2",
            ),
            (
                {"wave_size": "3", "failure_threshold_minimum": "10"},
                "only 3 devices (wave 1) finish before wave 2 starts",
            ),
            ({"window_timezone": "Mars/Olympus"}, "Select a valid choice"),
            (
                {
                    "scheduled_at": (now + timedelta(days=2)).strftime(
                        "%Y-%m-%dT%H:%M"
                    ),
                    "deadline": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
                },
                "The deadline must come after the start time",
            ),
            (
                {"deadline": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")},
                "The deadline has already passed",
            ),
        ):
            with self.subTest(extra=extra):
                response = self._confirm(**extra)
                self.assertEqual(response.status_code, 200)
                self.assertContains(response, message)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        publish.assert_not_called()


@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestBatchPageControls(MassUpgradeMixin, TestCase):
    def _batch(self, count=3, **options):
        self._devices(count)
        fields = {"canary_size": 1, "max_concurrent": 1, **options}
        from ..batch import create_batch

        with self.captureOnCommitCallbacks(execute=True):
            batch = create_batch(self.build, self.org, **fields)
        batch.refresh_from_db()
        return batch

    def _page(self, batch):
        response = self.client.get(
            admin_url(ModemBatchUpgradeOperation, "change", batch.pk)
        )
        self.assertEqual(response.status_code, 200)
        return response

    def _set_state(self, batch, state, reason=""):
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(
            rollout_state=state, rollout_reason=reason
        )

    def test_state_counts_and_buttons_per_state(self, publish):
        batch = self._batch()
        response = self._page(batch)
        self.assertContains(response, 'data-rollout-state="running"')
        # the numbers are in spans of their own, for the websocket
        text = " ".join(strip_tags(response.content.decode()).split())
        self.assertIn("wave 1 of 2", text)
        self.assertIn("1 in flight", text)
        self.assertIn("2 waiting", text)
        buttons = shown_buttons(response)
        self.assertIn(action_url("pause", batch), buttons)
        self.assertNotIn(action_url("resume", batch), buttons)
        self.assertNotIn(action_url("retry_failed", batch), buttons)
        # on the page, hidden: the websocket shows them when they apply
        self.assertContains(response, action_url("resume", batch))
        for state, label in (
            (RolloutState.PAUSED, "Resume"),
            (RolloutState.AWAITING, "Give the go-ahead"),
            (RolloutState.STOPPED, "Resume after the stop"),
        ):
            with self.subTest(state=state):
                self._set_state(batch, state, reason=f"why {state}")
                response = self._page(batch)
                self.assertContains(response, f'data-rollout-state="{state}"')
                self.assertContains(response, f"why {state}")
                buttons = shown_buttons(response)
                self.assertEqual(buttons[action_url("resume", batch)], label)
                self.assertEqual(
                    action_url("pause", batch) in buttons,
                    state != RolloutState.PAUSED,
                )
        # the derived states
        self._set_state(batch, RolloutState.RUNNING)
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(
            scheduled_at=timezone.now() + timedelta(hours=3)
        )
        self.assertContains(self._page(batch), 'data-rollout-state="scheduled"')
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(
            status=OperationStatus.SUCCESS
        )
        response = self._page(batch)
        self.assertContains(response, 'data-rollout-state="finished"')
        self.assertNotContains(response, action_url("pause", batch))

    def test_pause_then_resume(self, publish):
        batch = self._batch(count=4, max_concurrent=2, canary_size=0)
        running = list(batch.operations.filter(dispatched_at__isnull=False))
        self.assertEqual(len(running), 2)
        response = self.client.post(action_url("pause", batch), follow=True)
        self.assertContains(response, "The mass upgrade is paused")
        self.assertContains(response, 'data-rollout-state="paused"')
        for operation in running:
            finish_operation(operation.pk, OperationStatus.SUCCESS, "ok")
        publish.reset_mock()
        self.assertEqual(dispatch(), 0)
        publish.assert_not_called()
        response = self.client.post(action_url("pause", batch), follow=True)
        self.assertContains(response, "already paused")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(action_url("resume", batch), follow=True)
        self.assertContains(
            response,
            "The mass upgrade is resumed. Its waiting devices start as the "
            "concurrency limit allows.",
        )
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.RUNNING)
        # the resume asked for a dispatch: the remaining two were queued
        self.assertEqual(publish.call_count, 2)

    def test_go_ahead_opens_the_next_wave(self, publish):
        batch = self._batch(confirm_waves=True)
        finish_operation(batch.operations.get(wave=1).pk, OperationStatus.SUCCESS, "")
        dispatch()
        self.assertContains(self._page(batch), "Give the go-ahead")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(action_url("resume", batch), follow=True)
        self.assertContains(response, "Go-ahead given: wave 2 starts.")
        batch.refresh_from_db()
        self.assertEqual(batch.current_wave, 2)
        self.assertEqual(batch.rollout_state, RolloutState.RUNNING)

    def test_resume_of_a_finished_wave_says_it_waits_for_the_go_ahead(self, publish):
        """Paused while its wave ended: "Resume" starts nothing, and says so."""
        batch = self._batch(confirm_waves=True)
        self.client.post(action_url("pause", batch))
        finish_operation(batch.operations.get(wave=1).pk, OperationStatus.SUCCESS, "")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(action_url("resume", batch), follow=True)
        self.assertContains(
            response,
            "The mass upgrade is resumed. Wave 1 has finished: give the "
            "go-ahead to start the next one.",
        )
        self.assertNotContains(response, "start as the concurrency limit allows")
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.AWAITING)

    def test_outside_the_window_says_when_it_opens(self, publish):
        batch = self._batch()
        now = timezone.localtime()
        start = (now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
        end = (now + timedelta(hours=3)).time().replace(second=0, microsecond=0)
        ModemBatchUpgradeOperation.objects.filter(pk=batch.pk).update(
            window_start=start,
            window_end=end,
            window_timezone=timezone.get_current_timezone_name(),
        )
        response = self._page(batch)
        self.assertContains(response, 'data-rollout-state="outside-window"')
        self.assertContains(response, "the window opens next at ")
        batch.refresh_from_db()
        self.assertContains(
            response,
            formats.date_format(
                timezone.localtime(batch.next_window_opening(timezone.now())),
                "DATETIME_FORMAT",
            ),
        )

    def test_retry_failed_devices(self, publish):
        batch = self._batch(failure_threshold=1, failure_threshold_percent=False)
        canary = batch.operations.get(wave=1)
        finish_operation(canary.pk, OperationStatus.FAILED, "bad image")
        response = self._page(batch)
        self.assertContains(response, 'data-rollout-state="stopped"')
        self.assertContains(response, "Resume after the stop")
        self.assertContains(response, "Retry failed devices")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(action_url("retry_failed", batch))
        retry = ModemBatchUpgradeOperation.objects.exclude(pk=batch.pk).get()
        self.assertRedirects(
            response,
            admin_url(ModemBatchUpgradeOperation, "change", retry.pk),
            fetch_redirect_response=False,
        )
        self.assertEqual(retry.device_ids, [str(canary.device_id)])
        self.assertEqual(retry.operations.get().device_id, canary.device_id)
        # named apart from its original, and one device is not "devices"
        self.assertEqual(retry.retry_of, batch)
        self.assertNotEqual(str(retry), str(batch))
        self.assertTrue(str(retry).startswith("Retry of the failed devices"))
        response = self.client.get(response.url)
        self.assertContains(response, "A new mass upgrade retries the failed device.")

    def test_retry_without_failures_says_why(self, publish):
        batch = self._batch()
        response = self.client.post(action_url("retry_failed", batch), follow=True)
        self.assertContains(response, "No device of this mass upgrade failed.")
        self.assertEqual(ModemBatchUpgradeOperation.objects.count(), 1)

    def test_isolation_and_permissions(self, publish):
        batch = self._batch()
        other = self._create_org(name="other", slug="other")
        self.client.force_login(self._create_administrator(organizations=[other]))
        for name in ("pause", "resume", "retry_failed"):
            self.assertEqual(self.client.post(action_url(name, batch)).status_code, 404)
        operator = self._create_operator(organizations=[self.org])
        self.client.force_login(operator)
        for name in ("pause", "resume", "retry_failed"):
            self.assertEqual(self.client.post(action_url(name, batch)).status_code, 403)
        response = self._page(batch)
        self.assertNotContains(response, action_url("pause", batch))
        # GET does not change anything
        self.client.force_login(self._get_admin())
        self.assertEqual(self.client.get(action_url("pause", batch)).status_code, 405)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.RUNNING)

    def test_changelist_rollout_column(self, publish):
        batch = self._batch()
        self._set_state(batch, RolloutState.STOPPED)
        response = self.client.get(admin_url(ModemBatchUpgradeOperation, "changelist"))
        self.assertContains(response, '<td class="field-rollout">stopped: too many')
