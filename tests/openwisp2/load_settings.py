"""The test project as production would serve it, for the load benchmark.

``benchmarks/device_report_load.py`` runs gunicorn/uvicorn with these
settings: DEBUG off (no query log growing in memory), PostgreSQL (``DB`` and
``POSTGRES_*`` from the environment) and persistent database connections,
since opening a PostgreSQL backend per request costs more than a report.
"""

from .settings import *  # noqa: F401,F403
from .settings import DATABASES

DEBUG = False
# persistent connections, checked before reuse after a PostgreSQL restart
DATABASES["default"]["CONN_MAX_AGE"] = 600
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "WARNING"}},
}
