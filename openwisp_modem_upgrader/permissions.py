"""One permission rule per operator action, shared by the REST API and the
admin: both ask ``has_action_permission`` (the API through
``ActionPermission``), so an action is never allowed on one face and refused
on the other."""

# the model permission each action needs, on the model it acts on
ACTION_PERMISSIONS = {
    # cancelling changes an existing operation or mass upgrade
    "cancel": "change",
    # rollout controls change an existing mass upgrade
    "pause": "change",
    "resume": "change",
    # a retry creates a new mass upgrade
    "retry_failed": "add",
    # a mass upgrade of a build creates one
    "mass_upgrade": "add",
    # selecting a stored carrier image creates an operation
    "select_carrier_image": "add",
    # a recovery run of a modem stuck in flash mode creates an operation
    "recover": "add",
}


def action_permission(action, model):
    """``"<app_label>.<permission>_<model_name>"`` for ``action`` on ``model``."""
    opts = model._meta
    return f"{opts.app_label}.{ACTION_PERMISSIONS[action]}_{opts.model_name}"


def has_action_permission(user, action, model):
    return user.has_perm(action_permission(action, model))
