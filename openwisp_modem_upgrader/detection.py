"""Modem detection: read every modem of a router, record what changed.

One SSH session per router: ``modem-info.sh``, with the library it sources
and the AT helper inlined, is sent on the standard input of ``sh -s`` over
the device's working ``DeviceConnection`` (no SCP). Its output is parsed
strictly; every outcome (unreachable, timeout, no modem, flashing, unknown
vendor, garbage) is recorded with its reason, never raised.

``record_modems()`` is the one place modem readings are written: detection
and the upgrade's final reading both go through it, so history rows and the
unexplained-change flag follow one rule.
"""

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import timedelta

import swapper
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from openwisp_controller.connection.exceptions import NoWorkingDeviceConnectionError

from . import publish
from . import settings as app_settings
from .carriers import mcc_mnc
from .device_contract import (  # noqa: F401 (GarbageOutput: its former path)
    GarbageOutput,
    excerpt,
    parse_modem_list,
)
from .device_scripts import bundled_script
from .exceptions import RecoverableModemFailure
from .signals import (
    modem_stuck_in_flash_mode,
    send_after_commit,
    unexplained_modem_change,
)
from .ssh import CommandTimeout, RouterShell
from .statuses import ACTIVE_STATUSES, DetectionStatus, ModemChangeSource
from .swapper import load_model
from .upgraders import get_upgrader_class

logger = logging.getLogger(__name__)

# what changes a modem's identity; a change of one of these without an
# upgrade explaining it is flagged
IDENTITY = ("modem_model", "modem_revision", "modem_firmware_version", "modem_imei")
# readings kept on the modem row without a history row of their own: the
# registered network follows roaming, the image list and the selection mode
# change with the active image or the SIM, which are recorded
UNRECORDED_FIELDS = {"sim_operator", "sim_imsi", "carrier_images", "carrier_selection"}
SSH_CONNECTOR = "openwisp_controller.connection.connectors.ssh.Ssh"
_detecting = threading.local()
# SQLite (the test project's database) answers "table is locked" at once to
# concurrent threads of the in-memory shared-cache database: there
# detections run one at a time. PostgreSQL runs them in parallel.
_sqlite_lock = threading.RLock()


def db_turn():
    return _sqlite_lock if connection.vendor == "sqlite" else nullcontext()


# -- the script -------------------------------------------------------------


def modem_info_script():
    """modem-info.sh with its libraries inlined (``bundled_script``)."""
    return bundled_script("modem-info.sh", "MODEM_INFO_BUNDLED")


# -- one device ---------------------------------------------------------------


def detect_device(device):
    """Reads the modems of ``device`` and records the outcome; never raises.

    Returns the detection status.
    """
    started_at = timezone.now()
    try:
        status, reason, modems = read_router_modems(device)
        if modems is not None:
            status, reason = record_modems(device, modems, ModemChangeSource.DETECTION)
    except Exception as error:  # a bug must not stop a sweep
        logger.exception("modem detection of %s crashed", device.pk)
        status, reason, modems = (
            DetectionStatus.ERROR,
            f"unexpected error: {error!r}",
            None,
        )
    _record_detection(device, started_at, status, reason, modems)
    return status


def read_router_modems(device):
    """``(status, reason, modems or None)`` from one SSH session."""
    _detecting.device_id = device.pk
    try:
        with db_turn():
            device_connection = working_connection(device)
    except NoWorkingDeviceConnectionError as error:
        reason = error.connection.failure_reason if error.connection else ""
        return (
            DetectionStatus.UNREACHABLE,
            (
                f"no working SSH connection: {reason}"
                if reason
                else "no enabled SSH connection"
            ),
            None,
        )
    finally:
        _detecting.device_id = None
    try:
        output, code = RouterShell(device_connection).run_script(
            modem_info_script(), timeout=app_settings.DETECTION_TIMEOUT
        )
    except CommandTimeout as error:
        return DetectionStatus.TIMEOUT, str(error), None
    except RecoverableModemFailure as error:
        return DetectionStatus.UNREACHABLE, str(error), None
    finally:
        device_connection.disconnect()
    if code != 0:
        return (
            DetectionStatus.ERROR,
            f"modem-info.sh exited with {code}: {excerpt(output)}",
            None,
        )
    try:
        return DetectionStatus.OK, "", parse_modem_list(output)
    except GarbageOutput as error:
        return DetectionStatus.GARBAGE, f"unreadable modem list: {error}", None


def working_connection(device):
    """``DeviceConnection.get_working_connection()`` without its open
    iterator: a cursor left open while connecting would keep SQLite's table
    locks for the whole detection."""
    DeviceConnection = swapper.load_model("connection", "DeviceConnection")
    candidates = list(
        DeviceConnection.objects.filter(
            device=device, enabled=True, credentials__connector=SSH_CONNECTOR
        ).order_by("-is_working")
    )
    for device_connection in candidates:
        if device_connection.connect():
            return device_connection
    raise NoWorkingDeviceConnectionError(
        connection=candidates[-1] if candidates else None
    )


def _record_detection(device, started_at, status, reason, modems):
    now = timezone.now()
    defaults = {
        "started_at": started_at,
        "attempted_at": now,
        "status": status,
        "reason": reason[:255],
    }
    if modems is not None:
        defaults.update(succeeded_at=now, modem_count=len(modems))
    load_model("DeviceModemDetection").objects.update_or_create(
        device=device, defaults=defaults
    )


def is_detecting(device_id):
    """True while this thread's detection connects to ``device_id``."""
    return getattr(_detecting, "device_id", None) == device_id


# -- recording ----------------------------------------------------------------


def record_modems(device, modems, source, operation=None):
    """Stores parsed modem entries of ``device``; returns (status, reason).

    Rows are created when a modem is first seen; history rows are written
    only for changes; modems the router no longer lists become ``missing``.
    ``operation`` is the upgrade this reading belongs to (source upgrade).
    """
    now = timezone.now()
    DeviceModemFirmware = load_model("DeviceModemFirmware")
    with transaction.atomic():
        rows = {
            row.usb_path: row
            for row in DeviceModemFirmware.objects.select_for_update().filter(
                device=device
            )
        }
        upgrading = _active_operation_exists(device)
        reported = set()
        for modem in modems:
            row = _row_for(device, rows, modem)
            reported.add(row.usb_path)
            _apply_reading(row, modem, source, operation, now, upgrading)
        for usb_path, row in rows.items():
            if usb_path and usb_path not in reported:
                row.detection_attempted_at = now
                row.detection_status = DetectionStatus.MISSING
                row.detection_reason = "not listed by the router at the last reading"
                row.save()
    if not modems:
        return DetectionStatus.NO_MODEM, "the router lists no modem"
    flashing = [m["usb_path"] for m in modems if m["mode"] == "flashing"]
    if flashing:
        return (
            DetectionStatus.OK,
            f"modem in flashing mode at {', '.join(flashing)}",
        )
    return DetectionStatus.OK, ""


def _active_operation_exists(device):
    return (
        load_model("ModemUpgradeOperation")
        .objects.filter(device=device, status__in=ACTIVE_STATUSES)
        .exists()
    )


def _row_for(device, rows, modem):
    """The row of this modem: by USB path, else the row known without a path
    (created by an upgrade before any detection), else a new one."""
    usb_path = modem["usb_path"]
    if usb_path in rows:
        return rows[usb_path]
    pathless = rows.get("")
    if pathless is not None and pathless.modem_model in ("", modem["model"]):
        del rows[""]
        pathless.usb_path = usb_path
        rows[usb_path] = pathless
        return pathless
    row = load_model("DeviceModemFirmware")(device=device, usb_path=usb_path)
    rows[usb_path] = row
    return row


def _apply_reading(row, modem, source, operation, now, upgrading):
    row.detection_attempted_at = now
    if modem["mode"] == "flashing":
        newly_stuck = row.detection_status != DetectionStatus.FLASHING
        row.detection_status = DetectionStatus.FLASHING
        row.detection_reason = (
            f"in flashing mode (USB {modem['usb_id']}): an interrupted flash, "
            "recover it with a recovery run (--lossrecovery)"
        )
        row.save()
        # during an upgrade of the router a flashing mode is expected
        if newly_stuck and not upgrading:
            send_after_commit(
                modem_stuck_in_flash_mode,
                sender=type(row),
                modem=row,
                usb_id=modem["usb_id"],
            )
        return
    if not modem["model"]:
        row.detection_status = DetectionStatus.NOT_IDENTIFIED
        row.detection_reason = (
            f"on USB ({modem['usb_id'] or 'unknown id'}) but answers neither "
            "ModemManager nor AT commands"
        )
        row.save()
        return
    new = {
        "modem_manufacturer": modem["manufacturer"],
        "modem_model": modem["model"],
        "modem_revision": modem["revision"],
        "modem_firmware_version": modem["firmware"],
        "modem_imei": modem["imei"],
        **carrier_reading(modem),
    }
    first_reading = row.modem_detected_at is None
    changed = [field for field, value in new.items() if getattr(row, field) != value]
    identity_changed = [f for f in changed if f in IDENTITY]
    # an upgrade explains its own modem only, not the router's other one
    explaining = operation
    if operation is not None and operation.usb_path not in ("", row.usb_path):
        explaining = None
    if changed and explaining is None and not first_reading:
        explaining = _explaining_operation(row)
    unexplained = bool(identity_changed) and not first_reading and explaining is None
    for field, value in new.items():
        setattr(row, field, value)
    row.modem_detected_at = now
    row.detection_status, row.detection_reason = _vendor_status(modem["model"])
    if unexplained:
        row.unexplained_change = True
        row.unexplained_change_at = now
    if not upgrading or source == ModemChangeSource.UPGRADE:
        _link_image(row)
    row.save()
    if unexplained:
        send_after_commit(unexplained_modem_change, sender=type(row), modem=row)
    if set(changed) - UNRECORDED_FIELDS:
        load_model("ModemHistory").objects.create(
            device_id=row.device_id,
            modem=row,
            usb_path=row.usb_path,
            detected_at=now,
            manufacturer=modem["manufacturer"],
            model=modem["model"],
            revision=modem["revision"],
            firmware_version=modem["firmware"],
            imei=modem["imei"],
            source=source,
            operation=explaining,
            unexplained=unexplained,
            sim_iccid=row.sim_iccid,
            sim_network=row.sim_network,
            carrier_image=row.carrier_image,
        )


def carrier_reading(modem):
    """The SIM and carrier-image fields of a modem row from modem-info's
    "carrier" object; nothing when the router's script does not print it
    (the fields keep their last reading). A change of these writes a
    history row, never an unexplained-change flag: a SIM swap or the
    modem's own image selection is not a firmware change."""
    carrier = modem.get("carrier")
    if carrier is None:
        return {}
    images = carrier["images"]
    active = {image["index"]: image["name"] for image in images}.get(
        carrier["active"], ""
    )
    return {
        "sim_state": carrier["sim"],
        "sim_iccid": carrier["iccid"],
        "sim_imsi": carrier["imsi"],
        "sim_network": mcc_mnc(carrier["imsi"]),
        "sim_operator": carrier["operator"],
        "carrier_images": images,
        "carrier_image": active,
        "carrier_selection": carrier["selection"],
    }


def _explaining_operation(row):
    """The latest upgrade of this modem that wrote to it since its last
    reading (a flash that failed may have changed it too)."""
    return (
        load_model("ModemUpgradeOperation")
        .objects.filter(
            device_id=row.device_id,
            usb_path__in=(row.usb_path, ""),
            flash_started=True,
            modified__gte=row.modem_detected_at,
        )
        .order_by("-created")
        .first()
    )


def _vendor_status(model):
    """ok when an upgrader made for this model exists (its declared
    ``supported_models``); catch-all upgraders (the generic command one)
    do not count: they know no model."""
    for upgrader_type in app_settings.UPGRADERS_MAP:
        try:
            upgrader_class = get_upgrader_class(upgrader_type)
        except LookupError:
            continue
        if not upgrader_class.declares_models():
            continue
        if upgrader_class.supports_modem(model):
            return DetectionStatus.OK, ""
    return (
        DetectionStatus.UNKNOWN_VENDOR,
        f"no upgrader can flash {model[:64]} modems (inventory only)",
    )


def _link_image(row):
    """Points ``image`` at the known build the modem runs (org or shared)."""
    version = row.modem_firmware_version or row.modem_revision
    device = row.device
    current = row.image
    if (
        current is not None
        and current.build.version == version
        and current.build.modem_model == row.modem_model
    ):
        row.installed = True
        return
    images = (
        load_model("ModemFirmwareImage")
        .objects.filter(
            Q(build__category__organization_id=device.organization_id)
            | Q(build__category__organization__isnull=True),
            build__version=version,
            build__modem_model=row.modem_model,
        )
        .order_by("build__category__organization", "created")
    )
    for image in images:
        if not image.boards or device.model in image.boards:
            row.image, row.installed = image, True
            return
    row.image, row.installed = None, False


# -- many devices -----------------------------------------------------------


class DetectionSlots:
    """A fleet-wide counting semaphore in Django's cache (Redis in
    production): at most ``size`` detections hold a slot at once, whatever
    the number of workers and sweeps. A slot is a lease, so a killed worker
    frees it after ``lease`` seconds."""

    prefix = "modem-upgrader:detection-slot:"

    def __init__(self, size, lease, poll=0.05):
        self.size, self.lease, self.poll = size, lease, poll

    def acquire(self):
        token = uuid.uuid4().hex
        while True:
            for slot in range(self.size):
                key = f"{self.prefix}{slot}"
                if cache.add(key, token, timeout=self.lease):
                    return key, token
            time.sleep(self.poll)

    def release(self, held):
        key, token = held
        if cache.get(key) == token:
            cache.delete(key)


def fair_order(devices):
    """Device ids round-robin across organizations, oldest attempt first.

    ``devices`` yields ``(device_id, organization_id)`` already ordered by
    last attempt; an organization with 10,000 routers does not delay the
    first router of an organization with 10.
    """
    queues = {}
    for device_id, organization_id in devices:
        queues.setdefault(organization_id, []).append(device_id)
    ordered = []
    queues = list(queues.values())
    for position in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[position] for q in queues if position < len(q))
    return ordered


def detect_devices(device_ids, concurrency=None, keep_going=None):
    """Detects each device, at most ``concurrency`` SSH sessions at once
    (and never more than the fleet-wide slots); returns {status: count}.
    ``keep_going()``, asked before each device, may stop the run."""
    concurrency = concurrency or app_settings.DETECTION_CONCURRENCY
    slots = DetectionSlots(
        app_settings.DETECTION_CONCURRENCY, app_settings.DETECTION_TIMEOUT + 120
    )
    Device = swapper.load_model("config", "Device")

    def detect_one(device_id):
        if keep_going is not None and not keep_going():
            return None
        held = slots.acquire()
        try:
            with db_turn():
                device = Device.objects.filter(pk=device_id).first()
                return detect_device(device) if device else None
        finally:
            slots.release(held)

    def detect_in_thread(device_id):
        try:
            return detect_one(device_id)
        finally:
            # pool threads die with the pool: never leave their connection open
            with db_turn():
                connections.close_all()

    device_ids = list(device_ids)
    if len(device_ids) <= 1 or concurrency == 1:
        statuses = map(detect_one, device_ids)
        return _count(statuses)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return _count(pool.map(detect_in_thread, device_ids))


def _count(statuses):
    counts = {}
    for status in statuses:
        if status:
            counts[status] = counts.get(status, 0) + 1
    return counts


def due_devices(now=None):
    """Devices the sweep should detect: with an enabled connection, not
    deactivated, never attempted or not since ``DETECTION_INTERVAL``."""
    Device = swapper.load_model("config", "Device")
    now = now or timezone.now()
    limit = now - timedelta(seconds=app_settings.DETECTION_INTERVAL)
    qs = (
        Device.objects.filter(deviceconnection__enabled=True, _is_deactivated=False)
        .filter(
            Q(modem_detection__isnull=True) | Q(modem_detection__attempted_at__lt=limit)
        )
        .distinct()
        .order_by("modem_detection__attempted_at", "created")
    )
    return fair_order(qs.values_list("pk", "organization_id"))


def record_installed(operation):
    """The modem a successful ``operation`` flashed runs its image's
    version (the image assigned to it when the upgrade started)."""
    modems = load_model("DeviceModemFirmware").objects.filter(
        device_id=operation.device_id, image_id=operation.image_id
    )
    if operation.usb_path:
        modems = modems.filter(usb_path=operation.usb_path)
    modems.update(installed=True, modem_firmware_version=operation.image.build.version)


def acknowledge_unexplained_change(device, modem_pk):
    """Clears the unexplained-change flag of a modem of ``device``; returns
    whether one was set. The history row keeps ``unexplained``."""
    return bool(
        load_model("DeviceModemFirmware")
        .objects.filter(device=device, pk=modem_pk, unexplained_change=True)
        .update(unexplained_change=False, unexplained_change_at=None)
    )


class SweepLease:
    """One sweep at a time, fleet-wide: a lease in Django's cache (Redis in
    production). The sweep renews it before each router; a worker that died
    mid-sweep stops renewing, and the next sweep takes over once
    ``DETECTION_SWEEP_LEASE`` seconds have passed."""

    key = "modem-upgrader:detection-sweep"

    def __init__(self, seconds):
        self.seconds = seconds
        self.token = uuid.uuid4().hex

    def acquire(self):
        return cache.add(self.key, self.token, timeout=self.seconds)

    def renew(self):
        """Whether the lease is still this sweep's (then extended)."""
        if cache.get(self.key) != self.token:
            return False  # expired, maybe taken over: stop here
        return cache.touch(self.key, self.seconds)

    def release(self):
        if cache.get(self.key) == self.token:
            cache.delete(self.key)


def sweep(now=None):
    """The periodic sweep; returns {status: count}, ``None`` when another
    sweep holds the lease. Detects at most ``DETECTION_SWEEP_MAX_DEVICES``
    routers, those waiting longest first; the next sweep goes on."""
    lease = SweepLease(app_settings.DETECTION_SWEEP_LEASE)
    if not lease.acquire():
        logger.info("modem detection sweep skipped: another sweep is running")
        return None
    try:
        due = due_devices(now)[: app_settings.DETECTION_SWEEP_MAX_DEVICES]
        return detect_devices(due, keep_going=lease.renew)
    finally:
        lease.release()


def queue_detection(devices):
    """On demand: queues detection of ``devices`` (a queryset or a list of
    devices) once the transaction commits; one task, bounded like a sweep."""
    if hasattr(devices, "values_list"):
        pairs = devices.values_list("pk", "organization_id")
    else:
        pairs = [(device.pk, device.organization_id) for device in devices]
    ids = [str(pk) for pk in fair_order(pairs)]
    if ids:
        transaction.on_commit(lambda: publish.detect_devices(ids))
    return len(ids)


def connection_working_changed(instance, is_working, old_is_working=None, **kwargs):
    """openwisp-controller's ``is_working_changed``: a connection that
    becomes working gets its device's modems detected."""
    if not is_working or old_is_working or is_detecting(instance.device_id):
        return
    if not app_settings.DETECT_ON_CONNECTION_WORKING:
        return
    device_id = str(instance.device_id)
    transaction.on_commit(lambda: publish.detect_device(device_id))
