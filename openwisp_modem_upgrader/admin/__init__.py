"""Admin pages, one module per screen:

* ``catalogue``: categories, builds (changelog, mass-upgrade action), images;
* ``mass_upgrade``: the mass upgrade preview and confirmation;
* ``batch``: the mass upgrade page (progress, counts, operations, cancel);
* ``operations``: the operation list and detail, cancel of one operation;
* ``device``: the inlines of the device page (modems, history, upgrades);
* ``inventory``: the device list's modem columns, filters, "Detect modems";
* ``compliance``: the compliance page (with the carrier-image report);
* ``carrier``: "select carrier image", from the device page and the report.
"""

from . import (  # noqa: F401
    batch,
    catalogue,
    compliance,
    device,
    inventory,
    operations,
    policy,
)
