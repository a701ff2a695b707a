"""One permission rule per action, the same in the REST API and the admin
(``permissions.py``)."""

from django.contrib.auth.models import Permission
from django.test import TestCase
from django.urls import reverse

from ..admin.batch import batch_controls
from ..base.models import OperationStatus
from ..permissions import ACTION_PERMISSIONS, has_action_permission
from . import ModemBatchUpgradeOperation, ModemUpgradeOperation
from .test_admin_device import DeviceAdminMixin
from .test_api import api_url


class TestCancelRuleSharedByApiAndAdmin(DeviceAdminMixin, TestCase):
    def _operator_with(self, permission, name):
        user = self._create_operator(
            organizations=[self.org], username=name, email=f"{name}@test.com"
        )
        user.user_permissions.add(
            Permission.objects.get(codename=f"{permission}_modemupgradeoperation")
        )
        return user

    def _cancel(self, user):
        """Cancels one new operation in the admin, another through the API;
        whether each was cancelled."""
        cancelled = []
        for url_name in ("admin:modem_upgrader_cancel_operation", None):
            operation = ModemUpgradeOperation.objects.create(
                device=self.device, image=self.image
            )
            self.client.force_login(user)
            if url_name:
                self.client.post(reverse(url_name, args=[operation.pk]))
            else:
                self.client.post(api_url("upgrade_operation_cancel", operation.pk))
            operation.refresh_from_db()
            cancelled.append(operation.status == OperationStatus.CANCELLED)
            operation.delete()
        return cancelled

    def test_cancel_needs_the_same_permission_in_both(self):
        self.assertEqual(ACTION_PERMISSIONS["cancel"], "change")
        # the admin used to ask for "add", the API for "change"
        self.assertEqual(self._cancel(self._operator_with("add", "adder")), [False] * 2)
        self.assertEqual(
            self._cancel(self._operator_with("change", "changer")), [True] * 2
        )


class TestRolloutRulesSharedByApiAndAdmin(DeviceAdminMixin, TestCase):
    """Pause, resume (the go-ahead), retry of the failed devices and cancel
    of a mass upgrade: the API, the admin's action views and the batch
    page's buttons answer each user alike."""

    ACTIONS = ("pause", "resume", "retry_failed", "cancel")

    def setUp(self):
        super().setUp()
        self.batch = ModemBatchUpgradeOperation.objects.create(
            build=self.image.build, organization=self.org
        )

    def _operator_with(self, permission, name):
        user = self._create_operator(
            organizations=[self.org], username=name, email=f"{name}@test.com"
        )
        user.user_permissions.add(
            Permission.objects.get(codename=f"{permission}_modembatchupgradeoperation"),
            # both faces need to see the mass upgrade at all
            Permission.objects.get(codename="view_modembatchupgradeoperation"),
        )
        return user

    def _refused(self, user, action):
        """Whether the API and the admin refuse ``action`` to ``user``."""
        opts = ModemBatchUpgradeOperation._meta
        self.client.force_login(user)
        api = self.client.post(
            api_url(f"batch_upgrade_operation_{action}", self.batch.pk)
        )
        if action == "cancel":
            admin_url = reverse(
                "admin:modem_upgrader_cancel_batch", args=[self.batch.pk]
            )
        else:
            name = f"{opts.app_label}_{opts.model_name}_{action}"
            admin_url = reverse(f"admin:{name}", args=[self.batch.pk])
        admin = self.client.post(admin_url)
        return api.status_code == 403, admin.status_code == 403

    def test_each_action_answers_alike_in_both_faces(self):
        for permission in ("add", "change"):
            user = self._operator_with(permission, f"{permission}er")
            for action in self.ACTIONS:
                with self.subTest(permission=permission, action=action):
                    allowed = ACTION_PERMISSIONS[action] == permission
                    self.assertEqual(
                        self._refused(user, action), (not allowed, not allowed)
                    )
                    self.assertEqual(
                        has_action_permission(user, action, ModemBatchUpgradeOperation),
                        allowed,
                    )

    def test_the_page_shows_a_button_to_those_its_action_allows(self):
        ModemBatchUpgradeOperation.objects.filter(pk=self.batch.pk).update(
            status=OperationStatus.IN_PROGRESS
        )
        self.batch.refresh_from_db()
        for permission in ("add", "change"):
            user = self._operator_with(permission, f"{permission}er")
            controls = batch_controls(self.batch, user)
            with self.subTest(permission=permission):
                self.assertEqual(
                    controls["show_rollout_buttons"], permission == "change"
                )
                self.assertEqual(controls["can_cancel"], permission == "change")
                self.assertEqual(controls["show_retry"], permission == "add")
