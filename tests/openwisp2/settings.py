import os
import sys

TESTING = "test" in sys.argv or bool(os.environ.get("TESTING"))
SAMPLE_APP = bool(os.environ.get("SAMPLE_APP"))
BASE_DIR = os.path.dirname(os.path.abspath(__file__))
DEBUG = True
ALLOWED_HOSTS = ["*"]
SECRET_KEY = "modem-upgrader-test-project-not-a-secret"

# SpatiaLite by default; DB=postgres runs the same suite on PostGIS.
if os.environ.get("DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.contrib.gis.db.backends.postgis",
            "NAME": os.environ.get("POSTGRES_DB", "modem_upgrader"),
            "USER": os.environ.get("POSTGRES_USER", "postgres"),
            "PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
            "HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
            "PORT": os.environ.get("POSTGRES_PORT", "5432"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "openwisp_utils.db.backends.spatialite",
            "NAME": os.path.join(BASE_DIR, "db.sqlite3"),
        }
    }
SPATIALITE_LIBRARY_PATH = "mod_spatialite.so"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "django.contrib.sites",
    "openwisp_users.accounts",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "django_extensions",
    "private_storage",
    "openwisp_controller.pki",
    "openwisp_controller.config",
    "openwisp_controller.connection",
    "openwisp_controller.geo",
    "openwisp_modem_upgrader",
    "openwisp_users",
    "openwisp_notifications",
    "openwisp_ipam",
    "openwisp_utils.admin_theme",
    "admin_auto_filters",
    "django.contrib.admin",
    "django.forms",
    "sortedm2m",
    "reversion",
    "leaflet",
    "flat_json_widget",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_gis",
    "django_filters",
    "import_export",
    "drf_yasg",
    "channels",
]
EXTENDED_APPS = ["django_x509", "django_loci"]

AUTH_USER_MODEL = "openwisp_users.User"
SITE_ID = 1
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "openwisp_utils.staticfiles.DependencyFinder",
]
MIDDLEWARE = [
    # the routers' progress reports, before the rest (docs/developer/sizing.rst)
    "openwisp_modem_upgrader.api.report_route.DeviceReportMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "openwisp2.urls"
ASGI_APPLICATION = "openwisp2.routing.application"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
if TESTING:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"{REDIS_URL}/1"]},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"{REDIS_URL}/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "default"

CELERY_BROKER_URL = f"{REDIS_URL}/2"
CELERY_RESULT_BACKEND = None
# The upgrade task is acknowledged late: a worker killed while holding it
# leaves it unacknowledged and Redis delivers it again after this many
# seconds. Above the task's hard time limit (TASK_TIMEOUT + 60), so a task
# still running is not delivered twice; a redelivery is refused anyway while
# the operation is in progress (engine.run_operation). The real-stack run
# shortens it to see the redelivery.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 3900)),
    # kombu's lock around redelivery: a worker killed while holding it delays
    # every redelivery this long (kombu's default, 300 s); the real-stack run
    # shortens it too
    "unacked_mutex_expire": int(os.environ.get("CELERY_UNACKED_MUTEX_EXPIRE", 300)),
}
if TESTING and not os.environ.get("CELERY_REAL_WORKER"):
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True
    CELERY_BROKER_URL = "memory://"

# every task of this module on its own queue: hour-long SSH transfers must
# not hold the workers openwisp-controller's own tasks need (workers listen
# with "-Q celery,modem_upgrader"; docs/developer/deployment.rst)
CELERY_TASK_ROUTES = {"openwisp_modem_upgrader.*": {"queue": "modem_upgrader"}}

# the module adds its own periodic tasks (driver, detection sweep)
CELERY_BEAT_SCHEDULE = {}
# the real-stack run drives the engine at its own time scale
for _name in (
    "DRIVER_SCHEDULE",
    "FOLLOW_INTERVAL",
    "FOLLOW_START_GRACE",
    "TASK_TIMEOUT",
    "STUCK_OPERATION_TIMEOUT",
    "FOLLOW_LEASE",
    "REPUBLISH_AFTER",
):
    if os.environ.get(f"MODEM_{_name}"):
        globals()[f"OPENWISP_MODEM_UPGRADER_{_name}"] = float(
            os.environ[f"MODEM_{_name}"]
        )
if os.environ.get("MODEM_RETRY_BACKOFF"):
    OPENWISP_MODEM_UPGRADER_RETRY_OPTIONS = dict(
        max_retries=2,
        retry_backoff=int(os.environ["MODEM_RETRY_BACKOFF"]),
        retry_backoff_max=int(os.environ["MODEM_RETRY_BACKOFF"]),
        retry_jitter=False,
    )

TIME_ZONE = "Europe/Rome"
LANGUAGE_CODE = "en-gb"
USE_TZ = True
USE_I18N = False
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = os.path.join(BASE_DIR, "media")
PRIVATE_STORAGE_ROOT = os.path.join(BASE_DIR, "private")

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "OPTIONS": {
            # cached, as Django does when no loaders are given (runserver
            # still reloads an edited template): uncached, every page read
            # and compiled each template again, ~0.1 s of a preview page
            "loaders": [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                        "openwisp_utils.loaders.DependencyLoader",
                    ],
                )
            ],
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "openwisp_utils.admin_theme.context_processor.menu_groups",
                "openwisp_notifications.context_processors.notification_api_settings",
            ],
        },
    }
]
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"
LOGIN_REDIRECT_URL = "admin:index"
ACCOUNT_LOGOUT_REDIRECT_URL = LOGIN_REDIRECT_URL
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# the demo writes e-mails to files (scripts/demo.sh): the console stays
# readable instead of showing every notification's HTML
if os.environ.get("DEMO_EMAIL_DIR"):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = os.environ["DEMO_EMAIL_DIR"]
OPENWISP_USERS_AUTH_API = True
OPENWISP_MODEM_UPGRADER_DEVICE_REPORT_BASE_URL = os.environ.get(
    "DEVICE_REPORT_BASE_URL", ""
)
FILE_UPLOAD_HANDLERS = ["openwisp_modem_upgrader.uploads.HashingUploadHandler"]
TEST_RUNNER = "openwisp2.test_runner.TallyingTestRunner"
if TESTING:
    # the suite creates hundreds of users: the default hasher's 10^6 rounds
    # were a third of its CPU time
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if SAMPLE_APP:
    INSTALLED_APPS[INSTALLED_APPS.index("openwisp_modem_upgrader")] = (
        "openwisp2.sample_modem_upgrader"
    )
    EXTENDED_APPS.append("openwisp_modem_upgrader")
    MODEM_UPGRADER_MODEMCATEGORY_MODEL = "sample_modem_upgrader.ModemCategory"
    MODEM_UPGRADER_MODEMBUILD_MODEL = "sample_modem_upgrader.ModemBuild"
    MODEM_UPGRADER_MODEMFIRMWAREIMAGE_MODEL = "sample_modem_upgrader.ModemFirmwareImage"
    MODEM_UPGRADER_DEVICEMODEMFIRMWARE_MODEL = (
        "sample_modem_upgrader.DeviceModemFirmware"
    )
    MODEM_UPGRADER_MODEMUPGRADEOPERATION_MODEL = (
        "sample_modem_upgrader.ModemUpgradeOperation"
    )
    MODEM_UPGRADER_MODEMBATCHUPGRADEOPERATION_MODEL = (
        "sample_modem_upgrader.ModemBatchUpgradeOperation"
    )
    MODEM_UPGRADER_DEVICEMODEMDETECTION_MODEL = (
        "sample_modem_upgrader.DeviceModemDetection"
    )
    MODEM_UPGRADER_MODEMHISTORY_MODEL = "sample_modem_upgrader.ModemHistory"
    MODEM_UPGRADER_MODEMFIRMWAREPOLICY_MODEL = (
        "sample_modem_upgrader.ModemFirmwarePolicy"
    )

try:
    from openwisp2.local_settings import *  # noqa
except ImportError:
    pass
