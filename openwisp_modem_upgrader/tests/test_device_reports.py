import json
from unittest import mock

from django.test import TestCase
from django.urls import reverse

from ..base.models import OperationStatus
from ..upgrade import finish_operation, mark_in_progress, start_upgrade
from . import ModemUpgradeOperation, TestModemUpgraderMixin


class TestDeviceReports(TestModemUpgraderMixin, TestCase):
    def setUp(self):
        self.device = self._create_modem_device()
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade"):
            self.operation = start_upgrade(self.device, self._create_image())
        mark_in_progress(self.operation.pk)

    def _report(self, payload, key=None, operation_id=None, method="post"):
        url = reverse(
            "modem_upgrader:api_upgrade_operation_detail",
            args=[operation_id or self.operation.pk],
        )
        key = self.device.key if key is None else key
        return getattr(self.client, method)(
            f"{url}?key={key}",
            data=json.dumps(payload) if isinstance(payload, dict) else payload,
            content_type="application/json",
        )

    def _reload(self):
        self.operation.refresh_from_db()
        return self.operation

    def test_progress_report(self):
        response = self._report(
            {"progress_percent": 35, "status": "in-progress", "log": "a\nb", "seq": 2}
        )
        self.assertEqual(response.status_code, 200, response.content)
        operation = self._reload()
        self.assertEqual(operation.progress, 35)
        self.assertEqual(operation.log.splitlines()[-2:], ["a", "b"])
        self.assertEqual(operation.device_seq, 2)

    def test_patch_accepted(self):
        response = self._report(
            {"progress_percent": 21, "status": "in-progress"}, method="patch"
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self._reload().progress, 21)

    def test_constant_queries_per_report(self):
        # the usual report is one conditional UPDATE, whatever the log size
        for seq, size in ((1, 1), (2, 200)):
            log = "\n".join(f"line {i}" for i in range(size))
            with self.assertNumQueries(1):
                response = self._report(
                    {
                        "progress_percent": 30,
                        "status": "in-progress",
                        "log": log,
                        "seq": seq * 1000,
                    }
                )
            self.assertTrue(response.json()["applied"])
        self.assertEqual(self._reload().device_seq, 2000)
        self.assertEqual(self._reload().log.count("line"), 201)

    def test_replay_and_overlap_take_the_general_path(self):
        payload = {"progress_percent": 40, "status": "in-progress", "log": "a\nb"}
        self._report(dict(payload, seq=2))
        # replay: the missed UPDATE, then one read; nothing written
        with self.assertNumQueries(2):
            response = self._report(dict(payload, seq=2))
        self.assertEqual(response.json(), {"applied": False, "status": "in-progress"})
        # overlap (records 2-3, 2 applied): only record 3 is added
        with self.assertNumQueries(4):
            response = self._report(dict(payload, log="b\nc", seq=3))
        self.assertTrue(response.json()["applied"])
        operation = self._reload()
        self.assertEqual(operation.log.splitlines()[-3:], ["a", "b", "c"])
        self.assertEqual(operation.device_seq, 3)

    def test_reports_the_fast_path_leaves_to_drf(self):
        """What DRF accepts beyond plain JSON types is still accepted."""
        url = reverse(
            "modem_upgrader:api_upgrade_operation_detail", args=[self.operation.pk]
        )
        body = {"progress_percent": "7", "status": "in-progress", "seq": 1.0}
        response = self._report(body)
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(self._reload().progress, 7)
        response = self.client.post(
            f"{url}?key={self.device.key}",
            json.dumps({"progress_percent": 8, "status": "in-progress", "seq": 2}),
            content_type="application/json; charset=utf-8",
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(self._reload().device_seq, 2)

    def test_wrong_key_on_valid_report_changes_nothing(self):
        payload = {
            "progress_percent": 50,
            "status": "in-progress",
            "log": "x",
            "seq": 1,
        }
        for key in ("0" * 32, self.device.key.upper(), self.device.key + "x", "a\x00"):
            with self.subTest(key=key):
                response = self._report(payload, key=key)
                self.assertEqual(response.status_code, 403, response.content)
        operation = self._reload()
        self.assertEqual(operation.device_seq, 0)
        self.assertEqual(operation.progress, 0)

    def test_replayed_report_changes_nothing(self):
        payload = {
            "progress_percent": 40,
            "status": "in-progress",
            "log": "x",
            "seq": 5,
        }
        self._report(payload)
        log = self._reload().log
        response = self._report(payload)
        self.assertEqual(response.status_code, 200)
        self.assertFalse(response.json()["applied"])
        self.assertEqual(self._reload().log, log)

    def test_progress_never_goes_backwards(self):
        self._report({"progress_percent": 60, "status": "in-progress"})
        self._report({"progress_percent": 30, "status": "in-progress"})
        self.assertEqual(self._reload().progress, 60)

    def test_failure_report_finishes_operation(self):
        response = self._report(
            {"progress_percent": 50, "status": "aborted", "log": "power lost"}
        )
        self.assertEqual(response.status_code, 200)
        operation = self._reload()
        self.assertEqual(operation.status, OperationStatus.ABORTED)
        self.assertIn("power lost", operation.log)

    def test_success_report_waits_for_server_verification(self):
        self._report({"progress_percent": 100, "status": "success", "log": "ok"})
        operation = self._reload()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        self.assertEqual(operation.progress, 100)

    def test_key_of_another_device_forbidden(self):
        other = self._create_device(name="other", mac_address="00:11:22:33:44:66")
        response = self._report(
            {"progress_percent": 90, "status": "failed"}, key=other.key
        )
        self.assertEqual(response.status_code, 403)
        response = self._report({"progress_percent": 90, "status": "failed"}, key="")
        self.assertEqual(response.status_code, 403)
        operation = self._reload()
        self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)
        self.assertEqual(operation.progress, 0)

    def test_unknown_operation_not_found(self):
        import uuid

        response = self._report(
            {"progress_percent": 1, "status": "in-progress"}, operation_id=uuid.uuid4()
        )
        self.assertEqual(response.status_code, 404)

    def test_finished_operation_conflict(self):
        finish_operation(self.operation.pk, OperationStatus.FAILED, "done")
        response = self._report({"progress_percent": 99, "status": "in-progress"})
        self.assertEqual(response.status_code, 409)
        self.assertEqual(self._reload().progress, 0)

    def test_idle_operation_conflict(self):
        ModemUpgradeOperation.objects.filter(pk=self.operation.pk).update(
            status=OperationStatus.IDLE
        )
        response = self._report({"progress_percent": 5, "status": "in-progress"})
        self.assertEqual(response.status_code, 409)

    def test_malformed_reports_rejected(self):
        cases = {
            "percent above 100": {"progress_percent": 101, "status": "in-progress"},
            "negative percent": {"progress_percent": -1, "status": "in-progress"},
            "not a number": {"progress_percent": "half", "status": "in-progress"},
            "unknown status": {"progress_percent": 5, "status": "cancelled"},
            "missing status": {"progress_percent": 5},
            "unknown field": {"progress_percent": 5, "status": "failed", "x": 1},
            "huge log": {
                "progress_percent": 5,
                "status": "in-progress",
                "log": "x" * (64 * 1024 + 1),
            },
            "bad seq": {"progress_percent": 5, "status": "in-progress", "seq": 0},
            "not json": "{progress",
        }
        for case, payload in cases.items():
            with self.subTest(case):
                response = self._report(payload)
                self.assertEqual(response.status_code, 400, response.content)
                operation = self._reload()
                self.assertEqual(operation.progress, 0)
                self.assertEqual(operation.status, OperationStatus.IN_PROGRESS)

    def test_seq_far_ahead_cannot_pin_the_journal(self):
        from ..upgrade import MAX_JOURNAL_SEQ_GAP, record_journal

        for seq in (2**31 - 1, MAX_JOURNAL_SEQ_GAP + 2):
            with self.subTest(seq=seq):
                response = self._report(
                    {"progress_percent": 50, "status": "in-progress", "seq": seq}
                )
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn("seq", response.data)
                # the same rule for the journal read over SSH
                self.assertFalse(record_journal(self.operation.pk, seq, ["x"], 50))
                operation = self._reload()
                self.assertEqual(operation.device_seq, 0)
                self.assertEqual(operation.progress, 0)
        # the router's real records still apply, over HTTP and SSH
        response = self._report(
            {"progress_percent": 25, "status": "in-progress", "log": "a", "seq": 1}
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertTrue(record_journal(self.operation.pk, 3, ["b", "c"], 30))
        # a gap the router can produce (a lost acknowledgement) is accepted
        self.assertTrue(
            record_journal(self.operation.pk, 3 + MAX_JOURNAL_SEQ_GAP + 1, ["d"])
        )
        self.assertEqual(self._reload().device_seq, 3 + MAX_JOURNAL_SEQ_GAP + 1)
