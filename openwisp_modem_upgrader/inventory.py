"""The fleet's modems compared with the catalogue, as SQL.

One definition of "behind the newest build" and of a device's compliance
state, used by the device list (columns, filters), the dashboard chart, the
compliance page and its REST endpoint. Every function here runs a constant
number of queries whatever the number of devices.

The newest build of a modem is the *released* build with the highest version
(``compatibility.version_key``: versions compared as versions, not by
creation date; the most recently created wins a tie) for its exact model in
the category of the image it runs (when known), else in any category of the
device's organization or shared ones, among the builds for every network
(generic) or for the network of the modem's SIM (``carriers``). Drafts and
withdrawn builds are never the target. A modem is behind when it reports a
firmware version other than that build's.
"""

import swapper
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Concat
from django.utils.translation import gettext_lazy as _

from .carriers import carrier_image_mismatch, sim_carrier_image
from .compatibility import BuildStatus
from .statuses import UNREACHABLE_STATUSES, DetectionStatus, OperationStatus
from .swapper import load_model


class ComplianceState:
    NOT_DETECTED = "not-detected"
    UNREACHABLE = "unreachable"
    BEHIND = "behind"
    UP_TO_DATE = "up-to-date"
    UNKNOWN = "unknown"

    labels = {
        NOT_DETECTED: _("never detected"),
        UNREACHABLE: _("router unreachable"),
        BEHIND: _("behind the newest build"),
        UP_TO_DATE: _("on the newest build"),
        UNKNOWN: _("no modem or no build to compare with"),
    }
    colors = {
        UP_TO_DATE: "#267126",
        BEHIND: "#ffb442",
        UNREACHABLE: "#a72d1d",
        NOT_DETECTED: "#353c44",
        UNKNOWN: "#9aa5b1",
    }


def _newest_build(field):
    """Subquery on an outer DeviceModemFirmware: ``field`` of its newest build."""
    builds = load_model("ModemBuild").objects.filter(
        modem_model=OuterRef("modem_model"), status=BuildStatus.RELEASED
    )
    # per (model, carrier): a build for other networks is not the target of
    # a modem whose SIM is elsewhere (or unknown); a generic build is
    builds = builds.filter(
        Q(carrier_key="")
        | Q(
            carrier_key__contains=Concat(
                Value(","), OuterRef("sim_network"), Value(",")
            )
        )
    )
    in_category = builds.filter(category_id=OuterRef("image__build__category_id"))
    in_organization = builds.filter(
        Q(category__organization_id=OuterRef("device__organization_id"))
        | Q(category__organization__isnull=True)
    )
    newest_first = ("-version_key", "-created")
    return Coalesce(
        Subquery(in_category.order_by(*newest_first).values(field)[:1]),
        Subquery(in_organization.order_by(*newest_first).values(field)[:1]),
    )


def annotate_newest(modems):
    """``modems`` with ``newest_build_id``, ``newest_version`` and ``behind``."""
    modems = modems.exclude(modem_model="").annotate(
        newest_build_id=_newest_build("pk"),
        newest_version=_newest_build("version"),
    )
    return modems.annotate(
        behind=Case(
            When(
                Q(newest_version__isnull=False)
                & ~Q(modem_firmware_version="")
                & ~Q(modem_firmware_version=F("newest_version")),
                then=Value(True),
            ),
            default=Value(False),
            output_field=BooleanField(),
        )
    )


def behind_modems():
    return annotate_newest(load_model("DeviceModemFirmware").objects).filter(
        behind=True
    )


def _device_modems():
    return load_model("DeviceModemFirmware").objects.filter(device_id=OuterRef("pk"))


def _detection():
    return load_model("DeviceModemDetection").objects.filter(device_id=OuterRef("pk"))


def compliance_state():
    """Expression of a device's ``ComplianceState`` (first matching wins)."""
    return Case(
        # one vocabulary: a router whose last detection could not reach it
        # is "unreachable", whether or not it was ever detected
        When(
            Exists(_detection().filter(status__in=UNREACHABLE_STATUSES)),
            then=Value(ComplianceState.UNREACHABLE),
        ),
        When(
            ~Exists(_device_modems())
            & ~Exists(_detection().filter(succeeded_at__isnull=False)),
            then=Value(ComplianceState.NOT_DETECTED),
        ),
        When(
            Exists(behind_modems().filter(device_id=OuterRef("pk"))),
            then=Value(ComplianceState.BEHIND),
        ),
        When(
            Exists(
                annotate_newest(_device_modems()).filter(newest_version__isnull=False)
            ),
            then=Value(ComplianceState.UP_TO_DATE),
        ),
        default=Value(ComplianceState.UNKNOWN),
        output_field=CharField(),
    )


def annotate_devices(devices):
    """Device list columns: first modem's model and version, number of
    modems, last detection, and whether a modem is behind."""
    first = _device_modems().order_by("usb_path")
    return devices.annotate(
        inventory_modem_model=Subquery(first.values("modem_model")[:1]),
        inventory_firmware_version=Subquery(first.values("modem_firmware_version")[:1]),
        inventory_modem_count=Subquery(
            _device_modems()
            .order_by()
            .values("device_id")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        ),
        inventory_detected_at=Subquery(_detection().values("attempted_at")[:1]),
        inventory_detection_status=Subquery(_detection().values("status")[:1]),
        inventory_behind=Exists(behind_modems().filter(device_id=OuterRef("pk"))),
    )


def compliance_table(organization_ids=None):
    """Rows per organization, modem model and carrier (the SIM's network),
    sorted by organization name.

    Each row: ``organization``, ``organization_name``, ``modem_model``
    (empty for devices whose modem is not known), ``carrier`` (MCC-MNC
    digits, empty when no SIM network is known), ``devices``, ``versions``
    ({firmware version: devices}), ``newest_versions``, ``behind``,
    ``unreachable``, ``never_detected``. ``organization_ids`` None: all.
    Devices are counted once per row even with two modems of that model.
    """
    Device = swapper.load_model("config", "Device")
    modems = annotate_newest(load_model("DeviceModemFirmware").objects)
    devices = Device.objects.all()
    if organization_ids is not None:
        modems = modems.filter(device__organization_id__in=organization_ids)
        devices = devices.filter(organization_id__in=organization_ids)
    rows = {}

    def row(organization_id, organization_name, modem_model, carrier=""):
        key = (organization_id, modem_model, carrier)
        if key not in rows:
            rows[key] = {
                "organization": organization_id,
                "organization_name": organization_name,
                "modem_model": modem_model,
                "carrier": carrier,
                "devices": 0,
                "versions": {},
                "newest_versions": set(),
                "behind": 0,
                "unreachable": 0,
                "never_detected": 0,
            }
        return rows[key]

    key_fields = ("device__organization_id", "device__organization__name")
    grouping = (*key_fields, "modem_model", "sim_network")
    unreachable = Q(device__modem_detection__status__in=UNREACHABLE_STATUSES)
    for item in (
        modems.values(*grouping)
        .annotate(
            devices=Count("device", distinct=True),
            behind_devices=Count("device", distinct=True, filter=Q(behind=True)),
            unreachable_devices=Count("device", distinct=True, filter=unreachable),
        )
        .order_by()
    ):
        current = row(*(item[field] for field in grouping))
        current.update(
            devices=item["devices"],
            behind=item["behind_devices"],
            unreachable=item["unreachable_devices"],
        )
    for item in (
        modems.values(*grouping, "modem_firmware_version")
        .annotate(devices=Count("device", distinct=True))
        .order_by()
    ):
        current = row(*(item[field] for field in grouping))
        current["versions"][item["modem_firmware_version"]] = item["devices"]
    for item in (
        modems.filter(newest_version__isnull=False)
        .values(*grouping, "newest_version")
        .distinct()
        .order_by()
    ):
        current = row(*(item[field] for field in grouping))
        current["newest_versions"].add(item["newest_version"])
    unknown = devices.filter(~Exists(_device_modems()))
    succeeded = Exists(_detection().filter(succeeded_at__isnull=False))
    for item in (
        unknown.values("organization_id", "organization__name")
        .annotate(
            devices=Count("pk"),
            never_detected=Count(
                "pk",
                filter=~succeeded
                & ~Q(modem_detection__status__in=UNREACHABLE_STATUSES),
            ),
            unreachable=Count(
                "pk", filter=Q(modem_detection__status__in=UNREACHABLE_STATUSES)
            ),
        )
        .order_by()
    ):
        current = row(item["organization_id"], item["organization__name"], "")
        current.update(
            devices=item["devices"],
            never_detected=item["never_detected"],
            unreachable=item["unreachable"],
        )
    result = []
    for current in rows.values():
        current["versions"] = dict(sorted(current["versions"].items()))
        current["newest_versions"] = sorted(current["newest_versions"])
        result.append(current)
    result.sort(
        key=lambda r: (
            r["organization_name"],
            r["modem_model"] == "",
            r["modem_model"],
            r["carrier"],
        )
    )
    return result


def behind_device_groups(organization_ids=None, by_carrier=False):
    """``{(organization id, modem model): {newest build id: [device ids]}}``:
    the devices behind, grouped by the build they would be upgraded to (what
    "upgrade these devices" previews, one mass upgrade per build).
    ``by_carrier``: keyed by (organization id, modem model, carrier), the
    rows of ``compliance_table``."""
    modems = behind_modems()
    if organization_ids is not None:
        modems = modems.filter(device__organization_id__in=organization_ids)
    groups = {}
    for organization_id, modem_model, network, build_id, device_id in (
        modems.values_list(
            "device__organization_id",
            "modem_model",
            "sim_network",
            "newest_build_id",
            "device_id",
        )
        .distinct()
        .order_by("device__organization_id", "modem_model", "device_id")
    ):
        key = (organization_id, modem_model)
        if by_carrier:
            key += (network,)
        builds = groups.setdefault(key, {})
        builds.setdefault(build_id, []).append(str(device_id))
    return groups


# -- carrier images ------------------------------------------------------------


def carrier_image_mismatches(organization_ids=None):
    """The fleet report of modems whose active stored carrier image does not
    suit their SIM (``carriers.carrier_image_mismatch``): rows with
    ``modem`` (the modem row), ``device_name``, ``organization_name``,
    ``reason`` and ``sim_image`` (the stored image made for the SIM, ``""``
    when none is), sorted by device name. One query: the candidates (a SIM
    network and an active image known) are read once, the rule is applied
    in Python since it reads the configured image table."""
    modems = load_model("DeviceModemFirmware").objects.exclude(sim_network="")
    modems = modems.exclude(carrier_image="")
    if organization_ids is not None:
        modems = modems.filter(device__organization_id__in=organization_ids)
    rows = []
    for modem in modems.select_related("device__organization").order_by(
        "device__name", "usb_path"
    ):
        active = next(
            (
                image["index"]
                for image in modem.carrier_images or []
                if image.get("name") == modem.carrier_image
            ),
            "",
        )
        reason = carrier_image_mismatch(
            modem.sim_network, modem.carrier_images or [], active
        )
        if reason:
            rows.append(
                {
                    "modem": modem,
                    "device_name": modem.device.name,
                    "organization_name": modem.device.organization.name,
                    "reason": reason,
                    # the stored image that fixes it ("select carrier image")
                    "sim_image": sim_carrier_image(
                        modem.sim_network, modem.carrier_images
                    ),
                }
            )
    return rows


# -- needs attention: health verification (issue 22) -----------------------

ATTENTION_LIMIT = 100


def service_not_restored(organization_ids=None, limit=ATTENTION_LIMIT):
    """Upgrades that ended "flashed, service not restored" on a modem no
    later upgrade brought back (newest first)."""
    Operation = load_model("ModemUpgradeOperation")
    later_success = Operation.objects.filter(
        device_id=OuterRef("device_id"),
        usb_path=OuterRef("usb_path"),
        status=OperationStatus.SUCCESS,
        created__gt=OuterRef("created"),
    )
    operations = (
        Operation.objects.filter(status=OperationStatus.NO_SERVICE)
        .exclude(Exists(later_success))
        .select_related("device", "image__build")
        .order_by("-finished_at")
    )
    if organization_ids is not None:
        operations = operations.filter(device__organization_id__in=organization_ids)
    return list(operations[:limit])


def batch_remediations(batch, limit=ATTENTION_LIMIT):
    """The re-flashes of the previous build that followed the batch's
    upgrades without service (``remediation_of``). They are not the batch's
    operations: a device is counted once, by its own upgrade's outcome, and
    a rollout stopped by that failure still runs its re-flash (a single
    upgrade for the scheduler)."""
    return list(
        load_model("ModemUpgradeOperation")
        .objects.filter(remediation_of__batch=batch)
        .select_related("device", "image__build")
        .order_by("device__name", "created")[:limit]
    )


def stuck_in_flash_mode(organization_ids=None, limit=ATTENTION_LIMIT):
    """Modems the last detection found in a flashing mode (an interrupted
    flash: a recovery run brings them back)."""
    modems = (
        load_model("DeviceModemFirmware")
        .objects.filter(detection_status=DetectionStatus.FLASHING)
        .select_related("device", "image__build")
        .order_by("device__name", "usb_path")
    )
    if organization_ids is not None:
        modems = modems.filter(device__organization_id__in=organization_ids)
    return list(modems[:limit])
