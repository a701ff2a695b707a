"""The published OpenAPI schema says what the validation accepts.

drf-yasg publishes the patterns of Django's ``RegexValidator`` only, and
nothing about what every DRF ``CharField`` refuses (NUL characters, and text
that is blank once trimmed). Clients (and the API fuzzer) relying on the
schema would otherwise send values the API always refuses. Used by every
operator API view (``ProtectedAPIMixin.swagger_schema``).
"""

from drf_yasg import openapi
from drf_yasg.app_settings import swagger_settings
from drf_yasg.inspectors import FieldInspector, SwaggerAutoSchema
from rest_framework import serializers

from ..shell_values import FullMatchValidator

# no NUL anywhere (DRF's ProhibitNullCharactersValidator)
NO_NUL = "^[^\\x00]*$"
# no NUL, and something left once trimmed (trim_whitespace, allow_blank=False)
NOT_BLANK = "^[^\\x00]*[^\\s\\x00][^\\x00]*$"


class ValidationPatternInspector(FieldInspector):
    def process_result(self, result, method_name, obj, **kwargs):
        if (
            isinstance(result, (openapi.Schema, openapi.Parameter, openapi.Items))
            and getattr(result, "type", None) == openapi.TYPE_STRING
            and isinstance(obj, serializers.CharField)
            and not obj.read_only
        ):
            pattern = self.validation_pattern(obj)
            # a RegexValidator's pattern, published by drf-yasg, stays
            if pattern and not getattr(result, "pattern", None):
                result.pattern = pattern
        return result

    @staticmethod
    def validation_pattern(field):
        for validator in field.validators:
            if isinstance(validator, FullMatchValidator):
                # "" skips the validators when blank is allowed
                if field.allow_blank:
                    return f"^(?:{validator.pattern[1:-1]})?$"
                return validator.pattern
        if field.trim_whitespace and not field.allow_blank:
            return NOT_BLANK
        return NO_NUL


class ModemUpgraderAutoSchema(SwaggerAutoSchema):
    field_inspectors = [
        ValidationPatternInspector
    ] + swagger_settings.DEFAULT_FIELD_INSPECTORS

    def get_consumes(self):
        # the form parsers serve the browsable API; a form cannot carry the
        # nested objects (upgrade options) clients send, so JSON is published
        consumes = super().get_consumes()
        return [c for c in consumes if c == "application/json"] or consumes
