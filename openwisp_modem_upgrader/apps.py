from django.utils.translation import gettext_lazy as _
from swapper import get_model_name

from openwisp_utils.admin_theme import register_dashboard_chart
from openwisp_utils.admin_theme.menu import register_menu_group
from openwisp_utils.api.apps import ApiAppConfig
from openwisp_utils.utils import default_or_test

from . import settings as app_settings


class ModemUpgraderConfig(ApiAppConfig):
    name = "openwisp_modem_upgrader"
    label = "modem_upgrader"
    verbose_name = _("Modem Firmware")
    default_auto_field = "django.db.models.AutoField"

    API_ENABLED = app_settings.API_ENABLED
    REST_FRAMEWORK_SETTINGS = {
        "DEFAULT_THROTTLE_RATES": {
            "modem_upgrader": default_or_test(app_settings.API_THROTTLE_RATE, None)
        },
    }

    def ready(self, *args, **kwargs):
        super().ready(*args, **kwargs)
        self.register_checks()
        self.register_menu_group()
        self.connect_file_cleanup()
        self.connect_detection_trigger()
        self.connect_auto_recovery()
        self.register_notifications()
        self.register_dashboard_charts()
        self.register_tasks()
        self.schedule_periodic_tasks()

    def register_checks(self):
        from django.core.checks import register

        from .checks import check_misnamed_swappable_settings

        register(check_misnamed_swappable_settings)

    def register_tasks(self):
        """The only import of ``tasks.py``: the package publishes work by
        task name (``publish.py``), which needs the tasks registered."""
        from . import tasks  # noqa: F401

    def schedule_periodic_tasks(self):
        """Adds the upgrade driver and the detection sweep to Celery beat,
        unless the project schedules them itself or disabled them (schedule
        None)."""
        from celery import current_app

        beat = current_app.conf.beat_schedule
        # the driver's ticks on the engine's own queue; a tick not taken
        # within its period is dropped, not piled up (also set on the task,
        # for a beat that publishes by name alone)
        driver_options = {"expires": app_settings.CONTROL_MESSAGE_EXPIRES}
        if app_settings.CONTROL_QUEUE:
            driver_options["queue"] = app_settings.CONTROL_QUEUE
        for name, task, schedule, options in (
            (
                "drive_modem_upgrades",
                "openwisp_modem_upgrader.drive_modem_upgrades",
                app_settings.DRIVER_SCHEDULE,
                driver_options,
            ),
            (
                "sweep_modem_detection",
                "openwisp_modem_upgrader.sweep_modem_detection",
                app_settings.DETECTION_SWEEP_SCHEDULE,
                {},
            ),
            (
                "enforce_firmware_policies",
                "openwisp_modem_upgrader.enforce_firmware_policies",
                app_settings.POLICY_SCHEDULE,
                {},
            ),
        ):
            if schedule and not any(e.get("task") == task for e in beat.values()):
                beat[name] = {"task": task, "schedule": schedule, "options": options}

    def connect_auto_recovery(self):
        from .recovery import recover_automatically
        from .signals import modem_stuck_in_flash_mode

        modem_stuck_in_flash_mode.connect(
            recover_automatically, dispatch_uid="modem_upgrader.auto_recovery"
        )

    def connect_detection_trigger(self):
        from openwisp_controller.connection.signals import is_working_changed

        from .detection import connection_working_changed

        is_working_changed.connect(
            connection_working_changed,
            dispatch_uid="modem_upgrader.detect_on_connection_working",
        )

    def register_notifications(self):
        from .notifications import connect_receivers, register_notification_types

        register_notification_types()
        connect_receivers()

    def register_dashboard_charts(self):
        from django.db.models import Case, Count, When

        from .inventory import ComplianceState, compliance_state

        states = [
            ComplianceState.UP_TO_DATE,
            ComplianceState.BEHIND,
            ComplianceState.UNREACHABLE,
            ComplianceState.NOT_DETECTED,
        ]
        register_dashboard_chart(
            position=30,
            config={
                "name": _("Modem firmware compliance"),
                "query_params": {
                    "app_label": "config",
                    "model": "device",
                    "annotate": {"modem_compliance": compliance_state()},
                    "aggregate": {
                        state: Count(Case(When(modem_compliance=state, then=1)))
                        for state in states
                    },
                },
                "colors": {state: ComplianceState.colors[state] for state in states},
                "labels": {state: ComplianceState.labels[state] for state in states},
                # the device list filter of the same name (admin/filters.py)
                "filters": {"key": "modem_compliance", **{s: s for s in states}},
            },
        )

    def connect_file_cleanup(self):
        from django.db.models.signals import post_delete

        from .swapper import load_model

        image_model = load_model("ModemFirmwareImage")
        post_delete.connect(
            image_model.delete_file_handler,
            sender=image_model,
            dispatch_uid="modem_upgrader.image_file_cleanup",
        )

    def register_menu_group(self):
        # the same names as the app index and the pages' titles
        items = {
            1: ("Modem Firmware Builds", "ModemBuild", "ow-build"),
            2: ("Modem Firmware Categories", "ModemCategory", "ow-category"),
            3: (
                "Mass Modem Upgrade Operations",
                "ModemBatchUpgradeOperation",
                "ow-mass-upgrade",
            ),
            4: ("Modem Upgrade Operations", "ModemUpgradeOperation", "ow-firmware"),
        }
        # an icon openwisp-utils' theme defines (ow-dashboard is blank)
        links = {
            5: (
                "Modem Firmware Compliance",
                "ModemBuild",
                "compliance",
                "ow-monitoring-checks",
            )
        }
        register_menu_group(
            position=101,
            config={
                "label": _("Modem Firmware"),
                "icon": "ow-firmware",
                "items": {
                    position: {
                        "label": _(label),
                        "model": get_model_name(self.label, model),
                        "name": "changelist",
                        "icon": icon,
                    }
                    for position, (label, model, icon) in items.items()
                }
                | {
                    position: {
                        "label": _(label),
                        "model": get_model_name(self.label, model),
                        "name": name,
                        "icon": icon,
                    }
                    for position, (label, model, name, icon) in links.items()
                },
            },
        )


del ApiAppConfig
