"""Admin pages, one module per screen:

* ``catalogue``: categories, builds (changelog, mass-upgrade action), images;
* ``mass_upgrade``: the mass upgrade preview and confirmation;
* ``batch``: the mass upgrade page (progress, counts, operations, cancel);
* ``operations``: the operation list and detail, cancel of one operation;
* ``device``: the inlines and list filters added to the device admin.
"""

from . import batch, catalogue, device, operations  # noqa: F401
