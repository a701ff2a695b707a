"""Property-based test of the device report endpoint: no input yields a 5xx.

Hypothesis draws keys, bodies, content types and query strings, hostile and
plausible; whatever the request, the answer is below 500 and a refused
report changes nothing.
"""

import json
from unittest import mock
from urllib.parse import urlencode

from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from ..upgrade import mark_in_progress, start_upgrade
from . import ModemUpgradeOperation, TestModemUpgraderMixin

QUEUE_UPGRADE = "openwisp_modem_upgrader.scheduler.publish_upgrade"

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30,
)
REPORT_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "progress_percent": st.integers() | st.text(max_size=5) | st.floats(),
        "status": st.sampled_from(
            ["in-progress", "success", "failed", "aborted", "cancelled", "idle"]
        )
        | st.text(max_size=20),
        "seq": st.integers() | st.integers(-5, 2000) | st.text(max_size=5),
        "log": st.text(max_size=300) | JSON_VALUES,
        "extra": JSON_VALUES,
    },
)
BODIES = st.one_of(
    REPORT_VALUES.map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.integers(0, 3000).map(lambda depth: "[" * depth + "]" * (depth % 2)),
    st.binary(max_size=500),
    st.text(max_size=200),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/json; charset=bogus",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
        ]
    ),
    st.from_regex(r"[a-z/+.;= -]{0,40}", fullmatch=True),
)
RAW_QUERY = st.from_regex(r"[A-Za-z0-9%=&;+._-]{0,60}", fullmatch=True)


class TestDeviceReportProperties(TestModemUpgraderMixin, TestCase):
    def setUp(self):
        self.device = self._create_modem_device()
        with mock.patch(QUEUE_UPGRADE):
            self.operation = start_upgrade(self.device, self._create_image())
        mark_in_progress(self.operation.pk)
        self.url = reverse(
            "modem_upgrader:api_upgrade_operation_detail", args=[self.operation.pk]
        )

    def snapshot(self):
        return ModemUpgradeOperation.objects.values(
            "status", "progress", "device_seq", "log", "flash_started"
        ).get(pk=self.operation.pk)

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        key=st.one_of(st.just(None), st.text(max_size=40)),
        extra_query=st.dictionaries(st.text(max_size=10), st.text(max_size=20)),
        raw_query=RAW_QUERY,
        body=BODIES,
        content_type=CONTENT_TYPES,
        method=st.sampled_from(["POST", "PATCH"]),
    )
    def test_no_input_yields_5xx(
        self, key, extra_query, raw_query, body, content_type, method
    ):
        before = self.snapshot()
        query = {**extra_query, "key": self.device.key if key is None else key}
        path = f"{self.url}?{urlencode(query)}&{raw_query}"
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        # generic(): the body goes out as these bytes, whatever the charset
        response = self.client.generic(
            method, path, data=body, content_type=content_type
        )
        self.assertLess(response.status_code, 500, response.content[:300])
        if response.status_code >= 400:
            self.assertEqual(self.snapshot(), before)
