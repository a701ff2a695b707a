"""Helpers shared by this app's migrations and the sample app's."""

import swapper
from django.contrib.auth.management import create_permissions

MODELS = (
    "modemcategory",
    "modembuild",
    "modemfirmwareimage",
    "devicemodemfirmware",
    "modemupgradeoperation",
    "modembatchupgradeoperation",
    "devicemodemdetection",
    "modemhistory",
    "modemfirmwarepolicy",
)
OPERATOR_ACTIONS = ("view",)
ADMINISTRATOR_ACTIONS = ("add", "change", "delete", "view")


def assign_default_permissions(apps, schema_editor, app_label):
    """Gives OpenWISP's default groups the permissions of this app's models."""
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_app_label = swapper.split(
        swapper.get_model_name("openwisp_users", "organization")
    )[0]
    Group = apps.get_model(group_app_label, "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, actions in (
        ("Operator", OPERATOR_ACTIONS),
        ("Administrator", ADMINISTRATOR_ACTIONS),
    ):
        group = Group.objects.filter(name=group_name).first()
        if group is None:
            continue
        codenames = [f"{action}_{model}" for model in MODELS for action in actions]
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label=app_label, codename__in=codenames
            )
        )


def fill_version_keys(apps, schema_editor, app_label):
    """Builds made before the lifecycle: their ``version_key`` (the order of
    their versions), computed as the model's ``save()`` does."""
    from ..compatibility import version_key

    ModemBuild = apps.get_model(app_label, "ModemBuild")
    for build in ModemBuild.objects.only("pk", "version").iterator():
        ModemBuild.objects.filter(pk=build.pk).update(
            version_key=version_key(build.version)
        )
