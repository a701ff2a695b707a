"""The compliance page: per organization and modem model, what the devices run.

Served by the build admin (``modembuild/compliance/``, in the "Modem
Firmware" menu). "Upgrade these devices" posts a row's devices (those
behind, grouped by the build they would get) to the mass-upgrade preview.
"""

import swapper
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from ..carriers import display_network
from ..exceptions import UpgradeNotAllowed
from ..health import service_failure
from ..inventory import (
    behind_device_groups,
    carrier_image_mismatches,
    compliance_table,
    service_not_restored,
    stuck_in_flash_mode,
)
from ..permissions import has_action_permission
from ..policy import governing_policies
from ..recovery import start_recovery
from ..swapper import load_model
from .carrier import may_select_carrier_image

Organization = swapper.load_model("openwisp_users", "Organization")


def may_view_compliance(user):
    opts = load_model("DeviceModemFirmware")._meta
    return user.has_perm(f"{opts.app_label}.view_{opts.model_name}")


def managed_organization_ids(user):
    """None for superusers (every organization)."""
    return None if user.is_superuser else list(user.organizations_managed)


def compliance_view(model_admin, request):
    if not may_view_compliance(request.user):
        raise PermissionDenied
    organization_ids = managed_organization_ids(request.user)
    organizations = Organization.objects.order_by("name")
    if organization_ids is not None:
        organizations = organizations.filter(pk__in=organization_ids)
    chosen = request.GET.get("organization")
    if chosen and chosen in {
        str(pk) for pk in organizations.values_list("pk", flat=True)
    }:
        organization_ids = [chosen]
    else:
        chosen = ""
    rows = compliance_table(organization_ids)
    groups = behind_device_groups(organization_ids, by_carrier=True)
    builds = {
        build.pk: build
        for build in load_model("ModemBuild").objects.filter(
            pk__in={pk for row in groups.values() for pk in row}
        )
    }
    may_upgrade = model_admin.has_mass_upgrade_permission(request)
    policies = governing_policies(organization_ids)
    for row in rows:
        # "governed by policy X": the policies that keep this row on a build
        row["policies"] = [
            policy
            for policy in policies.get((row["organization"], row["modem_model"]), [])
            if policy.network in ("", row["carrier"])
        ]
        row["carrier_display"] = display_network(row["carrier"])
        row["upgrades"] = (
            [
                {"build": builds[build_id], "device_ids": device_ids}
                for build_id, device_ids in groups.get(
                    (row["organization"], row["modem_model"], row["carrier"]), {}
                ).items()
                if build_id in builds
            ]
            if may_upgrade
            else []
        )
    no_service = service_not_restored(organization_ids)
    operation_opts = load_model("ModemUpgradeOperation")._meta
    for operation in no_service:
        operation.admin_url = reverse(
            f"admin:{operation_opts.app_label}_{operation_opts.model_name}_change",
            args=[operation.pk],
        )
        operation.failure = service_failure(operation.log)
    mismatches = carrier_image_mismatches(organization_ids)
    may_select = may_select_carrier_image(request.user)
    device_opts = swapper.load_model("config", "Device")._meta
    for row in mismatches:
        row["select_url"] = (
            reverse(
                f"admin:{device_opts.app_label}_{device_opts.model_name}"
                "_select_carrier_image",
                args=[row["modem"].device_id],
            )
            if may_select and row["sim_image"]
            else ""
        )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Modem firmware compliance"),
        "opts": model_admin.model._meta,
        "rows": rows,
        # beside compliance: what the health verification found
        "service_not_restored": no_service,
        "stuck_in_flash_mode": stuck_in_flash_mode(organization_ids),
        # the carrier-image report, with "switch to the SIM's carrier image"
        "carrier_image_mismatches": mismatches,
        "may_recover": may_recover(request.user),
        "organizations": organizations,
        "chosen_organization": chosen,
    }
    return TemplateResponse(request, "admin/modem_upgrader/compliance.html", context)


def may_recover(user):
    return has_action_permission(user, "recover", load_model("ModemUpgradeOperation"))


def recover_modem_view(model_admin, request, modem_pk):
    """POST: the recovery run of a modem stuck in flash mode ("Recover" on
    the compliance page); to the new operation's page, or back with why
    not."""
    if request.method != "POST" or not may_recover(request.user):
        raise PermissionDenied
    modems = load_model("DeviceModemFirmware").objects.select_related("device")
    organization_ids = managed_organization_ids(request.user)
    if organization_ids is not None:
        modems = modems.filter(device__organization_id__in=organization_ids)
    modem = get_object_or_404(modems, pk=modem_pk)
    opts = model_admin.model._meta
    back = reverse(f"admin:{opts.app_label}_{opts.model_name}_compliance")
    try:
        operation = start_recovery(modem)
    except UpgradeNotAllowed as error:
        messages.error(request, str(error))
        return HttpResponseRedirect(back)
    messages.success(
        request,
        _("Recovery run of %(device)s's modem started with %(version)s.")
        % {"device": modem.device.name, "version": operation.image.build.version},
    )
    operation_opts = operation._meta
    return HttpResponseRedirect(
        reverse(
            f"admin:{operation_opts.app_label}_{operation_opts.model_name}_change",
            args=[operation.pk],
        )
    )
