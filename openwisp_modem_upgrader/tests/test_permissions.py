"""One permission rule per action, the same in the REST API and the admin
(``permissions.py``)."""

from django.contrib.auth.models import Permission
from django.test import TestCase
from django.urls import reverse

from ..base.models import OperationStatus
from ..permissions import ACTION_PERMISSIONS
from . import ModemUpgradeOperation
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
