"""Mass upgrades: which devices a batch would upgrade, and the fan-out.

Both run in a constant number of queries, whatever the number of devices:
the compatibility rules of ``compatibility.py`` are expressed here as SQL.
"""

from functools import partial

import swapper
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    FilteredRelation,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    UUIDField,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import publish
from .base.rollout import ROLLOUT_FIELDS
from .compatibility import (
    ExclusionReason,
    carrier_may_be,
    model_may_be,
    model_may_be_joined,
)
from .exceptions import UpgradeNotAllowed
from .rollout import mark_batch_started, refresh_batch, wave_numbers
from .statuses import (
    ACTIVE_STATUSES,
    FAILED_STATUSES,
    TERMINAL_STATUSES,
    UNREACHABLE_STATUSES,
    ModemSelection,
    OperationStatus,
)
from .swapper import load_model
from .upgrade import (
    assign_target_image,
    finish_operation,
    insert_operations,
    release_following,
)


def candidate_devices(batch):
    """Devices of the batch's organization, filtered.

    Devices without any known modem stay in (excluded as not detected yet);
    ``from_version`` keeps devices with a modem on that version;
    ``device_ids`` (e.g. a compliance row) keeps only those devices.
    """
    Device = swapper.load_model("config", "Device")
    qs = Device.objects.filter(organization_id=batch.organization_id)
    if batch.device_ids:
        qs = qs.filter(pk__in=batch.device_ids)
    if batch.group_id:
        qs = qs.filter(group_id=batch.group_id)
    if batch.location_id:
        qs = qs.filter(devicelocation__location_id=batch.location_id)
    if batch.from_version:
        qs = qs.filter(
            Exists(_modems().filter(modem_firmware_version=batch.from_version))
        )
    return qs


def _modems():
    """A device's modems, as a subquery on the outer device."""
    return load_model("DeviceModemFirmware").objects.filter(device_id=OuterRef("pk"))


def _target_modems(batch, modems=None):
    """The device's modems a batch would flash, best candidate first: of the
    build's model, not on its version (and on ``from_version`` if set)."""
    build = batch.build
    modems = (_modems() if modems is None else modems).filter(
        model_may_be(build.modem_model)
    )
    modems = modems.exclude(modem_firmware_version=build.version)
    modems = modems.filter(carrier_may_be(build))
    if batch.from_version:
        modems = modems.filter(modem_firmware_version=batch.from_version)
    return modems.order_by("usb_path")


def modems_to_flash(batch, device_ids):
    """``{device id: (flashed, left out)}`` of the given devices: lists of
    their matching modems (``usb_path``, ``modem_imei``,
    ``modem_firmware_version``), in the order the batch flashes them. One
    query, for the rows a preview shows."""
    DeviceModemFirmware = load_model("DeviceModemFirmware")
    modems = _target_modems(
        batch, DeviceModemFirmware.objects.filter(device_id__in=list(device_ids))
    ).order_by("device_id", "usb_path")
    found = {}
    for row in modems.values(
        "device_id", "usb_path", "modem_imei", "modem_firmware_version"
    ):
        found.setdefault(row.pop("device_id"), []).append(row)
    every = batch.modems == ModemSelection.EVERY
    return {
        device_id: (rows, []) if every else (rows[:1], rows[1:])
        for device_id, rows in found.items()
    }


def _shown_modem(build, field):
    """A value of the modem the preview shows: the target modem, else the
    first modem of the build's model, else the first modem."""
    rank = Case(
        When(
            Q(modem_model=build.modem_model) & ~Q(modem_firmware_version=build.version),
            then=Value(0),
        ),
        When(modem_model=build.modem_model, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    modems = _modems().annotate(rank=rank).order_by("rank", "usb_path")
    return Subquery(modems.values(field)[:1])


def _image_for_board(images):
    """SQL choosing, per device, the first image validated for its board."""
    whens = []
    for image in images:
        condition = Q(model__in=image.boards) if image.boards else Q(pk__isnull=False)
        whens.append(When(condition, then=Value(image.pk)))
    return Case(*whens, default=None, output_field=UUIDField())


def _target_modem_q(batch, prefix="modems__"):
    """``_target_modems`` as a condition on the joined modems."""
    build = batch.build
    condition = model_may_be_joined(build.modem_model, prefix) & ~Q(
        **{f"{prefix}modem_firmware_version": build.version}
    )
    if build.networks:
        condition &= Q(**{f"{prefix}sim_network__in": build.networks})
    if batch.from_version:
        condition &= Q(**{f"{prefix}modem_firmware_version": batch.from_version})
    return condition


def _related_name(model, field="device"):
    """The name by which a device reaches ``model`` (swappable models)."""
    return model._meta.get_field(field).related_query_name()


def annotate_preview(batch, images=None):
    """Candidates annotated with ``target_image_id``, ``target_usb_path`` and
    ``target_imei`` (the modem flashed first), ``matching_modems`` (how
    many modems the batch could flash), the shown ``modem_model`` /
    ``modem_firmware_version`` and ``exclusion_reason`` (NULL = eligible).

    One pass of joins and a GROUP BY per device, not subqueries per device:
    the database hashes each table once (``benchmarks/mass_upgrade_preview.py``
    times it; a page evaluates it once, ``preview_page``). Only the shown
    values (``target_imei``, ``modem_model``, ``modem_firmware_version``)
    are subqueries, which PostgreSQL evaluates for the returned rows only.
    """
    build = batch.build
    if images is None:
        images = list(build.images.order_by("created"))
    Operation = load_model("ModemUpgradeOperation")
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")
    operations = _related_name(Operation)
    connections = _related_name(DeviceConnection)
    qs = candidate_devices(batch).annotate(
        # joins restricted to the rows that matter: a device's history of
        # operations, or its disabled connections, multiply nothing
        running_operation=FilteredRelation(
            operations, condition=Q(**{f"{operations}__status__in": ACTIVE_STATUSES})
        ),
        enabled_connection=FilteredRelation(
            connections, condition=Q(**{f"{connections}__enabled": True})
        ),
    )
    target = _target_modem_q(batch)
    qs = qs.annotate(
        target_image_id=_image_for_board(images),
        target_usb_path=Min("modems__usb_path", filter=target),
        target_imei=Subquery(_target_modems(batch).values("modem_imei")[:1]),
        # the other joins may repeat a modem: counted once
        matching_modems=Count("modems", filter=target, distinct=True),
        modem_model=_shown_modem(build, "modem_model"),
        modem_firmware_version=_shown_modem(build, "modem_firmware_version"),
        running_count=Count("running_operation"),
        connection_count=Count("enabled_connection"),
        modem_count=Count("modems"),
        model_count=Count(
            "modems", filter=model_may_be_joined(build.modem_model, "modems__")
        ),
        # a run that read the router's modem list, even an empty one
        detection_succeeded_at=Max("modem_detection__succeeded_at"),
    )
    carrier_rule = []
    if build.networks:
        # a build for some carriers: a modem of the model with the SIM of one
        qs = qs.annotate(
            carrier_count=Count(
                "modems",
                filter=model_may_be_joined(build.modem_model, "modems__")
                & Q(modems__sim_network__in=build.networks),
            )
        )
        carrier_rule = [
            When(carrier_count=0, then=Value(ExclusionReason.OTHER_CARRIER))
        ]
    reason = Case(
        When(_is_deactivated=True, then=Value(ExclusionReason.DEACTIVATED)),
        When(running_count__gt=0, then=Value(ExclusionReason.RUNNING)),
        When(
            modem_count=0,
            detection_succeeded_at__isnull=False,
            then=Value(ExclusionReason.NO_MODEM),
        ),
        When(modem_count=0, then=Value(ExclusionReason.NOT_DETECTED)),
        When(model_count=0, then=Value(ExclusionReason.OTHER_MODEL)),
        *carrier_rule,
        When(
            target_usb_path__isnull=True,
            then=Value(ExclusionReason.UP_TO_DATE),
        ),
        When(target_image_id__isnull=True, then=Value(ExclusionReason.BOARD)),
        When(connection_count=0, then=Value(ExclusionReason.NO_CONNECTION)),
        default=None,
        output_field=CharField(),
    )
    return qs.annotate(exclusion_reason=reason).order_by("name")


def preview_batch(batch):
    """The dry run: ``{"devices": eligible, "excluded": excluded}`` querysets.

    Excluded devices carry ``exclusion_reason`` (see ``ExclusionReason``).
    """
    qs = annotate_preview(batch)
    return {
        "devices": qs.filter(exclusion_reason__isnull=True),
        "excluded": qs.filter(exclusion_reason__isnull=False),
    }


def modem_counts(batch, devices):
    """``{"multi_modem_count": routers with more than one matching modem,
    "modems_count": modems the batch flashes}`` of the preview's eligible
    ``devices``, in one query."""
    every = batch.modems == ModemSelection.EVERY
    counts = devices.order_by().aggregate(
        multi_modem_count=Count("pk", filter=Q(matching_modems__gt=1)),
        routers=Count("pk"),
        matching=Coalesce(Sum("matching_modems"), 0),
    )
    return {
        "multi_modem_count": counts["multi_modem_count"],
        "modems_count": counts["matching"] if every else counts["routers"],
    }


def preview_counts(batch):
    """The preview's figures in one query: ``devices_count`` (eligible
    routers), ``excluded_count``, ``not_detected_count`` (excluded as
    "modem not detected yet") and the ``modem_counts`` of the eligible."""
    images = list(batch.build.images.order_by("created"))
    return _summary(batch, images, 0)[0]


# The fleet evaluated once (MATERIALIZED): the counts, and the first rows of
# each list by name (a top-N sort of each), side by side on every row.
#
# ``fleet`` is the one GROUP BY: candidates joined to their modems only, the
# one table whose rows are counted, so nothing repeats a modem (no COUNT
# DISTINCT). Running upgrades and enabled connections are sets of device ids
# (DISTINCT, limited to the candidates) joined 1:1. Joins only: a subquery
# in the select list (EXISTS) is costed by PostgreSQL as run once per device
# even when hashed, which pushes the estimate past ``jit_above_cost`` and
# JIT compilation then costs more than the query (measured: 0.45 s at
# 100,000 devices). The detection tells "no modem" from "not detected" only
# for devices without a modem row, the few ``undetected`` joins.
SUMMARY_SQL = """
WITH preview AS MATERIALIZED (
    SELECT
        fleet.pk,
        fleet.name,
        fleet.matching_modems,
        CASE
            WHEN fleet.is_deactivated THEN %s
            WHEN running.device_id IS NOT NULL THEN %s
            WHEN fleet.modem_count = 0 THEN %s
            WHEN fleet.model_count = 0 THEN %s
            WHEN fleet.carrier_count = 0 THEN %s
            WHEN fleet.matching_modems = 0 THEN %s
            WHEN fleet.target_image_id IS NULL THEN %s
            WHEN connected.device_id IS NULL THEN %s
        END AS exclusion_reason
    FROM ({fleet}) AS fleet
    LEFT JOIN ({running}) AS running ON running.device_id = fleet.pk
    LEFT JOIN ({connected}) AS connected ON connected.device_id = fleet.pk
),
counts AS (
    SELECT
        count(*) FILTER (WHERE exclusion_reason IS NULL),
        count(*) FILTER (WHERE exclusion_reason IS NOT NULL),
        count(*) FILTER (WHERE exclusion_reason IS NULL AND matching_modems > 1),
        coalesce(sum(matching_modems) FILTER (WHERE exclusion_reason IS NULL), 0)
    FROM preview
),
undetected AS (
    SELECT count(*) FROM preview
    LEFT JOIN ({detected}) AS detected ON detected.device_id = preview.pk
    WHERE preview.exclusion_reason = %s AND detected.device_id IS NULL
),
shown AS (
    SELECT pk FROM (
        SELECT pk FROM preview WHERE exclusion_reason IS NULL
        ORDER BY name LIMIT %s
    ) AS eligible
    UNION ALL
    SELECT pk FROM (
        SELECT pk FROM preview WHERE exclusion_reason IS NOT NULL
        ORDER BY name LIMIT %s
    ) AS excluded
)
SELECT counts.*, undetected.*, shown.pk
FROM counts CROSS JOIN undetected LEFT JOIN shown ON TRUE
"""
# no modem row: "no modem" or "not detected", told apart in ``undetected``
_MODEMLESS = "no-modem-row"


def _fleet_sql(batch, images):
    """The parts of ``SUMMARY_SQL``: ``(sql by name, their params)``, each
    compiled by the ORM (so from the swappable models' tables)."""
    build = batch.build
    model = model_may_be_joined(build.modem_model, "modems__")
    carrier = Value(1)
    if build.networks:
        # a build for some carriers: a modem of the model with the SIM of one
        carrier = Count(
            "modems", filter=model & Q(modems__sim_network__in=build.networks)
        )
    fleet = (
        candidate_devices(batch)
        .annotate(
            is_deactivated=F("_is_deactivated"),
            target_image_id=_image_for_board(images),
            modem_count=Count("modems"),
            model_count=Count("modems", filter=model),
            carrier_count=carrier,
            matching_modems=Count("modems", filter=_target_modem_q(batch)),
        )
        .order_by()
        .values(
            "pk",
            "name",
            "is_deactivated",
            "target_image_id",
            "modem_count",
            "model_count",
            "carrier_count",
            "matching_modems",
        )
    )
    candidates = candidate_devices(batch).order_by().values("pk")

    def device_ids(model, **filters):
        return (
            model.objects.filter(device_id__in=candidates, **filters)
            .order_by()
            .values("device_id")
            .distinct()
        )

    parts = {
        "fleet": fleet,
        "running": device_ids(
            load_model("ModemUpgradeOperation"), status__in=ACTIVE_STATUSES
        ),
        "connected": device_ids(
            swapper.load_model("connection", "DeviceConnection"), enabled=True
        ),
        "detected": load_model("DeviceModemDetection")
        .objects.filter(succeeded_at__isnull=False)
        .order_by()
        .values("device_id"),
    }
    sql, params = {}, {}
    for name, queryset in parts.items():
        sql[name], params[name] = queryset.query.sql_with_params()
    return sql, params, fleet.db


def _summary(batch, images, limit):
    """``(counts, ids)``: ``preview_counts``, and the ids of the first
    ``limit`` eligible and the first ``limit`` excluded devices by name, in
    one query (``SUMMARY_SQL``). Only which devices are excluded is decided
    here, and the reason "not detected yet" for the count: the shown rows'
    reasons come from ``annotate_preview``, whose rules these follow."""
    sql, params, db = _fleet_sql(batch, images)
    reasons = (
        ExclusionReason.DEACTIVATED,
        ExclusionReason.RUNNING,
        _MODEMLESS,
        ExclusionReason.OTHER_MODEL,
        ExclusionReason.OTHER_CARRIER,
        ExclusionReason.UP_TO_DATE,
        ExclusionReason.BOARD,
        ExclusionReason.NO_CONNECTION,
    )
    with connections[db].cursor() as cursor:
        cursor.execute(
            SUMMARY_SQL.format(**sql),
            (
                *reasons,
                *params["fleet"],
                *params["running"],
                *params["connected"],
                *params["detected"],
                _MODEMLESS,
                limit,
                limit,
            ),
        )
        rows = cursor.fetchall()
    eligible, excluded, multi_modem, matching, not_detected = rows[0][:5]
    # PostgreSQL sums integers as numeric (a Decimal), SQLite as an integer
    matching = int(matching)
    every = batch.modems == ModemSelection.EVERY
    counts = {
        "devices_count": eligible,
        "excluded_count": excluded,
        "not_detected_count": not_detected,
        "multi_modem_count": multi_modem,
        "modems_count": matching if every else eligible,
    }
    return counts, [row[5] for row in rows if row[5] is not None]


def preview_page(batch, fields, limit):
    """What a preview page shows, the fleet evaluated once: ``(counts,
    devices, excluded)``, the ``preview_counts`` and the first ``limit``
    eligible and excluded devices by name as dicts of ``fields`` (which
    include ``exclusion_reason``). The shown rows' own values (their
    modems) are computed for those rows only: three queries whatever the
    fleet."""
    images = list(batch.build.images.order_by("created"))  # read once
    counts, ids = _summary(batch, images, limit)
    annotated = annotate_preview(batch, images)
    rows = list(annotated.filter(pk__in=ids).values(*fields)) if ids else []
    devices = [row for row in rows if row["exclusion_reason"] is None]
    excluded = [row for row in rows if row["exclusion_reason"] is not None]
    return counts, devices, excluded


def not_detected_devices(batch):
    """The preview's devices excluded as "modem not detected yet"."""
    return preview_batch(batch)["excluded"].filter(
        exclusion_reason=ExclusionReason.NOT_DETECTED
    )


def create_batch(build, organization, upgrade_options=None, **fields):
    """Validates and saves a batch (filters, rollout and schedule ``fields``),
    and queues its fan-out once committed."""
    batch = load_model("ModemBatchUpgradeOperation")(
        build=build,
        organization=organization,
        upgrade_options=upgrade_options or {},
        **fields,
    )
    batch.full_clean()
    if not preview_batch(batch)["devices"].exists():
        raise ValidationError(
            _("No device can be upgraded to this build with the given filters.")
        )
    batch.save()
    transaction.on_commit(partial(publish.fan_out, batch.pk))
    return batch


def retry_failed(batch):
    """A new mass upgrade of the devices whose upgrade failed or aborted,
    with the same build, options, choice of modems and rollout settings."""
    device_ids = sorted(
        {
            str(pk)
            for pk in batch.operations.filter(status__in=FAILED_STATUSES).values_list(
                "device_id", flat=True
            )
        }
    )
    if not device_ids:
        raise UpgradeNotAllowed(_("No device of this mass upgrade failed."))
    # the retry starts now: the original's start time and deadline may be past
    fields = [f for f in ROLLOUT_FIELDS if f not in ("scheduled_at", "deadline")]
    return create_batch(
        batch.build,
        batch.organization,
        upgrade_options=batch.upgrade_options,
        device_ids=device_ids,
        modems=batch.modems,
        retry_of=batch,
        **{field: getattr(batch, field) for field in fields},
    )


def start_batch(batch):
    """Creates the batch's operations, in rollout waves (one wave per router);
    the scheduler starts them (``scheduler.py``) within the batch's limits.

    Each operation flashes one modem (``target_usb_path``). With ``modems``
    set to every matching modem, a router's further modems get operations
    too, each waiting for the previous one (``runs_after``): the database
    still runs one upgrade per router at a time. The rows are inserted in
    bulk; a device that started another upgrade since the preview is
    skipped by the database's one-active-upgrade constraint instead of
    failing the whole batch.
    """
    Operation = load_model("ModemUpgradeOperation")
    with transaction.atomic():
        if not mark_batch_started(batch.pk, timezone.now()):
            return []  # already fanned out (task delivered twice)
        eligible = list(
            preview_batch(batch)["devices"].values_list(
                "pk", "target_image_id", "target_usb_path"
            )
        )
        waves = wave_numbers(batch, len(eligible))
        insert_operations(
            [
                Operation(
                    device_id=device_id,
                    image_id=image_id,
                    usb_path=usb_path,
                    batch_id=batch.pk,
                    upgrade_options=batch.upgrade_options,
                    wave=wave,
                )
                for (device_id, image_id, usb_path), wave in zip(eligible, waves)
            ],
            ignore_conflicts=True,
        )
        if batch.modems == ModemSelection.EVERY:
            _queue_next_modems(batch)
        created = Operation.objects.filter(
            batch_id=batch.pk, status=OperationStatus.IDLE
        )
        assign_target_image(created)
        operation_ids = [str(pk) for pk in created.values_list("pk", flat=True)]
    if not operation_ids:
        refresh_batch(batch.pk)
    transaction.on_commit(publish.dispatch_soon)
    return operation_ids


def _queue_next_modems(batch):
    """One waiting operation per further matching modem of each router the
    batch got (two queries): same image, options and wave as the router's
    first, each after the previous one."""
    Operation = load_model("ModemUpgradeOperation")
    firsts = {
        operation.device_id: operation
        for operation in Operation.objects.filter(batch_id=batch.pk).only(
            "pk", "device_id", "image_id", "usb_path", "wave"
        )
    }
    modems = _target_modems(
        batch,
        load_model("DeviceModemFirmware").objects.filter(
            device_id__in=Operation.objects.filter(batch_id=batch.pk).values(
                "device_id"
            )
        ),
    ).order_by("device_id", "usb_path")
    following = []
    previous = {}
    for device_id, usb_path in modems.values_list("device_id", "usb_path"):
        first = firsts[device_id]
        if usb_path == first.usb_path:
            continue
        operation = Operation(
            device_id=device_id,
            image_id=first.image_id,
            usb_path=usb_path,
            batch_id=batch.pk,
            upgrade_options=batch.upgrade_options,
            wave=first.wave,
            runs_after=previous.get(device_id, first),
        )
        previous[device_id] = operation
        following.append(operation)
    insert_operations(following)


def release_next_modems():
    """The next modem's upgrade of each router whose previous one finished:
    released (it may start) after a success, skipped after anything else,
    since a router whose modem failed is left as it is for an operator.
    Called by the scheduler before it picks what to start; one query when
    there is nothing to do. Returns how many were released."""
    Operation = load_model("ModemUpgradeOperation")
    ready = Operation.objects.filter(
        status=OperationStatus.IDLE,
        runs_after__isnull=False,
        runs_after__status__in=TERMINAL_STATUSES,
    )
    released = 0
    for pk, previous_status, previous_path in ready.values_list(
        "pk", "runs_after__status", "runs_after__usb_path"
    )[:1000]:
        if previous_status != OperationStatus.SUCCESS:
            finish_operation(
                pk,
                OperationStatus.CANCELLED,
                gettext(
                    "not started: the upgrade of the modem at %(usb_path)s of "
                    "this router ended %(status)s, its other modems are left "
                    "as they are"
                )
                % {"usb_path": previous_path or "-", "status": previous_status},
            )
            continue
        released += release_following(pk)
    return released


def add_unreachable_reasons(excluded, key="reason"):
    """A modem "not detected yet" because the server cannot reach the
    router says so: ``router-unreachable``, in words with the detection's
    own (one query).

    ``excluded`` are rows of the preview's excluded devices (``pk``,
    ``exclusion_reason``) whose ``key`` holds the reason shown to people;
    shared by the admin's and the REST API's preview."""
    not_detected = [
        row
        for row in excluded
        if row["exclusion_reason"] == ExclusionReason.NOT_DETECTED
    ]
    if not not_detected:
        return
    detections = {
        detection.device_id: detection
        for detection in load_model("DeviceModemDetection").objects.filter(
            device_id__in=[row["pk"] for row in not_detected],
            status__in=UNREACHABLE_STATUSES,
        )
    }
    for row in not_detected:
        detection = detections.get(row["pk"])
        if detection is None:
            continue
        row["exclusion_reason"] = ExclusionReason.UNREACHABLE
        reason = str(ExclusionReason.labels[ExclusionReason.UNREACHABLE])
        if detection.reason:
            reason = f"{reason} ({detection.reason})"
        row[key] = reason
