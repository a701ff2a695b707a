"""The wrapper's --pull arguments and the stage that needs a server."""

from .helpers import RouterTestCase


class TestPullArguments(RouterTestCase):
    def test_pull_needs_an_image_size_and_the_checksum(self):
        for overrides in (
            {"pull": True},
            {"pull": True, "image_size": "0"},
            {"pull": True, "image_size": "0123"},
            {"pull": True, "image_size": "12a"},
            {"pull": True, "image_size": "10", "no_checksum": True},
            {"pull": True, "image_size": "10", "download_timeout": "1.5"},
        ):
            with self.subTest(overrides=overrides):
                result = self.upgrade(**overrides)
                self.assertEqual(result.returncode, 64, result.stderr)
                self.assertEqual(self.journal(), [])

    def test_unreachable_server_ends_at_the_download_deadline(self):
        # UCI's openwisp.http.url is a closed port (the emulator's default)
        result = self.upgrade(
            pull=True,
            image_size="4096",
            download_timeout="2",
            env={"DOWNLOAD_RETRY_PAUSE": "0.2"},
        )
        messages = self.assert_finished(result, 2, "failed")
        self.assertIn("download interrupted at 0 of 4096 bytes", "\n".join(messages))
        self.assertIn("not downloaded within 2s", messages[-1])
        self.assertIn("modem untouched", messages[-1])
        self.assertEqual(self.tool_calls(), [])


class TestPullWithoutServer(RouterTestCase):
    router_options = {
        "uci": {"openwisp.http.uuid": "5f0d2b0e-0000-4000-8000-0000000000aa"}
    }

    def test_no_server_to_download_from(self):
        result = self.upgrade(pull=True, image_size="4096")
        messages = self.assert_finished(result, 2, "failed")
        self.assertIn("no server URL or device key", messages[-1])
        self.assertIn("modem untouched", messages[-1])
        self.assertEqual(self.tool_calls(), [])
