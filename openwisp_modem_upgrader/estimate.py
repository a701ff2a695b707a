"""What a mass upgrade's limits imply: how long it is expected to take.

Shown by the preview (admin and REST API) before an operator starts it, so
that a low limit is seen before, not after, a 34-hour batch
(docs/user/settings.rst). The estimate: the upgrades of each wave run at
most ``in_flight`` at once, the smaller of the batch's ``max_concurrent``
and the installation-wide ``MAX_CONCURRENT_UPGRADES``; each takes the
transfer of the build's largest image at ``ESTIMATE_LINK_RATE`` plus
``ESTIMATE_FLASH_SECONDS``. Pauses, maintenance windows, start spreading,
other batches and failures are not counted.
"""

import math

from django.db.models import Max
from django.utils.translation import gettext as _

from . import settings as app_settings


def expected_duration(batch, waves, modems_count, image_size):
    """``waves``: routers per wave (``rollout.wave_sizes``);
    ``modems_count``: upgrades the batch runs (a router's further modems
    are flashed one after the other); ``image_size``: bytes."""
    routers = sum(waves)
    installation = app_settings.MAX_CONCURRENT_UPGRADES
    in_flight = max(1, min(batch.max_concurrent, installation))
    limited_by = "batch" if batch.max_concurrent <= installation else "installation"
    transfer = image_size * 8 / app_settings.ESTIMATE_LINK_RATE
    per_upgrade = transfer + app_settings.ESTIMATE_FLASH_SECONDS
    rounds = sum(math.ceil(wave / in_flight) for wave in waves)
    modems_per_router = modems_count / routers if routers else 0
    seconds = rounds * per_upgrade * max(modems_per_router, 1) if routers else 0
    return {
        "seconds": round(seconds),
        "in_flight": in_flight,
        "limited_by": limited_by,
        "per_upgrade_seconds": round(per_upgrade),
        "transfer_seconds": round(transfer),
        "image_size": image_size,
        "link_rate": app_settings.ESTIMATE_LINK_RATE,
        "flash_seconds": app_settings.ESTIMATE_FLASH_SECONDS,
    }


def format_duration(seconds):
    """``~34 h``, ``~3.4 h``, ``~25 min``: as precise as an estimate is."""
    if seconds >= 10 * 3600:
        return _("~%(hours)d h") % {"hours": round(seconds / 3600)}
    if seconds >= 3600:
        return _("~%(hours).1f h") % {"hours": seconds / 3600}
    return _("~%(minutes)d min") % {"minutes": max(1, round(seconds / 60))}


def preview_estimate(batch, counts, waves):
    """``expected_duration`` of a preview, with ``text`` for people
    (one query: the build's largest image)."""
    sizes = batch.build.images.aggregate(largest=Max("size"))
    estimate = expected_duration(
        batch, waves, counts["modems_count"], sizes["largest"] or 0
    )
    estimate["text"] = format_duration(estimate["seconds"])
    return estimate
