"""Every setting of the module, read once from Django's settings."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

# Upgrader type (stored on each firmware image) -> dotted path of its class.
UPGRADERS_MAP = getattr(
    settings,
    "OPENWISP_MODEM_UPGRADERS_MAP",
    {
        "telit-fn990a": "openwisp_modem_upgrader.upgraders.telit.TelitFN990AUpgrader",
        "generic": "openwisp_modem_upgrader.upgraders.generic.GenericCommandUpgrader",
    },
)

# Modem images are 10 MB to 1 GB (device-facts.md); default cap leaves headroom.
MAX_FILE_SIZE = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_MAX_FILE_SIZE", 1536 * 1024 * 1024
)

RETRY_OPTIONS = getattr(
    settings,
    "OPENWISP_MODEM_UPGRADER_RETRY_OPTIONS",
    dict(max_retries=2, retry_backoff=60, retry_backoff_max=600, retry_jitter=True),
)

# Time limit of the worker's part of an upgrade beyond the transfer timeout
# (connecting, preparing the router, starting the flash); the flash itself
# runs without a worker and is bounded by its own timeouts.
TASK_TIMEOUT = getattr(settings, "OPENWISP_MODEM_UPGRADER_TASK_TIMEOUT", 600)

# Before the point of no return a worker records progress at least every
# few seconds (transfer) or minutes (router preparation): an operation silent
# this long lost its worker, and the attempt is retried.
STUCK_OPERATION_TIMEOUT = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_STUCK_OPERATION_TIMEOUT", 600
)

API_ENABLED = getattr(settings, "OPENWISP_MODEM_UPGRADER_API", True)
API_THROTTLE_RATE = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_API_THROTTLE_RATE", "1000/minute"
)

# Base URL the devices use to report progress (defaults to the device's own
# openwisp-config URL when empty).
DEVICE_REPORT_BASE_URL = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_DEVICE_REPORT_BASE_URL", ""
)

# How images reach the routers unless an upgrade says otherwise: "push" (the
# worker streams it over SSH) or "pull" (the router downloads it from
# DEVICE_REPORT_BASE_URL with its device key); docs/user/settings.rst.
TRANSFER_MODE = getattr(settings, "OPENWISP_MODEM_UPGRADER_TRANSFER_MODE", "push")
if TRANSFER_MODE not in ("push", "pull"):
    raise ImproperlyConfigured(
        'OPENWISP_MODEM_UPGRADER_TRANSFER_MODE must be "push" or "pull", '
        f"not {TRANSFER_MODE!r}"
    )

PRIVATE_STORAGE_URL_PATH = "modem-firmware/"
try:
    PRIVATE_STORAGE_INSTANCE = import_string(
        getattr(
            settings,
            "OPENWISP_MODEM_UPGRADER_PRIVATE_STORAGE_INSTANCE",
            "openwisp_modem_upgrader.private_storage.storage.modem_firmware_storage",
        )
    )
except ImportError as error:
    raise ImproperlyConfigured(
        f"OPENWISP_MODEM_UPGRADER_PRIVATE_STORAGE_INSTANCE cannot be imported: {error}"
    )

# --- modem detection (docs/user/inventory.rst) ---
# Detect a device's modems when its SSH connection becomes working.
DETECT_ON_CONNECTION_WORKING = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_DETECT_ON_CONNECTION_WORKING", True
)
# The periodic sweep skips devices whose last detection attempt is newer.
DETECTION_INTERVAL = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_DETECTION_INTERVAL", 12 * 3600
)
# How often the sweep runs: the app adds this Celery beat entry itself;
# None leaves the sweep out.
DETECTION_SWEEP_SCHEDULE = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_DETECTION_SWEEP_SCHEDULE", 3600
)
# Fleet-wide bound on SSH sessions open for detection at the same time.
DETECTION_CONCURRENCY = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_DETECTION_CONCURRENCY", 16
)
# Seconds the modem listing may take on one router (SSH command timeout).
DETECTION_TIMEOUT = getattr(settings, "OPENWISP_MODEM_UPGRADER_DETECTION_TIMEOUT", 60)
# At most this many routers per sweep (the longest waiting first); the next
# sweep goes on with the rest.
DETECTION_SWEEP_MAX_DEVICES = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_DETECTION_SWEEP_MAX_DEVICES", 5000
)
# Seconds a sweep's lease lasts unless renewed (it is renewed before each
# router): a sweep whose worker died is taken over after this.
DETECTION_SWEEP_LEASE = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_DETECTION_SWEEP_LEASE", 600
)

# --- fleet-scale engine and rollouts (docs/user/settings.rst) ---
# The expected duration a mass-upgrade preview shows (estimate.py): the
# transfer rate assumed to each router, in bits per second (a cellular link:
# 10 Mbit/s), and the seconds a flash takes after the transfer.
ESTIMATE_LINK_RATE = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_ESTIMATE_LINK_RATE", 10_000_000
)
ESTIMATE_FLASH_SECONDS = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_ESTIMATE_FLASH_SECONDS", 600
)
# Default concurrency limit of a mass upgrade (devices upgrading at once).
BATCH_CONCURRENCY = getattr(settings, "OPENWISP_MODEM_UPGRADER_BATCH_CONCURRENCY", 50)
# Default automatic stop of a mass upgrade: failures reaching this percentage
# of the finished devices, once at least BATCH_FAILURE_MINIMUM have finished.
BATCH_FAILURE_THRESHOLD = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_BATCH_FAILURE_THRESHOLD", 20
)
BATCH_FAILURE_MINIMUM = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_BATCH_FAILURE_MINIMUM", 10
)
# Installation-wide bound on upgrades in flight (queued or running), all
# organizations and batches together.
MAX_CONCURRENT_UPGRADES = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_MAX_CONCURRENT_UPGRADES", 500
)
# Seconds between two runs of the driver (Celery beat): starts due devices,
# follows flashing routers, finds lost workers and messages. None leaves the
# entry out (the project schedules it itself).
DRIVER_SCHEDULE = getattr(settings, "OPENWISP_MODEM_UPGRADER_DRIVER_SCHEDULE", 10)
# Celery queue of the engine's short tasks (driver, dispatch, follow-ups,
# batch fan-out), apart from the image transfers (``modem_upgrader``, by the
# project's route): a follow-up never waits behind an hour-long transfer.
# None: those tasks follow the project's routes like the others.
CONTROL_QUEUE = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_CONTROL_QUEUE", "modem_upgrader_control"
)
# Seconds between two reads of a flashing router's journal over SSH (the
# router's own HTTP reports arrive in between and trigger an early read).
FOLLOW_INTERVAL = getattr(settings, "OPENWISP_MODEM_UPGRADER_FOLLOW_INTERVAL", 30)
# The worker records the wrapper's start within this after the point of no
# return; past it, the first follow-up reads what the router holds (the
# worker may have died in between).
FOLLOW_START_GRACE = getattr(settings, "OPENWISP_MODEM_UPGRADER_FOLLOW_START_GRACE", 90)
# A follow-up task holds an operation this long; a dead one is retried after.
FOLLOW_LEASE = getattr(settings, "OPENWISP_MODEM_UPGRADER_FOLLOW_LEASE", 300)
# Devices of a schedule with a maintenance window start at a random offset of
# up to this many seconds after they may start (bounded by the window's end
# and the deadline), so a fleet does not reach one cell tower or VPN
# concentrator in the same second; 0 starts them at once.
START_SPREAD = getattr(settings, "OPENWISP_MODEM_UPGRADER_START_SPREAD", 900)
# How long an image staged ahead of its window (the "stage_ahead" upgrade
# option) may wait on the router for the flash: past it the upgrade fails
# and the image is removed (it holds the router's storage, often its RAM).
STAGED_IMAGE_EXPIRY = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_STAGED_IMAGE_EXPIRY", 7 * 24 * 3600
)
# How long an offline router is waited for when the batch has no deadline.
OFFLINE_WAIT = getattr(settings, "OPENWISP_MODEM_UPGRADER_OFFLINE_WAIT", 24 * 3600)
# Seconds between two readings of a refused pre-flight gate (health.py): a
# refusal is retried until the operation's deadline (else OFFLINE_WAIT).
PREFLIGHT_RETRY_INTERVAL = getattr(
    settings, "OPENWISP_MODEM_UPGRADER_PREFLIGHT_RETRY_INTERVAL", 300
)
# Opt-in policy: a detection that finds a modem stuck in a flashing mode
# starts its recovery run at once (recovery.py), with the image that was
# being flashed; off: an operator starts it (admin, REST).
AUTO_RECOVERY = getattr(settings, "OPENWISP_MODEM_UPGRADER_AUTO_RECOVERY", False)
# A queued operation not picked up this long is published again (a message
# lost with a broker restart); a duplicate delivery is refused by the engine.
REPUBLISH_AFTER = getattr(settings, "OPENWISP_MODEM_UPGRADER_REPUBLISH_AFTER", 900)


def _seconds(schedule):
    """A beat schedule in seconds (a number or a timedelta; None otherwise)."""
    if isinstance(schedule, (int, float)):
        return float(schedule)
    total_seconds = getattr(schedule, "total_seconds", None)
    return total_seconds() if total_seconds else None


# A driver or dispatch message not taken within one driver period is
# superseded by the next tick: dropped instead of piling up behind a busy
# worker.
CONTROL_MESSAGE_EXPIRES = max(1.0, _seconds(DRIVER_SCHEDULE) or 10.0)

# --- SIM and carrier inventory (docs/user/inventory.rst) ---
# The networks (MCC-MNC digits) each stored carrier image is made for, by
# the name the modem lists it under (AT#GETFW); images not listed here
# (GENERIC) suit every network. A starting table: set yours.
CARRIER_IMAGE_NETWORKS = {
    name.upper(): tuple(networks)
    for name, networks in getattr(
        settings,
        "OPENWISP_MODEM_UPGRADER_CARRIER_IMAGE_NETWORKS",
        {
            "ATT": ("310410", "310280", "310150", "310170", "310380", "310560"),
            "VERIZON": ("311480",),
            "TMUS": ("310260", "310160", "310200", "310210", "310240", "310660"),
        },
    ).items()
}

# --- firmware policies (docs/user/rollouts.rst) ---
# Seconds between two passes of the firmware policies (Celery beat): each
# pass enrolls the modems behind into their policy's rollout. None leaves
# the entry out.
POLICY_SCHEDULE = getattr(settings, "OPENWISP_MODEM_UPGRADER_POLICY_SCHEDULE", 300)
