import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openwisp2.settings")

app = Celery("openwisp2")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

if os.environ.get("MODEM_WORKER_PAUSE_AFTER_NO_RETURN"):
    from . import worker_faults  # noqa: F401  (connects its signal handler)
