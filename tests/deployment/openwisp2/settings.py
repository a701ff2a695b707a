"""Settings of a production OpenWISP 1.3, shaped like the ones
ansible-openwisp2 (``templates/openwisp2/settings.py``) and docker-openwisp
(``images/common/openwisp/settings.py``, ``module_settings.py``) generate,
written for the deployment check (``scripts/deployment-check.sh``): DEBUG
off, the compressed manifest static storage, PostgreSQL/PostGIS, Redis for
the cache, the sessions, the channel layer and Celery, InfluxDB for
openwisp-monitoring, and this module added where the recipes add it (after
every OpenWISP app). Ports and paths come from the environment the check
sets; ``DEPLOYCHECK_WITHOUT_MODULE=1`` is the project once the module is
removed.
"""

import os
from datetime import timedelta

from celery.schedules import crontab

WORK_DIR = os.environ["DEPLOYCHECK_DIR"]
BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIS = f"redis://127.0.0.1:{os.environ['DEPLOYCHECK_REDIS_PORT']}"

SECRET_KEY = os.environ["DEPLOYCHECK_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["openwisp.deploycheck.test"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.gis",
    "django.contrib.sites",
    "openwisp_users.accounts",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "django_extensions",
    "openwisp_users",
    "openwisp_controller.pki",
    "openwisp_controller.config",
    "openwisp_controller.geo",
    "openwisp_controller.connection",
    "openwisp_controller.subnet_division",
    "openwisp_monitoring.monitoring",
    "openwisp_monitoring.device",
    "openwisp_monitoring.check",
    "nested_admin",
    "openwisp_notifications",
    "flat_json_widget",
    "openwisp_network_topology",
    "openwisp_firmware_upgrader",
    "openwisp_ipam",
    "openwisp_utils.admin_theme",
    "admin_auto_filters",
    "django.contrib.admin",
    "django.forms",
    "sortedm2m",
    "reversion",
    "leaflet",
    "rest_framework",
    "rest_framework_gis",
    "rest_framework.authtoken",
    "django_filters",
    "private_storage",
    "drf_yasg",
    "channels",
    "pipeline",
    "import_export",
]
EXTENDED_APPS = ["django_x509", "django_loci"]
MODULE_INSTALLED = not os.environ.get("DEPLOYCHECK_WITHOUT_MODULE")
if MODULE_INSTALLED:
    # ansible-openwisp2 appends openwisp2_extra_django_apps here, after
    # every OpenWISP app (openwisp-monitoring's admin included)
    INSTALLED_APPS.append("openwisp_modem_upgrader")

AUTH_USER_MODEL = "openwisp_users.User"
SITE_ID = 1
LOGIN_REDIRECT_URL = "admin:index"
ACCOUNT_LOGOUT_REDIRECT_URL = LOGIN_REDIRECT_URL
ROOT_URLCONF = "openwisp2.urls"
ASGI_APPLICATION = "openwisp2.routing.application"
WSGI_APPLICATION = None

STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "openwisp_utils.staticfiles.DependencyFinder",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "pipeline.middleware.MinifyHTMLMiddleware",
]
AUTHENTICATION_BACKENDS = ["openwisp_users.backends.UsersAuthenticationBackend"]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(BASE_DIR, "templates")],
        "OPTIONS": {
            "loaders": [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                        "openwisp_utils.loaders.DependencyLoader",
                    ],
                ),
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "openwisp_utils.admin_theme.context_processor.menu_groups",
                "openwisp_utils.admin_theme.context_processor.admin_theme_settings",
                "openwisp_notifications.context_processors.notification_api_settings",
            ],
        },
    },
]
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

DATABASES = {
    "default": {
        "ENGINE": "django.contrib.gis.db.backends.postgis",
        "NAME": os.environ["DEPLOYCHECK_DB_NAME"],
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ["DEPLOYCHECK_DB_PORT"],
    }
}
TIMESERIES_DATABASE = {
    "BACKEND": "openwisp_monitoring.db.backends.influxdb",
    "USER": "openwisp",
    "PASSWORD": "openwisp",
    "NAME": "openwisp2",
    "HOST": "127.0.0.1",
    "PORT": os.environ["DEPLOYCHECK_INFLUXDB_PORT"],
}
OPENWISP_MONITORING_DEFAULT_RETENTION_POLICY = "26280h0m0s"

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"{REDIS}/0",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "default"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [f"{REDIS}/1"], "group_expiry": 3600},
    },
}

CELERY_BROKER_URL = f"{REDIS}/2"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 10}
CELERY_BEAT_SCHEDULE = {
    "deactivate_expired_users": {
        "task": "openwisp_users.tasks.deactivate_expired_users",
        "schedule": crontab(hour=1, minute=0),
    },
    "run_checks": {
        "task": "openwisp_monitoring.check.tasks.run_checks",
        "schedule": timedelta(minutes=5),
    },
}
CELERY_TASK_ROUTES = {
    "openwisp_controller.connection.tasks.*": {"queue": "network"},
    "openwisp_monitoring.check.tasks.perform_check": {"queue": "monitoring"},
    "openwisp_firmware_upgrader.tasks.upgrade_firmware": {"queue": "firmware_upgrader"},
    "openwisp_firmware_upgrader.tasks.batch_upgrade_operation": {
        "queue": "firmware_upgrader"
    },
}

# behind nginx terminating TLS, as both recipes deploy it
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = ["https://openwisp.deploycheck.test"]
SECURE_REFERRER_POLICY = "strict-origin"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
CELERY_TIMEZONE = TIME_ZONE
USE_I18N = True
USE_TZ = True

STATIC_ROOT = os.path.join(WORK_DIR, "static")
MEDIA_ROOT = os.path.join(WORK_DIR, "media")
PRIVATE_STORAGE_ROOT = os.path.join(WORK_DIR, "private")
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
# HTML minification (django-pipeline) and the compressed manifest storage
PIPELINE = {"PIPELINE_ENABLED": True}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "openwisp_utils.storage.CompressStaticFilesStorage"},
}
GZIP_STATIC_COMPRESSION = True
BROTLI_STATIC_COMPRESSION = False

LEAFLET_CONFIG = {"RESET_VIEW": False}
DEFAULT_FROM_EMAIL = "openwisp@deploycheck.test"
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.path.join(WORK_DIR, "mail")
OPENWISP_USERS_AUTH_API = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "main_log": {
            "level": "INFO",
            "class": "logging.FileHandler",
            "filename": os.path.join(WORK_DIR, "openwisp2.log"),
        },
    },
    # server errors are in the log the check shows when it fails
    "root": {"level": "INFO", "handlers": ["main_log"]},
}

if MODULE_INSTALLED:
    # what the installation guide and the ansible recipe add
    FILE_UPLOAD_HANDLERS = ["openwisp_modem_upgrader.uploads.HashingUploadHandler"]
    CELERY_TASK_ROUTES["openwisp_modem_upgrader.*"] = {"queue": "modem_upgrader"}
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = 3900
