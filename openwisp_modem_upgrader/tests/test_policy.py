"""Firmware policies: the periodic pass enrolls every modem behind into the
policy's rollout, within its limits, stopping on its threshold, and pauses
with the policy."""

from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from ..base.models import DetectionStatus, OperationStatus
from ..base.rollout import RolloutState
from ..detection import detect_device
from ..inventory import behind_modems
from ..policy import enroll, pause_policy, resume_policy, run_policies
from ..scheduler import dispatch
from ..swapper import load_model
from . import NEW_VERSION, DeviceModemFirmware, ModemUpgradeOperation
from .test_detection import DetectionMixin
from .test_engine import FAST, EngineTestMixin
from .test_rollout import RolloutTestMixin

ModemFirmwarePolicy = load_model("ModemFirmwarePolicy")
DeviceModemDetection = load_model("DeviceModemDetection")
B020 = "M0R.010000-B020"


class PolicyMixin:
    def _policy(self, **fields):
        fields.setdefault("name", "FN990A28 fleet")
        policy = ModemFirmwarePolicy(
            organization=self._get_org(), build=self.image.build, **fields
        )
        policy.full_clean()
        policy.save()
        return policy

    def _pass(self):
        with self.captureOnCommitCallbacks(execute=False):
            return run_policies()


class TestPolicyPass(PolicyMixin, RolloutTestMixin, TestCase):
    def test_limit_and_threshold(self):
        self._devices(6)
        policy = self._policy(
            max_concurrent=2, failure_threshold=2, failure_threshold_percent=False
        )
        self.assertEqual(self._pass(), {str(policy.pk): 6})
        policy.refresh_from_db()
        batch = policy.batch
        self.assertEqual(dispatch(), 2)
        first = self.published()
        self.run_workers(first)
        # the limit: nothing more while two upgrade
        self.assertEqual(dispatch(), 0)
        self.finish(first, OperationStatus.FAILED)
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, RolloutState.STOPPED)
        self.assertEqual(dispatch(), 0)
        self.assert_never_more_than(2, batch.operations.all())
        # a modem detected later is not enrolled into a stopped rollout
        self._create_modem_device(name="late", mac_address="00:11:22:33:55:01")
        self.assertEqual(self._pass(), {str(policy.pk): 0})
        policy.refresh_from_db()
        self.assertIn("stopped", policy.last_pass_note)
        # nor are the failed ones re-enrolled once the operator resumes
        from ..rollout import resume_batch

        with self.captureOnCommitCallbacks(execute=False):
            resume_batch(batch)
        self.assertEqual(self._pass(), {str(policy.pk): 1})
        self.assertEqual(
            batch.operations.filter(status=OperationStatus.FAILED).count(), 2
        )

    def test_rollout_stays_open_and_reenrolls_a_replaced_modem(self):
        (device,) = self._devices(1)
        policy = self._policy()
        self._pass()
        self.assertEqual(dispatch(), 1)
        (pk,) = self.published()
        self.run_workers([pk])
        self.finish([pk])
        policy.refresh_from_db()
        batch = policy.batch
        batch.refresh_from_db()
        # done, but kept open for the next enrollments
        self.assertEqual(batch.status, OperationStatus.IN_PROGRESS)
        DeviceModemFirmware.objects.filter(device=device).update(
            modem_firmware_version=NEW_VERSION
        )
        self.assertEqual(self._pass(), {str(policy.pk): 0})
        # the modem is replaced by one on the old firmware: behind again
        DeviceModemFirmware.objects.filter(device=device).update(
            modem_firmware_version=B020, modem_imei="999"
        )
        self.assertEqual(self._pass(), {str(policy.pk): 1})
        self.assertEqual(batch.operations.count(), 2)

    def test_pausing_pauses_enrollments_and_starts(self):
        self._devices(2)
        policy = self._policy()
        self._pass()
        with self.captureOnCommitCallbacks(execute=False):
            pause_policy(policy)
        self._create_modem_device(name="late", mac_address="00:11:22:33:55:02")
        self.assertEqual(self._pass(), {})
        self.assertEqual(dispatch(), 0)
        policy.refresh_from_db()
        self.assertEqual(policy.batch.operations.count(), 2)
        with self.captureOnCommitCallbacks(execute=False):
            resume_policy(policy)
        self.assertEqual(self._pass(), {str(policy.pk): 1})
        self.assertEqual(dispatch(), 3)

    def test_carrier_and_unreachable(self):
        att, vodafone, offline = self._devices(3)
        DeviceModemFirmware.objects.filter(device__in=[att, offline]).update(
            sim_network="310410"
        )
        DeviceModemDetection.objects.create(
            device=offline,
            attempted_at=offline.created,
            status=DetectionStatus.UNREACHABLE,
        )
        policy = self._policy(carrier="310-410")
        self._pass()
        policy.refresh_from_db()
        self.assertEqual(
            list(policy.batch.operations.values_list("device_id", flat=True)),
            [att.pk],
        )

    def test_queries_constant_in_fleet_size(self):
        self._devices(2)
        policy = self._policy()
        with CaptureQueriesContext(connection) as small:
            self._pass()
        (
            self._devices(12, start=2)
            if False
            else [
                self._create_modem_device(
                    name=f"more-{i}", mac_address=f"00:11:22:33:66:{i:02x}"
                )
                for i in range(12)
            ]
        )
        with CaptureQueriesContext(connection) as large:
            enroll(policy.pk)
        self.assertEqual(len(large), len(small) - 1)  # the batch exists now

    def test_pass_is_scheduled(self):
        from celery import current_app

        from .. import settings as app_settings

        entries = [
            entry
            for entry in current_app.conf.beat_schedule.values()
            if entry["task"] == "openwisp_modem_upgrader.enforce_firmware_policies"
        ]
        self.assertEqual(
            [e["schedule"] for e in entries], [app_settings.POLICY_SCHEDULE]
        )

    def test_validation(self):
        draft = self._create_build(
            version="M0R.020000-B001",
            status="draft",
            category=self.image.build.category,
        )
        policy = ModemFirmwarePolicy(
            organization=self._get_org(),
            build=draft,
            name="x",
            carrier="310-410 22210",
            canary_size=200,
            canary_percent=True,
        )
        with self.assertRaises(ValidationError) as caught:
            policy.full_clean()
        self.assertTrue(
            {"build", "carrier", "canary_size"} <= set(caught.exception.message_dict)
        )


class TestPolicyOnEmulatedRouters(
    PolicyMixin, DetectionMixin, RolloutTestMixin, TestCase
):
    """A newly detected router and a router back online are enrolled."""

    def test_new_router_and_router_back_online(self):
        self.image = self._create_image(
            build=self._create_build(
                version="M0R.010000-B022", category=self.image.build.category
            )
        )
        first = self.start_router()
        later = self.start_router()
        devices = [self.router_device(first), self.router_device(later)]
        policy = self._policy(max_concurrent=1)
        # the first router is detected; the other is offline at the time
        detect_device(devices[0])
        later.go_offline()
        detect_device(devices[1])
        self.assertEqual(
            DeviceModemDetection.objects.get(device=devices[1]).status,
            DetectionStatus.UNREACHABLE,
        )
        self.assertEqual(self._pass(), {str(policy.pk): 1})
        # back online: its detection (connection working) makes it known
        later.come_back()
        detect_device(devices[1])
        self.assertEqual(self._pass(), {str(policy.pk): 1})
        policy.refresh_from_db()
        enrolled = policy.batch.operations.order_by("created")
        self.assertEqual(
            list(enrolled.values_list("device_id", "usb_path")),
            [(devices[0].pk, "2-1"), (devices[1].pk, "2-1")],
        )
        # never more than its limit at once
        self.assertEqual(dispatch(), 1)
        self.assertEqual(
            ModemUpgradeOperation.objects.filter(dispatched_at__isnull=False).count(),
            1,
        )


class TestPolicyApiAndAdmin(PolicyMixin, RolloutTestMixin, TestCase):
    def setUp(self):
        super().setUp()
        from .test_api import api_url

        self.api_url = api_url
        self.org_b = self._create_org(name="org b", slug="org-b")
        self.manager = self._create_administrator(
            organizations=[self._get_org()], username="manager", email="m@test.com"
        )
        self.client.force_login(self.manager)

    def _json(self, method, url, data):
        import json

        return getattr(self.client, method)(
            url, json.dumps(data), content_type="application/json"
        )

    def test_api_create_list_pause_and_isolation(self):
        url = self.api_url("firmware_policy_list")
        response = self._json(
            "post",
            url,
            {
                "organization": str(self._get_org().pk),
                "name": "fleet",
                "build": str(self.image.build.pk),
                "max_concurrent": 5,
                "carrier": "310-410",
            },
        )
        self.assertEqual(response.status_code, 201, response.content)
        policy = ModemFirmwarePolicy.objects.get(pk=response.json()["id"])
        self.assertEqual((policy.max_concurrent, policy.network), (5, "310410"))
        # bad input: a clear error, nothing saved
        response = self._json(
            "post",
            url,
            {
                "organization": str(self._get_org().pk),
                "name": "bad",
                "build": str(self.image.build.pk),
                "carrier": "AT&T",
            },
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("carrier", response.json())
        self.assertEqual(ModemFirmwarePolicy.objects.count(), 1)
        # another organization's policy is neither listed nor reachable
        other_build = self._create_build(
            category=self._create_category(organization=self.org_b)
        )
        other = ModemFirmwarePolicy.objects.create(
            organization=self.org_b, build=other_build, name="theirs"
        )
        self.assertEqual(
            [row["name"] for row in self.client.get(url).json()["results"]], ["fleet"]
        )
        detail = self.api_url("firmware_policy_detail", other.pk)
        self.assertEqual(self.client.get(detail).status_code, 404)
        # PATCH paused pauses the policy's rollout too
        self._devices(1)
        self._pass()
        DeviceModemFirmware.objects.update(sim_network="310410")
        self._pass()
        with self.captureOnCommitCallbacks(execute=False):
            response = self._json(
                "patch",
                self.api_url("firmware_policy_detail", policy.pk),
                {"paused": True},
            )
        self.assertEqual(response.status_code, 200, response.content)
        policy.refresh_from_db()
        self.assertEqual(policy.batch.rollout_state, RolloutState.PAUSED)

    def test_admin_pages_and_compliance_note(self):
        from django.urls import reverse

        policy = self._policy()
        opts = ModemFirmwarePolicy._meta
        for url in (
            reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change", args=[policy.pk]
            ),
        ):
            self.assertContains(self.client.get(url), policy.name)
        self._devices(1)
        build_opts = self.image.build._meta
        compliance = reverse(
            f"admin:{build_opts.app_label}_{build_opts.model_name}_compliance"
        )
        self.assertContains(
            self.client.get(compliance), f"governed by policy {policy.name}"
        )


class TestPolicyConvergesAMixedFleet(EngineTestMixin, StaticLiveServerTestCase):
    """The whole path on an emulated router: the pass enrolls the modem
    behind (not the one already on the build, nor another model), the
    engine flashes it, detection reads the new version, and the next pass
    finds nothing left to do while the rollout stays open."""

    def test_policy_converges(self):
        current = self._create_modem_device(
            name="current", mac_address="00:11:22:33:77:01", version=NEW_VERSION
        )
        other = self._create_modem_device(
            name="other", mac_address="00:11:22:33:77:02", modem_model="FN990A40"
        )
        policy = ModemFirmwarePolicy(
            organization=self._get_org(),
            build=self.image.build,
            name="converge",
            max_concurrent=1,
            upgrade_options=dict(
                FAST, remote_dir=self.remote_dir, tool_path=self.tool_path
            ),
        )
        policy.full_clean()
        policy.save()
        self.assertEqual(run_policies(), {str(policy.pk): 1})
        policy.refresh_from_db()
        (operation,) = policy.batch.operations.all()
        self.assertEqual(operation.device_id, self.device.pk)
        operation = self.drive_to_end(operation)
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        detect_device(self.device)
        self.assertEqual(
            list(
                DeviceModemFirmware.objects.filter(
                    device__in=[self.device, current]
                ).values_list("modem_firmware_version", flat=True)
            ),
            [NEW_VERSION, NEW_VERSION],
        )
        self.assertFalse(behind_modems().exists())
        self.assertEqual(run_policies(), {str(policy.pk): 0})
        policy.batch.refresh_from_db()
        self.assertEqual(policy.batch.status, OperationStatus.IN_PROGRESS)
        self.assertFalse(ModemUpgradeOperation.objects.filter(device=other).exists())
