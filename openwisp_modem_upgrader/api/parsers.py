"""JSON parsing with the body's size and nesting depth bounded first.

``json.loads`` recurses once per nesting level: 100,000 ``[`` raise
``RecursionError`` (a 500) and a huge body costs memory before any
validation runs. Both are refused with a 4xx before parsing.
"""

import codecs
import json
import re
from itertools import accumulate

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

# no legitimate request of this API nests deeper (upgrade options are flat)
MAX_JSON_DEPTH = 32
# operator API: options, filters, names; images go through multipart
MAX_JSON_BODY = 1024 * 1024
# a router's report: at most 64 KiB of log characters, JSON-escaped
MAX_DEVICE_REPORT_BODY = 512 * 1024

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


class RequestBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("Request body too large.")
    default_code = "request_too_large"


def json_depth(body):
    """Deepest nesting of ``[``/``{`` in a JSON text (strings skipped)."""
    brackets = _BRACKETS.findall(_STRING.sub(b"", body))
    steps = (1 if bracket in b"[{" else -1 for bracket in brackets)
    return max(accumulate(steps), default=0)


class BoundedJSONParser(JSONParser):
    max_body = MAX_JSON_BODY
    max_depth = MAX_JSON_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        body = stream.read(self.max_body + 1) if stream is not None else b""
        if len(body) > self.max_body:
            raise RequestBodyTooLarge(
                _("Request body larger than %(size)s bytes.") % {"size": self.max_body}
            )
        if json_depth(body) > self.max_depth:
            raise ParseError(
                _("JSON nested deeper than %(depth)s levels.")
                % {"depth": self.max_depth}
            )
        try:
            text = codecs.decode(body, encoding)
            return json.loads(text, parse_constant=self._reject_constant)
        except (ValueError, LookupError, RecursionError) as error:
            raise ParseError(_("JSON parse error - %s") % error)

    @staticmethod
    def _reject_constant(name):
        # NaN and Infinity are not JSON (DRF's strict mode refuses them too)
        raise ValueError(f"{name} is not valid JSON")


class DeviceReportJSONParser(BoundedJSONParser):
    max_body = MAX_DEVICE_REPORT_BODY
