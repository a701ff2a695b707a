"""The upgrade options of the admin, edited with openwisp-controller's
JSON-schema editor.

One schema per upgrader drives both the validation
(``validate_upgrade_options``) and the editor, so the admin can never offer an
option the upgrader rejects, and nested schemas of future upgraders get a form
without admin code. The browser only helps: the server validates again.
"""

import json

from django import forms
from django.core.exceptions import ValidationError
from django.templatetags.static import PrefixNode
from django.utils.translation import gettext_lazy as _

from openwisp_controller.config.widgets import JsonSchemaWidget

from ..shell_values import pattern_message
from ..upgraders import get_upgrader_class

# far above any real options object; keeps hostile bodies (deep nesting that
# would exhaust the recursion of json.loads) out of the parser
MAX_OPTIONS_LENGTH = 20000


class UpgradeOptionsWidget(JsonSchemaWidget):
    """The controller's editor, fed with the schema of each upgrader type.

    ``upgrade-options.js`` loads the editor with the schema of the chosen
    image's type (``data-schema-selector``) or of ``data-upgrader-type``.
    """

    schema_view_name = None  # the schemas are in data-upgrader-schemas
    netjsonconfig_hint = False
    advanced_mode = False
    # "manual": the controller's widget.js must not load it by itself
    extra_attrs = {"class": "manual", "data-show-errors": "interaction"}

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.schemas = {}

    @property
    def media(self):
        return super().media + forms.Media(
            js=["admin/js/jquery.init.js", "modem-upgrader/js/upgrade-options.js"],
            css={"all": ["modem-upgrader/css/modem-upgrader.css"]},
        )

    def render(self, name, value, attrs=None, renderer=None):
        attrs = dict(attrs or {})
        attrs["data-upgrader-schemas"] = json.dumps(browser_schema(self.schemas))
        # the controller's editor builds icon URLs on window.staticUrl; the
        # prefix ({% get_static_prefix %}), not static(""): a manifest storage
        # (DEBUG off) has no entry for "" and would fail the whole page
        attrs["data-static-url"] = PrefixNode.handle_simple("STATIC_URL")
        return super().render(name, value, attrs, renderer)


def browser_schema(schema):
    """``schema`` for the browser's editor: each "pattern" replaced by
    ``x-full-match`` and the shape it allows in words (``x-shape``), which
    ``upgrade-options.js`` checks and shows instead of a regular expression."""
    if isinstance(schema, list):
        return [browser_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key == "pattern" and isinstance(value, str):
            result["x-full-match"] = value
            result["x-shape"] = pattern_message(value)
        else:
            result[key] = browser_schema(value)
    return result


class UpgradeOptionsField(forms.JSONField):
    widget = UpgradeOptionsWidget
    default_error_messages = {
        "too_long": _("The upgrade options are too long."),
        "not_object": _("The upgrade options must be a JSON object."),
    }

    def __init__(self, schemas=None, **kwargs):
        kwargs.setdefault("label", _("Upgrade options"))
        kwargs.setdefault("required", False)
        kwargs.setdefault("initial", dict)
        super().__init__(**kwargs)
        self.widget.schemas = schemas or {}

    def to_python(self, value):
        if isinstance(value, str) and len(value) > MAX_OPTIONS_LENGTH:
            raise ValidationError(self.error_messages["too_long"], code="too_long")
        try:
            value = super().to_python(value)
        except RecursionError:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValidationError(self.error_messages["not_object"], code="invalid")
        return value

    def bound_data(self, data, initial):
        # re-rendering a refused body must not parse it again unguarded
        if isinstance(data, str) and len(data) > MAX_OPTIONS_LENGTH:
            return forms.fields.InvalidJSONInput(data)
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


def upgrader_schema(upgrader_type):
    return get_upgrader_class(upgrader_type).SCHEMA


def combined_schema(upgrader_types):
    """One schema an options object must satisfy for every type (a mass
    upgrade's options go to each image of the build)."""
    schemas = [upgrader_schema(t) for t in upgrader_types]
    if len(schemas) == 1:
        return schemas[0]
    return {
        "type": "object",
        "title": ", ".join(upgrader_types),
        "allOf": schemas,
    }


def without_defaults(options, upgrader_types):
    """``options`` minus the top-level values equal to the default every
    schema gives them: the editor fills defaults in, and only what the user
    changed is stored, so later default changes still apply."""
    specs = [upgrader_schema(t).get("properties", {}) for t in upgrader_types]
    result = {}
    for name, value in options.items():
        declared = [spec[name] for spec in specs if name in spec]
        if declared and all(
            "default" in spec
            and spec["default"] == value
            and type(spec["default"]) is type(value)
            for spec in declared
        ):
            continue
        result[name] = value
    return result


def validate_options(upgrader_type, options):
    """Messages of the schema validation ("path: reason"), empty if valid."""
    try:
        get_upgrader_class(upgrader_type).validate_upgrade_options(options)
    except ValidationError as error:
        return error.message_dict.get("upgrade_options", error.messages)
    return []


class UpgradeOptionsFormMixin:
    """Adds the ``upgrade_options`` field to a form, for several upgrader
    types; the chosen image tells the editor which schema applies."""

    options_field = "upgrade_options"

    def add_options_field(self, upgrader_types, schema_selector=None, single=False):
        """``single``: one schema (all ``upgrader_types`` at once) instead of
        one per type chosen by the ``schema_selector`` select."""
        upgrader_types = sorted(set(upgrader_types))
        self.option_types = upgrader_types
        if not upgrader_types:
            return
        if single:
            key = ",".join(upgrader_types)
            schemas = {key: combined_schema(upgrader_types)}
        else:
            schemas = {t: upgrader_schema(t) for t in upgrader_types}
        field = UpgradeOptionsField(schemas=schemas)
        if single:
            field.widget.attrs["data-upgrader-type"] = key
        if schema_selector:
            field.widget.attrs["data-schema-selector"] = schema_selector
        self.fields[self.options_field] = field

    def clean_options_for(self, upgrader_types):
        """The submitted options, validated against every type's schema and
        stripped of defaults; schema errors become errors of the field."""
        if self.options_field not in self.fields:
            return {}
        options = self.cleaned_data.get(self.options_field)
        if options is None:  # invalid JSON: the field has its error already
            return {}
        for upgrader_type in upgrader_types:
            for message in validate_options(upgrader_type, options):
                self.add_error(self.options_field, message)
        return without_defaults(options, upgrader_types)

    def options_bound_field(self):
        """For templates: the bound field, or None without upgrader types."""
        if self.options_field in self.fields:
            return self[self.options_field]
        return None
