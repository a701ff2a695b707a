"""Form fields generated from an upgrader's JSON schema.

One schema per upgrader drives both the validation (``validate_upgrade_options``)
and these fields, so the admin can never offer an option the upgrader rejects.
"""

from django import forms
from django.core.exceptions import ValidationError

from ..upgraders import get_upgrader_class

FIELD_TYPES = {
    "string": forms.CharField,
    "integer": forms.IntegerField,
    "number": forms.FloatField,
}


def option_field_name(upgrader_type, name):
    return f"options__{upgrader_type}__{name}"


def schema_fields(upgrader_type):
    """``{form field name: field}`` for the properties of the upgrader's schema.

    Required properties are left to the schema validation, with its message.
    """
    schema = get_upgrader_class(upgrader_type).SCHEMA
    fields = {}
    for name, spec in schema.get("properties", {}).items():
        label = spec.get("title", name)
        if spec.get("type") == "boolean":
            default = {True: " (yes)", False: " (no)"}.get(spec.get("default"), "")
            field = forms.TypedChoiceField(
                label=label,
                choices=(("", f"default{default}"), ("true", "yes"), ("false", "no")),
                coerce=lambda value: value == "true",
                empty_value=None,
                required=False,
            )
        else:
            field_class = FIELD_TYPES.get(spec.get("type"), forms.CharField)
            kwargs = {"label": label, "required": False}
            if spec.get("type") in ("integer", "number"):
                kwargs.update(
                    min_value=spec.get("minimum"), max_value=spec.get("maximum")
                )
            field = field_class(**kwargs)
            # blank means the upgrader's default: only changed options are stored
            if spec.get("default") not in (None, ""):
                field.widget.attrs["placeholder"] = spec["default"]
        fields[option_field_name(upgrader_type, name)] = field
    return fields


def options_from_cleaned_data(upgrader_type, cleaned_data):
    """The options dict of ``upgrader_type``; empty fields take the default."""
    prefix = option_field_name(upgrader_type, "")
    options = {}
    for key, value in cleaned_data.items():
        if key.startswith(prefix) and value not in (None, ""):
            options[key[len(prefix) :]] = value
    return options


def validate_options(upgrader_type, options):
    """Validates against the schema; errors keyed by form field name."""
    try:
        get_upgrader_class(upgrader_type).validate_upgrade_options(options)
    except ValidationError as error:
        return error.message_dict.get("upgrade_options", error.messages)
    return []


class UpgradeOptionsFormMixin:
    """Adds the option fields of several upgrader types to a form.

    Fields of each type are grouped (``option_groups``) so the template shows
    only the group matching the chosen image's type.
    """

    def add_option_fields(self, upgrader_types):
        self.option_groups = {}
        for upgrader_type in sorted(set(upgrader_types)):
            fields = schema_fields(upgrader_type)
            self.fields.update(fields)
            self.option_groups[upgrader_type] = list(fields)

    def clean_options_for(self, upgrader_type, error_field):
        """Options of ``upgrader_type``; schema errors become form errors."""
        options = options_from_cleaned_data(upgrader_type, self.cleaned_data)
        for message in validate_options(upgrader_type, options):
            name, _, text = message.partition(": ")
            field = option_field_name(upgrader_type, name)
            if text and field in self.fields:
                self.add_error(field, text)
            else:
                self.add_error(error_field, message)
        return options

    def option_group_fields(self):
        """``[(upgrader type, [bound fields])]`` for templates."""
        return [
            (upgrader_type, [self[name] for name in names])
            for upgrader_type, names in self.option_groups.items()
        ]
