"""Upgrade options in the admin: the JSON-schema editor with nested schemas."""

import json
from html.parser import HTMLParser
from unittest import mock

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.test import TestCase, override_settings
from django.urls import reverse

from .. import settings as app_settings
from ..admin.options import browser_schema, combined_schema, without_defaults
from ..upgraders.telit import TelitFN990AUpgrader
from . import ModemBatchUpgradeOperation, ModemUpgradeOperation
from .test_admin_batch import MassUpgradeMixin
from .test_admin_device import DeviceAdminMixin, device_url

NESTED_TYPE = "nested-test"


class NestedOptionsUpgrader(TelitFN990AUpgrader):
    """An upgrader of the future whose options nest objects in objects."""

    label = "nested options (test)"
    SCHEMA = {
        **TelitFN990AUpgrader.SCHEMA,
        "properties": {
            **TelitFN990AUpgrader.SCHEMA["properties"],
            "retry": {
                "type": "object",
                "title": "Retry policy",
                "additionalProperties": False,
                "properties": {
                    "attempts": {
                        "type": "integer",
                        "title": "Attempts",
                        "minimum": 1,
                        "maximum": 5,
                        "default": 2,
                    },
                    "backoff": {
                        "type": "object",
                        "title": "Back-off",
                        "additionalProperties": False,
                        "properties": {
                            "seconds": {
                                "type": "integer",
                                "title": "Seconds",
                                "minimum": 1,
                                "default": 30,
                            }
                        },
                    },
                },
            },
        },
    }


def register_nested():
    return mock.patch.dict(
        app_settings.UPGRADERS_MAP,
        {NESTED_TYPE: f"{__name__}.{NestedOptionsUpgrader.__name__}"},
    )


class NestedUpgraderMixin:
    def setUp(self):
        patcher = register_nested()
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()


class SchemaAttributes(HTMLParser):
    """``{field name: data-upgrader-schemas}`` of the textareas of a page."""

    def __init__(self):
        super().__init__()
        self.schemas = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "textarea" and "data-upgrader-schemas" in attrs:
            schemas = json.loads(attrs["data-upgrader-schemas"])
            self.schemas[attrs["name"]] = schemas


def page_schemas(response):
    """The schemas of the page's options fields (not of inline templates)."""
    parser = SchemaAttributes()
    parser.feed(response.content.decode())
    return {
        name: schemas
        for name, schemas in parser.schemas.items()
        if "__prefix__" not in name
    }


@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestNestedOptionsOnDevicePage(NestedUpgraderMixin, DeviceAdminMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.nested = self._create_image(build=self.image.build, type=NESTED_TYPE)

    def test_each_type_schema_given_to_the_editor(self, delay):
        response = self.client.get(device_url(self.device))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            page_schemas(response),
            {
                "modems-0-upgrade_options": {
                    NESTED_TYPE: browser_schema(NestedOptionsUpgrader.SCHEMA),
                    "telit-fn990a": browser_schema(TelitFN990AUpgrader.SCHEMA),
                }
            },
        )
        # the editor follows the image select, which tells each image's type
        self.assertContains(response, 'data-schema-selector="modems-0-upgrade_to"')
        self.assertContains(response, f'data-upgrader-type="{NESTED_TYPE}"')
        self.assertContains(response, "modem-upgrader/js/upgrade-options.js")
        self.assertContains(response, "config/js/widget.js")

    def test_nested_values_validated_with_their_path(self, delay):
        cases = [
            ({"attempts": 9}, "retry.attempts: 9 is greater than the maximum of 5"),
            ({"backoff": {"seconds": 0}}, "retry.backoff.seconds: 0 is less than"),
            ({"backoff": {"x": 1}}, "retry.backoff: Additional properties"),
            ({"attempts": "2"}, "retry.attempts: '2' is not of type 'integer'"),
        ]
        for retry, message in cases:
            with self.subTest(retry=retry):
                response = self._submit(self.nested, retry=retry)
                self.assertEqual(response.status_code, 200)
                self.assertIn(message, self._errors(response))
                self.assertFalse(ModemUpgradeOperation.objects.exists())
        delay.assert_not_called()

    def test_valid_nested_options_stored(self, delay):
        retry = {"attempts": 4, "backoff": {"seconds": 90}}
        with self.captureOnCommitCallbacks(execute=True):
            response = self._submit(self.nested, retry=retry, upgrade_timeout=1800)
        self.assertEqual(response.status_code, 302)
        operation = ModemUpgradeOperation.objects.get()
        self.assertEqual(operation.image, self.nested)
        # the top-level default (1800) left out, the nested object kept whole
        self.assertEqual(operation.upgrade_options, {"retry": retry})
        delay.assert_called_once_with(
            str(operation.pk), time_limit=mock.ANY, dispatched_at=mock.ANY
        )

    def test_options_of_the_other_type_refused(self, delay):
        # the chosen image's schema applies, not the union of the page's
        response = self._submit(self.image, retry={"attempts": 2})
        self.assertEqual(response.status_code, 200)
        self.assertIn("Additional properties are not allowed", self._errors(response))
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    def _errors(self, response):
        errors = []
        for inline in response.context["inline_admin_formsets"]:
            errors.append(str(inline.formset.errors))
        return "\n".join(errors)


@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestNestedOptionsOnMassUpgrade(NestedUpgraderMixin, MassUpgradeMixin, TestCase):
    def _confirm(self, options):
        data = {
            "organization": self.org.pk,
            "confirm": "1",
            "upgrade_options": json.dumps(options),
        }
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(self.preview_url(), data)

    def test_patterns_reach_the_browser_in_words(self, delay):
        """The editor gets each pattern with the shape it allows in words:
        it shows those, never a regular expression."""
        schema = browser_schema(TelitFN990AUpgrader.SCHEMA)
        remote_dir = schema["properties"]["remote_dir"]
        self.assertNotIn("pattern", remote_dir)
        self.assertEqual(
            remote_dir["x-full-match"],
            TelitFN990AUpgrader.SCHEMA["properties"]["remote_dir"]["pattern"],
        )
        self.assertIn("an absolute directory such as /tmp", remote_dir["x-shape"])
        self.assertNotIn("(?", remote_dir["x-shape"])
        self.assertNotIn('"pattern"', json.dumps(schema))

    def test_build_with_several_types_gets_one_combined_schema(self, delay):
        self._create_image(build=self.build, type=NESTED_TYPE)
        response = self.client.get(self.preview_url())
        key = f"{NESTED_TYPE},telit-fn990a"
        self.assertEqual(
            page_schemas(response),
            {
                "upgrade_options": {
                    key: browser_schema(combined_schema([NESTED_TYPE, "telit-fn990a"]))
                }
            },
        )
        self.assertContains(response, f'data-upgrader-type="{key}"')

    def test_options_valid_for_every_image_of_the_build(self, delay):
        self._create_image(build=self.build, type=NESTED_TYPE)
        self._devices(2)
        # valid for the nested upgrader, unknown to the Telit one
        response = self._confirm({"retry": {"attempts": 3}})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Additional properties are not allowed")
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        delay.assert_not_called()

    def test_nested_options_of_a_nested_build(self, delay):
        build = self._create_build(version="M0R.NESTED", category=self.build.category)
        self._create_image(build=build, type=NESTED_TYPE)
        self._devices(2)
        self.build = build
        response = self._confirm({"retry": {"backoff": {"seconds": -1}}})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "retry.backoff.seconds: -1 is less than")
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        retry = {"attempts": 2, "backoff": {"seconds": 5}}
        response = self._confirm({"retry": retry, "reboot_timeout": 300})
        self.assertEqual(response.status_code, 302)
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertEqual(batch.upgrade_options, {"retry": retry})
        self.assertEqual(delay.call_count, 2)


class TestWithoutDefaults(TestCase):
    def test_only_changed_top_level_values_kept(self):
        types = ["telit-fn990a"]
        self.assertEqual(
            without_defaults(
                {"upgrade_timeout": 1800, "reboot_timeout": 60, "unknown": 1}, types
            ),
            {"reboot_timeout": 60, "unknown": 1},
        )
        # a boolean default is not an integer value of the same truth
        self.assertEqual(
            without_defaults({"verify_checksum": 1}, types), {"verify_checksum": 1}
        )

    @register_nested()
    def test_kept_unless_every_schema_has_that_default(self):
        types = [NESTED_TYPE, "generic", "telit-fn990a"]
        # tool_path: "uxfp" is Telit's default; generic has none
        self.assertEqual(
            without_defaults({"tool_path": "uxfp", "remote_dir": "/tmp"}, types),
            {"tool_path": "uxfp"},
        )


class CollectedManifestStorage(ManifestStaticFilesStorage):
    """The static storage of ansible-openwisp2 and docker-openwisp after
    ``collectstatic``: a strict manifest, here listing every file the finders
    see (under its own name), without copying thousands of files."""

    def read_manifest(self):
        paths = {}
        for finder in finders.get_finders():
            for path, _ in finder.list([]):
                paths[path.replace("\\", "/")] = path
        return json.dumps({"paths": paths, "version": self.manifest_version})


MANIFEST_STORAGE = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": f"{__name__}.{CollectedManifestStorage.__name__}"},
}


@override_settings(STORAGES=MANIFEST_STORAGE, DEBUG=False)
@mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade")
class TestPagesWithManifestStorage(DeviceAdminMixin, TestCase):
    """Deployments use the manifest storage with DEBUG off, where a static
    name missing from the manifest (``static("")`` was) is a server error."""

    def test_device_page(self, delay):
        administrator = self._create_administrator(organizations=[self.org])
        for user in (self.admin, administrator):
            with self.subTest(user=user.username):
                self.client.force_login(user)
                response = self.client.get(device_url(self.device))
                self.assertEqual(response.status_code, 200)
                # the controller's editor builds its icon URLs on this prefix
                self.assertContains(response, 'data-static-url="/static/"')
                self.assertContains(response, "modem-upgrader/js/upgrade-options.js")

    def test_mass_upgrade_page(self, delay):
        url = reverse("admin:modem_upgrader_mass_upgrade", args=[self.image.build.pk])
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'data-static-url="/static/"')
