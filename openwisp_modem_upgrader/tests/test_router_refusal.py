"""An image the server never checked (uploaded before the check existed, or
put in storage by other means) is refused by the router's wrapper before it
touches the modem: the operation fails once, it is not retried, and its log
says the modem was left as it was."""

from unittest import mock

from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.files.base import ContentFile

from ..base.models import OperationStatus
from ..upgraders.telit import TelitFN990AUpgrader
from . import FN990A28, NEW_VERSION
from .test_engine import EngineTestMixin


class TestImageRefusedOnTheRouter(EngineTestMixin, StaticLiveServerTestCase):
    def use_unchecked_image(self, content):
        build = self._create_build(
            version=NEW_VERSION,
            modem_model=FN990A28,
            category=self._create_category(name="images stored before the check"),
        )
        with mock.patch.object(TelitFN990AUpgrader, "check_image") as check:
            self.image = self._create_image(
                build=build, file=ContentFile(content, name="fn990a.bin")
            )
        self.assertTrue(check.called)

    def assert_refused_untouched(self, operation, reason):
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        # the same file would be refused again: no second attempt
        self.assertEqual(operation.attempts, 1, operation.log)
        self.assertNotIn("retrying", operation.log.lower())
        self.assertIn("refused before stopping anything", operation.log)
        self.assertIn(reason, operation.log)
        self.assertIn("modem untouched", operation.log)
        state = self.router.modem_state()
        kinds = [event[0] for event in state["events"]]
        self.assertNotIn("inhibit", kinds)
        self.assertNotIn("uxfp", kinds)
        self.assertEqual(state["cfun"], 1)
        self.assertEqual(state["firmware"], "M0R.010000-B020")

    def test_text_file(self):
        self.use_unchecked_image(b"this is not firmware :-)\n" * 3)
        operation = self.upgrade()
        self.assert_refused_untouched(operation, "is text, not a firmware stream")

    def test_gzip_archive(self):
        self.use_unchecked_image(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8)
        operation = self.upgrade()
        self.assert_refused_untouched(operation, "is a gzip archive")
