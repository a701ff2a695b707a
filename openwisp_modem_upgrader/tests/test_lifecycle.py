"""Builds have a lifecycle (draft, released, withdrawn), compliance targets the
highest released version, and images are checked at upload (issue 17)."""

import gzip
import io
import json
import tarfile
import zipfile
from unittest import mock

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TestCase, TransactionTestCase
from django.urls import reverse

from openwisp_controller.config.tests.utils import CreateDeviceGroupMixin
from openwisp_users.tests.utils import TestMultitenantAdminMixin

from ..batch import create_batch, retry_failed, start_batch
from ..compatibility import version_key
from ..inventory import ComplianceState, compliance_state, compliance_table
from ..upgrade import start_upgrade
from ..upgraders.generic import GenericCommandUpgrader
from ..upgraders.stream_checks import IMAGE_HEAD_SIZE
from ..upgraders.telit import TelitFN990AUpgrader
from . import (
    FN990A28,
    OLD_VERSION,
    Device,
    DeviceModemFirmware,
    ModemBatchUpgradeOperation,
    ModemBuild,
    ModemFirmwareImage,
    ModemUpgradeOperation,
    TestModemUpgraderMixin,
)

QUEUE_UPGRADE = "openwisp_modem_upgrader.scheduler.publish_upgrade"
FAN_OUT = "openwisp_modem_upgrader.tasks.fan_out_batch.delay"
# the junk of issue 17: 25 bytes of text
TEXT_FILE = b"this is not firmware :-)\n"


def emulator_stream(revision="45.00.010-B022-P0R.001600", payload=4096):
    """A stream as tests/device/firmware.py writes it: a 256-byte header
    (magic, key=value lines, NUL padding) then binary payload."""
    header = (
        b"EMU-TELIT-STREAM\n"
        + f"revision={revision}\nfirmware=M0R.010000-B022\nmodel=FN990A28\n".encode()
        + f"length={payload}\n".encode()
    ).ljust(256, b"\0")
    return header + bytes(range(256)) * (payload // 256)


def api_url(name, *args):
    return reverse(f"modem_upgrader:api_{name}", args=args)


def admin_url(model, view, *args):
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


class TestVersionKey(TestCase):
    def assertOrdered(self, *versions):
        self.assertEqual(sorted(versions, key=version_key), list(versions))
        for lower, higher in zip(versions, versions[1:]):
            self.assertLess(version_key(lower), version_key(higher), (lower, higher))

    def test_telit_firmware_versions(self):
        self.assertOrdered(
            "M0R.010000-B020",
            "M0R.010000-B022",
            "M0R.010000-B100",  # the build number as a number, not text
            "M0R.010001-B010",  # the firmware number decides first
            "M0R.010100-B024",
            "M0R.100000-B001",
        )

    def test_telit_package_versions(self):
        self.assertOrdered(
            "45.00.010-B022-P0R.001600",
            "45.00.010-B022-P0R.001700",
            "45.00.010-B023-P0R.000100",
            "45.00.011-B001-P0R.000100",
            "45.01.000-B001-P0R.000100",
        )

    def test_dotted_numeric_versions(self):
        self.assertOrdered("1.2", "1.2.1", "1.9", "1.10", "1.10.0.1", "2.0", "10.0")

    def test_pre_releases_sort_before_the_release(self):
        self.assertOrdered(
            "2.0-dev1",
            "2.0-alpha",
            "2.0-alpha2",
            "2.0-beta1",
            "2.0-rc1",
            "2.0-rc2",
            "2.0",
            "2.0.1",
            "2.0a",  # a letter suffix that is no pre-release word: after
        )

    def test_equal_versions(self):
        # leading zeros, separators and case do not matter
        self.assertEqual(version_key("M0R.010000-B022"), version_key("m0r_10000+b22"))
        self.assertEqual(version_key("1.02"), version_key("1.2"))

    def test_numbers_before_letters_and_long_numbers(self):
        self.assertOrdered("1.9", "1.a")
        self.assertOrdered("9" * 30, "1" + "0" * 30)

    def test_key_is_digits_only_and_fits_the_column(self):
        # digits compare the same in every database collation
        worst = "a1" * 32
        key = version_key(worst)
        self.assertTrue(key.isdigit())
        field = ModemBuild._meta.get_field("version_key")
        self.assertLessEqual(len(key), field.max_length)
        self.assertLessEqual(len(version_key("1" * 64)), field.max_length)


class LifecycleMixin(TestModemUpgraderMixin, CreateDeviceGroupMixin):
    def setUp(self):
        super().setUp()
        patcher = mock.patch(QUEUE_UPGRADE)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.org = self._get_org()
        self.category = self._create_category(organization=self.org)

    def _build_with_image(self, version, status="released", **kwargs):
        build = self._create_build(
            category=self.category, version=version, status=status, **kwargs
        )
        self._create_image(build=build)
        return build

    def _devices(self, count=2):
        return [
            self._create_modem_device(
                name=f"router-{n}", mac_address=f"00:11:22:33:44:{n:02x}"
            )
            for n in range(count)
        ]


class TestBuildStatus(LifecycleMixin, TestCase):
    def test_new_builds_are_drafts(self):
        build = ModemBuild(category=self.category, version="1.0", modem_model=FN990A28)
        build.full_clean()
        build.save()
        self.assertEqual(build.status, "draft")

    def test_version_key_follows_the_version(self):
        build = self._create_build(category=self.category, version="1.9")
        self.assertEqual(build.version_key, version_key("1.9"))
        build.version = "1.10"
        build.save(update_fields=["version"])
        build.refresh_from_db()
        self.assertEqual(build.version_key, version_key("1.10"))

    def test_transitions(self):
        build = self._create_build(category=self.category, status="draft")
        for status in ("released", "withdrawn", "released"):
            build.status = status
            build.full_clean()
            build.save()
        for refused in ("draft",):
            build.status = refused
            with self.assertRaisesMessage(ValidationError, "withdraw it instead"):
                build.full_clean()

    def test_migration_default_is_released(self):
        """Builds that existed before the lifecycle were in use: released."""
        from importlib import import_module

        app = ModemBuild._meta.app_config.name
        migration = import_module(f"{app}.migrations.0008_build_lifecycle").Migration
        added = migration.operations[0]
        self.assertEqual((added.name, added.field.default), ("status", "released"))
        altered = migration.operations[1]
        self.assertEqual((altered.name, altered.field.default), ("status", "draft"))


class TestComplianceTarget(LifecycleMixin, TestCase):
    def _state(self, device):
        return (
            Device.objects.annotate(state=compliance_state())
            .values_list("state", flat=True)
            .get(pk=device.pk)
        )

    def _newest(self):
        rows = [r for r in compliance_table() if r["modem_model"] == FN990A28]
        return rows[0]["newest_versions"]

    def test_highest_released_version_not_newest_created(self):
        device = self._devices(1)[0]
        self._build_with_image("M0R.010100-B024")
        # created later, lower version: not the target
        self._build_with_image(OLD_VERSION)
        self.assertEqual(self._newest(), ["M0R.010100-B024"])
        self.assertEqual(self._state(device), ComplianceState.BEHIND)

    def test_junk_draft_does_not_mark_the_fleet_behind(self):
        device = self._devices(1)[0]
        self._build_with_image(OLD_VERSION)
        self.assertEqual(self._state(device), ComplianceState.UP_TO_DATE)
        # issue 17: a newer (junk) build must not make everybody "behind"
        self._create_build(
            category=self.category, version="M0R.999999-B999", status="draft"
        )
        self.assertEqual(self._newest(), [OLD_VERSION])
        self.assertEqual(self._state(device), ComplianceState.UP_TO_DATE)

    def test_withdrawn_build_is_not_the_target(self):
        device = self._devices(1)[0]
        self._build_with_image(OLD_VERSION)
        newer = self._build_with_image("M0R.010100-B024")
        self.assertEqual(self._state(device), ComplianceState.BEHIND)
        newer.status = "withdrawn"
        newer.save()
        self.assertEqual(self._newest(), [OLD_VERSION])
        self.assertEqual(self._state(device), ComplianceState.UP_TO_DATE)

    def test_versions_compared_as_numbers(self):
        self._devices(1)
        for version in ("1.10", "1.9", "1.2"):
            self._create_build(category=self.category, version=version)
        self.assertEqual(self._newest(), ["1.10"])


class TestDraftAndWithdrawnUpgrades(LifecycleMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.devices = self._devices(3)
        self.draft = self._build_with_image("M0R.010100-B024", status="draft")
        self.image = self.draft.images.get()

    def test_draft_to_single_device(self):
        operation = start_upgrade(self.devices[0], self.image)
        self.assertEqual(operation.image, self.image)

    def test_draft_refused_for_the_whole_fleet(self):
        with self.assertRaisesMessage(ValidationError, "is a draft"):
            create_batch(self.draft, self.org)
        # location or version filters are no test group either
        with self.assertRaisesMessage(ValidationError, "is a draft"):
            create_batch(self.draft, self.org, from_version=OLD_VERSION)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        self.assertFalse(ModemUpgradeOperation.objects.exists())

    @mock.patch(FAN_OUT)
    def test_draft_to_a_test_group(self, fan_out):
        group = self._create_device_group(organization=self.org, name="test bench")
        Device.objects.filter(pk=self.devices[0].pk).update(group=group)
        with self.captureOnCommitCallbacks(execute=True):
            by_group = create_batch(self.draft, self.org, group=group)
        by_list = create_batch(
            self.draft, self.org, device_ids=[str(self.devices[1].pk)]
        )
        self.assertEqual(by_group.group, group)
        self.assertEqual(by_list.device_ids, [str(self.devices[1].pk)])
        fan_out.assert_called_once_with(str(by_group.pk))

    def test_withdrawn_starts_nothing(self):
        self.draft.status = "withdrawn"
        self.draft.save()
        with self.assertRaisesMessage(ValidationError, "is withdrawn"):
            start_upgrade(self.devices[0], self.image)
        with self.assertRaisesMessage(ValidationError, "is withdrawn"):
            create_batch(self.draft, self.org, device_ids=[str(self.devices[0].pk)])
        self.assertFalse(ModemUpgradeOperation.objects.exists())
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_retry_failed_devices(self):
        batch = create_batch(self.draft, self.org, device_ids=[str(self.devices[0].pk)])
        start_batch(batch)
        ModemUpgradeOperation.objects.update(status="failed")
        # a draft: the retry is limited to the failed devices, allowed
        retry = retry_failed(batch)
        self.assertEqual(retry.device_ids, [str(self.devices[0].pk)])
        self.draft.status = "withdrawn"
        self.draft.save()
        with self.assertRaisesMessage(ValidationError, "is withdrawn"):
            retry_failed(batch)
        self.assertEqual(ModemBatchUpgradeOperation.objects.count(), 2)


class TestLifecycleApi(LifecycleMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.devices = self._devices(2)
        self.manager = self._create_administrator(organizations=[self.org])
        self.client.force_login(self.manager)

    def _json(self, method, url, data):
        return getattr(self.client, method)(
            url, json.dumps(data), content_type="application/json"
        )

    def test_status_field_and_filter(self):
        draft = self._create_build(
            category=self.category, version="2.0", status="draft"
        )
        released = self._create_build(category=self.category, version="1.0")
        response = self.client.get(api_url("build_detail", draft.pk))
        self.assertEqual(response.data["status"], "draft")
        listed = self.client.get(api_url("build_list"), {"status": "released"})
        self.assertEqual([b["id"] for b in listed.data["results"]], [str(released.pk)])
        response = self._json(
            "patch", api_url("build_detail", draft.pk), {"status": "released"}
        )
        self.assertEqual(response.status_code, 200, response.data)
        draft.refresh_from_db()
        self.assertEqual(draft.status, "released")
        response = self._json(
            "patch", api_url("build_detail", draft.pk), {"status": "draft"}
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("withdraw it instead", str(response.data["status"]))
        response = self._json(
            "patch", api_url("build_detail", draft.pk), {"status": "gone"}
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("status", response.data)

    def test_operator_cannot_change_status(self):
        build = self._create_build(category=self.category, status="draft")
        self.client.force_login(self._create_operator(organizations=[self.org]))
        response = self._json(
            "patch", api_url("build_detail", build.pk), {"status": "released"}
        )
        self.assertEqual(response.status_code, 403)
        build.refresh_from_db()
        self.assertEqual(build.status, "draft")

    def test_mass_upgrade_of_a_draft(self):
        draft = self._build_with_image("M0R.010100-B024", status="draft")
        url = api_url("build_upgrade", draft.pk)
        for method in ("get", "post"):
            with self.subTest(method):
                if method == "get":
                    response = self.client.get(url)
                else:
                    response = self._json("post", url, {})
                self.assertEqual(response.status_code, 400, response.data)
                self.assertIn("is a draft", str(response.data["build"]))
        self.assertEqual(
            self.client.get(url, {"device_ids": [str(self.devices[0].pk)]}).status_code,
            200,
        )  # noqa: E501
        response = self._json("post", url, {"device_ids": [str(self.devices[0].pk)]})
        self.assertEqual(response.status_code, 201, response.data)

    def test_upgrade_to_withdrawn_build(self):
        build = self._build_with_image("M0R.010100-B024", status="withdrawn")
        response = self._json(
            "post",
            api_url("build_upgrade", build.pk),
            {"device_ids": [str(self.devices[0].pk)]},  # noqa: E501
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("is withdrawn", str(response.data))
        response = self._json(
            "put",
            api_url("device_modem_firmware", self.devices[0].pk),
            {"image": str(build.images.get().pk)},
        )
        self.assertEqual(response.status_code, 400, response.data)
        self.assertIn("is withdrawn", str(response.data))
        self.assertFalse(ModemUpgradeOperation.objects.exists())


class TestLifecycleAdmin(LifecycleMixin, TestMultitenantAdminMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.devices = self._devices(2)
        self.client.force_login(self._create_administrator(organizations=[self.org]))

    def test_changelist_shows_status_and_filters(self):
        self._create_build(category=self.category, version="1.0", status="draft")
        self._create_build(category=self.category, version="2.0", status="released")
        url = admin_url(ModemBuild, "changelist")
        response = self.client.get(url)
        self.assertContains(response, "?status__exact=draft")
        self.assertContains(response, "Release the selected builds")
        self.assertContains(response, "Withdraw the selected builds")
        response = self.client.get(url, {"status__exact": "draft"})
        self.assertContains(response, "1.0")
        self.assertNotContains(response, ">2.0<")

    def test_release_and_withdraw_actions(self):
        draft = self._create_build(
            category=self.category, version="1.0", status="draft"
        )
        shared = self._create_build(
            category=self._create_category(name="shared", organization=None),
            version="1.1",
            status="draft",
        )
        url = admin_url(ModemBuild, "changelist")
        response = self.client.post(
            url,
            {"action": "release", "_selected_action": [str(draft.pk), str(shared.pk)]},
            follow=True,
        )
        self.assertContains(response, "1 build(s) now released")
        self.assertContains(response, "shared builds you may not change")
        draft.refresh_from_db()
        shared.refresh_from_db()
        self.assertEqual((draft.status, shared.status), ("released", "draft"))
        self.client.post(
            url, {"action": "withdraw", "_selected_action": [str(draft.pk)]}
        )
        draft.refresh_from_db()
        self.assertEqual(draft.status, "withdrawn")

    def test_operator_has_no_status_actions(self):
        build = self._create_build(category=self.category, status="draft")
        self.client.force_login(self._create_operator(organizations=[self.org]))
        url = admin_url(ModemBuild, "changelist")
        response = self.client.get(url)
        self.assertNotContains(response, "Release the selected builds")
        self.client.post(
            url, {"action": "release", "_selected_action": [str(build.pk)]}
        )
        build.refresh_from_db()
        self.assertEqual(build.status, "draft")

    def test_status_editable_on_the_change_page(self):
        build = self._create_build(category=self.category, status="draft")
        url = admin_url(ModemBuild, "change", build.pk)
        self.assertContains(self.client.get(url), 'name="status"')
        self.assertNotContains(
            self.client.get(admin_url(ModemBuild, "add")), 'name="status"'
        )

    def test_mass_upgrade_page_refuses_draft_for_the_fleet(self):
        draft = self._build_with_image("M0R.010100-B024", status="draft")
        url = reverse("admin:modem_upgrader_mass_upgrade", args=[draft.pk])
        response = self.client.post(
            url, {"organization": str(self.org.pk), "confirm": "1"}
        )
        self.assertContains(
            response, "is a draft: mass-upgrade it only to a test group"
        )
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())
        group = self._create_device_group(organization=self.org, name="bench")
        Device.objects.filter(pk=self.devices[0].pk).update(group=group)
        with mock.patch(FAN_OUT):
            response = self.client.post(
                url,
                {
                    "organization": str(self.org.pk),
                    "group": str(group.pk),
                    "confirm": "1",
                },
            )
        self.assertEqual(response.status_code, 302, response.content[:2000])
        self.assertEqual(ModemBatchUpgradeOperation.objects.get().group, group)

    def test_withdrawn_images_not_offered_on_the_device_page(self):
        build = self._build_with_image("M0R.010100-B024", status="withdrawn")
        response = self.client.get(
            reverse("admin:config_device_change", args=[self.devices[0].pk])
        )
        self.assertNotContains(response, str(build.images.get().pk))


class TestImageCheckAtUpload(LifecycleMixin, TestCase):
    def _image(self, content, image_type="telit-fn990a", name="fw.bin"):
        build = self._create_build(
            category=self.category, version=f"V{ModemBuild.objects.count()}"
        )
        return ModemFirmwareImage(
            build=build, type=image_type, file=self._upload(content, name)
        )

    def assertRefused(self, content, message, **kwargs):
        image = self._image(content, **kwargs)
        with self.assertRaises(ValidationError) as refused:
            image.full_clean()
        self.assertIn("file", refused.exception.message_dict)
        self.assertIn(message, " ".join(refused.exception.message_dict["file"]))

    def test_text_is_refused(self):
        self.assertEqual(len(TEXT_FILE), 25)
        self.assertRefused(TEXT_FILE, 'This file is text ("this is not firmware :-)")')
        self.assertRefused(("é" * 100 + "\n" * 10).encode(), "This file is text")

    def test_empty_is_refused(self):
        self.assertRefused(b"", "The uploaded file is empty.")

    def test_archives_are_refused(self):
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as archive:
            archive.writestr("fw.bin", emulator_stream())
        tarred = io.BytesIO()
        with tarfile.open(fileobj=tarred, mode="w") as archive:
            info = tarfile.TarInfo("fw.bin")
            stream = emulator_stream()
            info.size = len(stream)
            archive.addfile(info, io.BytesIO(stream))
        for kind, content in (
            ("zip", zipped.getvalue()),
            ("gzip", gzip.compress(emulator_stream())),
            ("tar", tarred.getvalue()),
            ("xz", b"\xfd7zXZ\x00\x00\x04" + bytes(range(256))),
            ("7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(range(256))),
        ):
            with self.subTest(kind):
                self.assertRefused(content, f"This file is a {kind} archive")

    def test_stream_of_another_chipset_is_refused(self):
        self.assertRefused(
            emulator_stream(revision="40.00.010-B022-P0R.001600"),
            "software version 40.00.010-B022-P0R.001600, which is for another chipset",
        )

    def test_streams_accepted(self):
        for content in (
            emulator_stream(),
            # binary with no readable version: left to the router and uxfp
            bytes(range(256)) * 64,
            # a version deep in the payload, past the header, is not the header's
            bytes(4096) + b"40.00.010-B022" + bytes(range(256)),
        ):
            image = self._image(content)
            image.full_clean()
            image.save()

    def test_other_upgraders_accept_what_they_do_not_check(self):
        image = self._image(TEXT_FILE, image_type="generic")
        image.full_clean()

    def test_hook_gets_only_the_start_of_the_file(self):
        seen = []

        def check_image(cls, head, size, build):
            seen.append((len(head), size, build))

        big = emulator_stream(payload=1024 * 1024)
        image = self._image(big)
        with mock.patch.object(
            TelitFN990AUpgrader, "check_image", classmethod(check_image)
        ):
            image.full_clean()
        self.assertEqual(seen, [(IMAGE_HEAD_SIZE, len(big), image.build)])
        # the upload is read again from its start when saved
        image.save()
        with image.file.open("rb") as stored:
            self.assertEqual(stored.read(256), big[:256])

    def test_stored_file_is_checked_too(self):
        """A file put in storage directly (file.save(save=False))."""
        build = self._create_build(category=self.category, version="V-stored")
        image = ModemFirmwareImage(build=build, type="telit-fn990a")
        image.file.save("junk.bin", ContentFile(TEXT_FILE), save=False)
        with self.assertRaisesMessage(ValidationError, "This file is text"):
            image.full_clean()

    def test_generic_upgrader_keeps_the_default_hook(self):
        self.assertIsNone(GenericCommandUpgrader.check_image(TEXT_FILE, 25, None))

    def test_api_upload_refused_with_400(self):
        self.client.force_login(self._create_administrator(organizations=[self.org]))
        build = self._create_build(category=self.category, version="V-api")
        for content, message in (
            (TEXT_FILE, "This file is text"),
            (gzip.compress(b"x" * 100), "gzip archive"),
        ):
            with self.subTest(message):
                response = self.client.post(
                    api_url("firmware_image_list", build.pk),
                    {"type": "telit-fn990a", "file": self._upload(content)},
                )
                self.assertEqual(response.status_code, 400, response.data)
                self.assertIn(message, str(response.data["file"]))
        self.assertFalse(ModemFirmwareImage.objects.exists())

    def test_admin_upload_shows_the_error(self):
        self.client.force_login(self._get_admin())
        response = self.client.post(
            admin_url(ModemBuild, "add"),
            {
                "category": str(self.category.pk),
                "modem_model": FN990A28,
                "version": "M0R.020000-B001",
                "changelog": "",
                "images-TOTAL_FORMS": "1",
                "images-INITIAL_FORMS": "0",
                "images-MIN_NUM_FORMS": "0",
                "images-MAX_NUM_FORMS": "1000",
                "images-0-file": self._upload(TEXT_FILE, "junk.bin"),
                "images-0-type": "telit-fn990a",
                "images-0-boards": "[]",
            },
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "This file is text")
        self.assertFalse(ModemFirmwareImage.objects.exists())

    def test_wrapper_gets_the_stream_prefix(self):
        self.assertEqual(TelitFN990AUpgrader.stream_version_prefix, "45.")
        self.assertIsNone(GenericCommandUpgrader.stream_version_prefix)
        device = self._devices(1)[0]
        image = self._create_image(
            build=self._create_build(category=self.category, version="V-args")
        )
        operation = start_upgrade(device, image)
        self.assertEqual(DeviceModemFirmware.objects.get(device=device).image, image)
        upgrader = TelitFN990AUpgrader(operation, None)
        upgrader.image = image
        upgrader.paths = {
            "scripts": "/tmp/s",
            "firmware": "/tmp/fw.bin",
            "base": "/tmp",
        }
        args = upgrader.wrapper_arguments()
        self.assertEqual(args[args.index("--stream-prefix") + 1], "45.")


class TestLifecycleMigration(TransactionTestCase):
    """Builds made before the lifecycle become released, with their key."""

    def test_existing_builds_released_with_version_key(self):
        app = ModemBuild._meta.app_label
        before, after = [(app, "0007_fleet_engine_rollouts")], [
            (app, "0008_build_lifecycle")
        ]
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        others = [n for n in executor.loader.graph.leaf_nodes() if n[0] != app]
        old_apps = executor.loader.project_state(others + before).apps
        Category = old_apps.get_model(app, "ModemCategory")
        Build = old_apps.get_model(app, "ModemBuild")
        category = Category.objects.create(name="old")
        Build.objects.create(
            category=category, version="M0R.010000-B022", modem_model=FN990A28
        )
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes(app))
        build = ModemBuild.objects.get(version="M0R.010000-B022")
        self.assertEqual(build.status, "released")
        self.assertEqual(build.version_key, version_key("M0R.010000-B022"))
