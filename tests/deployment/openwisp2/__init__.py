# as in the deployments: every process loads the Celery app first
from .celery import app as celery_app

__all__ = ["celery_app"]
