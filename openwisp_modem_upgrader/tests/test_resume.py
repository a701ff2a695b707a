"""Cellular-friendly transfers against a real emulated router: resume after a
drop, skip an image the router holds, count the data sent."""

import os
import shutil
from unittest import mock

from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from ..base.models import OperationStatus
from ..upgraders import wrapper
from ..upgraders.wrapper import scripts_size
from . import NEW_VERSION, ModemUpgradeOperation
from .faults import cut_transfers
from .test_engine import LONG_ROUTER_TAGS, EngineTestMixin

MIB = 1024 * 1024


class TestResumableTransfer(EngineTestMixin, StaticLiveServerTestCase):
    tags = LONG_ROUTER_TAGS

    def setUp(self):
        super().setUp()
        self.use_image(8 * MIB)

    def use_image(self, size):
        self.image = self._create_firmware_image(size=size)
        self.router_image = os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", f"{self.image.sha256}.bin"
        )

    def image_bytes_sent(self, operation, tries=None):
        """Bytes of the image itself: what the operation counted, less the
        scripts (uploaded once per try; a drop after progress is a try that
        uses no attempt, see test_attempts)."""
        tries = operation.attempts if tries is None else tries
        return operation.bytes_sent - tries * scripts_size()

    def place_on_router(self, length=None, corrupt=False):
        os.makedirs(os.path.dirname(self.router_image), exist_ok=True)
        with self.image.file.open("rb") as source, open(
            self.router_image, "wb"
        ) as target:
            if length is None:
                shutil.copyfileobj(source, target)
            else:
                content = source.read(length)
                if corrupt:
                    content = content[:-1] + bytes([content[-1] ^ 0xFF])
                target.write(content)

    def assert_upgraded(self, operation):
        self.assertEqual(operation.status, OperationStatus.SUCCESS, operation.log)
        self.assertIn("sha256 verified", operation.log)
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)

    def test_cut_at_half_resumes(self):
        self.use_image(32 * MIB)
        with cut_transfers(at_fraction=0.5, times=1) as offsets:
            operation = self.upgrade()
        self.assert_upgraded(operation)
        # a drop after progress uses no attempt (test_attempts)
        self.assertEqual(operation.attempts, 1)
        self.assertIn("not counted as an attempt", operation.log)
        self.assertIn("transfer interrupted", operation.log)
        size = self.image.size
        self.assertIn(
            f"resuming the transfer: the router holds the first {size // 2} bytes",
            operation.log,
        )
        # the retry started where the router's intact copy ended (the cut
        # falls on a byte, whatever the machine's speed)
        self.assertEqual(offsets, [0, size // 2])
        # nothing sent twice
        self.assertEqual(self.image_bytes_sent(operation, len(offsets)), size)

    def test_two_cuts_still_send_little_more_than_the_image(self):
        self.use_image(32 * MIB)
        with cut_transfers(at_fraction=0.4, times=2) as offsets:
            operation = self.upgrade()
        self.assert_upgraded(operation)
        self.assertEqual(offsets, cut_offsets(self.image.size, 0.4, 3))
        # both drops came after progress: neither used an attempt
        self.assertEqual(operation.attempts, 1)
        self.assertEqual(
            self.image_bytes_sent(operation, len(offsets)), self.image.size
        )

    def test_bytes_are_counted_while_the_transfer_runs(self):
        # a worker killed mid-transfer runs no ``finally``: what went out
        # before must already be on the operation (the fault run kills one)
        real = wrapper.stream_file_to_router
        counted_before_last_chunk = []

        def transfer(*args, on_progress=None, **kwargs):
            def progress(done, total):
                if done == total:
                    counted_before_last_chunk.extend(
                        ModemUpgradeOperation.objects.values_list(
                            "bytes_sent", flat=True
                        )
                    )
                on_progress(done, total)

            return real(*args, on_progress=progress, **kwargs)

        with mock.patch.object(wrapper, "stream_file_to_router", transfer):
            operation = self.upgrade()
        self.assert_upgraded(operation)
        self.assertEqual(len(counted_before_last_chunk), 1)
        # the scripts and at least the first chunk of the image
        self.assertGreater(counted_before_last_chunk[0], scripts_size())
        self.assertEqual(self.image_bytes_sent(operation), self.image.size)

    def test_corrupt_partial_restarts_from_zero(self):
        self.place_on_router(length=self.image.size // 2, corrupt=True)
        operation = self.upgrade()
        self.assert_upgraded(operation)
        self.assertIn("does not match the image", operation.log)
        self.assertEqual(self.image_bytes_sent(operation), self.image.size)

    def test_intact_partial_is_continued(self):
        self.place_on_router(length=3 * MIB)
        operation = self.upgrade()
        self.assert_upgraded(operation)
        self.assertIn("holds the first 3145728 bytes intact", operation.log)
        self.assertEqual(self.image_bytes_sent(operation), self.image.size - 3 * MIB)

    def test_present_image_sends_nothing(self):
        self.place_on_router()
        operation = self.upgrade()
        self.assert_upgraded(operation)
        self.assertIn("already holds this image", operation.log)
        self.assertEqual(operation.bytes_sent, scripts_size())
        self.assertEqual(self.image_bytes_sent(operation), 0)

    def test_longer_copy_is_replaced(self):
        self.place_on_router()
        with open(self.router_image, "ab") as target:
            target.write(b"trailing garbage")
        operation = self.upgrade()
        self.assert_upgraded(operation)
        self.assertIn("does not match the image", operation.log)
        self.assertEqual(self.image_bytes_sent(operation), self.image.size)

    def test_images_of_earlier_operations_are_removed(self):
        stale = os.path.join(
            self.remote_dir, "openwisp-modem-upgrader", "0" * 64 + ".bin"
        )
        os.makedirs(os.path.dirname(stale), exist_ok=True)
        with open(stale, "wb") as f:
            f.write(b"old image")
        operation = self.upgrade()
        self.assert_upgraded(operation)
        self.assertFalse(os.path.exists(stale))
        # and the flashed image is gone too: nothing left but the journal
        self.assertNotIn(
            f"openwisp-modem-upgrader/{self.image.sha256}.bin", self.router_files()
        )

    def test_never_writes_while_a_wrapper_runs(self):
        # another operation's wrapper holds its lock (a live process)
        lock = os.path.join(self.remote_dir, "openwisp-modem-upgrader", "other", "lock")
        os.makedirs(lock)
        with open(os.path.join(lock, "pid"), "w") as f:
            f.write(str(os.getpid()))
        self.place_on_router(length=MIB)
        operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("another flash is running on the router", operation.log)
        self.assertFalse(operation.flash_started)
        self.assertEqual(operation.bytes_sent, 0)
        # the copy that wrapper may be reading was left untouched
        self.assertEqual(os.path.getsize(self.router_image), MIB)

    def test_final_failed_attempt_leaves_no_partial(self):
        # cut after the first MiB, within the router's SSH window: nothing
        # surely reached the router, so each cut uses an attempt
        with cut_transfers(at_fraction=0.1, times=3) as offsets:
            operation = self.upgrade()
        self.assertEqual(operation.status, OperationStatus.FAILED, operation.log)
        self.assertIn("giving up after 3 attempts", operation.log)
        self.assertFalse(os.path.exists(self.router_image))
        self.assertEqual(self.router_files(), [])
        # each attempt continued the previous one, from the byte it was cut at
        size = self.image.size
        self.assertEqual(offsets, cut_offsets(size, 0.1, 3))
        self.assertEqual(self.image_bytes_sent(operation), cut_offsets(size, 0.1, 4)[3])


def cut_offsets(size, at_fraction, transfers):
    """Where ``transfers`` successive transfers start when each one before
    the last is cut at ``at_fraction`` of what it had to send (see
    ``cut_transfers``)."""
    offsets = [0]
    while len(offsets) < transfers:
        offset = offsets[-1]
        offsets.append(offset + max(1, int((size - offset) * at_fraction)))
    return offsets
