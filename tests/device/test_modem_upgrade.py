"""modem-upgrade.sh under BusyBox ash against the emulated FN990A."""

import hashlib
import os
import shlex
import signal
import time

from openwisp_modem_upgrader.device_contract import (
    EXIT_ABORTED,
    EXIT_BUSY,
    EXIT_CODES,
    EXIT_IRRECOVERABLE,
    EXIT_RECOVERABLE,
    EXIT_SUCCESS,
    EXIT_USAGE,
    JOURNAL_STATES,
    journal_read_command,
    parse_journal_line,
    parse_journal_read,
    router_paths,
)
from openwisp_modem_upgrader.upgraders.stream_checks import header_version

from .helpers import NEW_VERSION, OLD_VERSION, OPERATION_ID, UPGRADE, RouterTestCase
from .router import EmulatedRouter, _pids_mentioning

OTHER_OPERATION_ID = "1f0c0d6e-8a40-4c55-9d7e-000000000002"


def wait_for(predicate, timeout=60, interval=0.05):
    """Until ``predicate()``: a generous deadline (a busy machine is slow),
    returns as soon as it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class TestUpgradeOutcomes(RouterTestCase):
    def test_success(self):
        result = self.upgrade()
        messages = self.assert_finished(result, EXIT_SUCCESS, "success")
        records = self.journal()
        self.assertEqual(records[-1][3], "100")
        percents = [int(r[3]) for r in records]
        self.assertTrue(any(20 < p < 90 for p in percents), percents)
        self.assertIn("[+] firmware uploaded successfully!", messages)
        self.assertIn(f"firmware {NEW_VERSION} verified", messages[-1])
        state = self.router.modem_state()
        self.assertEqual(state["firmware"], NEW_VERSION)
        self.assertEqual(state["mode"], "normal")
        events = [e[0] for e in state["events"]]
        self.assertLess(events.index("inhibit"), events.index("uxfp"))
        self.assertEqual(
            self.tool_calls(),
            [
                [
                    "--file",
                    os.path.join(self.router.tmp_dir, "fw.bin"),
                    "--port",
                    "/dev/ttyUSB0",
                ]
            ],
        )
        self.assertIn(["at", "AT+CFUN=0"], state["events"])

    def test_extra_tool_args_are_passed_one_by_one(self):
        result = self.upgrade(tool_args="--noprogress  --speed 921600")
        self.assert_finished(result, EXIT_SUCCESS, "success")
        self.assertEqual(
            self.tool_calls()[0][4:], ["--noprogress", "--speed", "921600"]
        )

    def test_no_checksum(self):
        path, _ = self.firmware(corrupt=True)
        result = self.upgrade(firmware=path, sha256=None, no_checksum=True)
        messages = self.assert_finished(result, EXIT_SUCCESS, "success")
        self.assertIn("checksum verification skipped (--no-checksum)", messages)

    def test_checksum_mismatch(self):
        path, sha = self.firmware(corrupt=True)
        result = self.upgrade(firmware=path, sha256=sha)
        messages = self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertIn("sha256 mismatch", messages[-1])
        self.assertEqual(self.tool_calls(), [])

    def test_firmware_missing(self):
        result = self.upgrade(
            firmware=self.router.tmp_dir + "/nothing.bin", sha256="a" * 64
        )
        self.assert_finished(result, EXIT_RECOVERABLE, "failed")

    def test_no_space_left(self):
        result = self.upgrade(env={"MIN_FREE_KB": "999999999999"})
        messages = self.assert_finished(result, EXIT_RECOVERABLE, "failed")
        self.assertIn("KB free", messages[-1])

    def test_wrong_variant_is_refused_before_the_tool(self):
        self.router.set_modem(model="FN990A40")
        result = self.upgrade()
        messages = self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertIn("modem is FN990A40: refused", messages[-1])
        self.assertEqual(self.tool_calls(), [])

    def test_image_for_another_chipset_is_refused_by_the_tool(self):
        path, sha = self.firmware(chipset="40.")
        result = self.upgrade(firmware=path, sha256=sha)
        messages = self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertIn("[+] could not complete firmware upload", messages)
        self.assertEqual(self.router.modem_state()["firmware"], OLD_VERSION)
        # nothing was flashed: the radio is back on
        self.assertEqual(self.router.modem_state()["cfun"], 1)

    def test_tool_missing(self):
        result = self.upgrade(tool="/nonexistent/uxfp")
        messages = self.assert_finished(result, EXIT_RECOVERABLE, "failed")
        self.assertIn("not found", messages[-1])
        self.assertNotIn("inhibit", [e[0] for e in self.router.modem_state()["events"]])

    def test_modem_absent(self):
        self.router.set_modem(mode="absent")
        result = self.upgrade()
        messages = self.assert_finished(result, EXIT_RECOVERABLE, "failed")
        self.assertIn("no modem", messages[-1])

    def test_modem_not_answering(self):
        self.router.set_fault("silent")
        result = self.upgrade()
        messages = self.assert_finished(result, EXIT_RECOVERABLE, "failed")
        self.assertIn("does not answer", messages[-1])

    def test_tool_error(self):
        self.router.set_fault("tool-error")
        result = self.upgrade()
        messages = self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertIn("back in normal mode", messages[-1])
        self.assertIn("[+] could not complete firmware upload", messages)

    def test_hang_is_bounded_by_flash_timeout(self):
        self.router.set_fault("hang")
        started = time.monotonic()
        result = self.upgrade(flash_timeout="1")
        # the fake tool hangs for an hour: bounded, well below that and the
        # helper's own 30s limit, even on a busy machine
        self.assertLess(time.monotonic() - started, 20)
        messages = self.assert_finished(result, EXIT_ABORTED, "aborted")
        self.assertIn("did not finish within 1s", messages[-1])
        self.assertEqual(self.router.modem_state()["mode"], "flashing")

    def test_interrupt_then_loss_recovery(self):
        self.router.set_fault("interrupt")
        result = self.upgrade()
        messages = self.assert_finished(result, EXIT_ABORTED, "aborted")
        self.assertIn("left in flashing mode", messages[-1])
        self.assertEqual(self.router.modem_state()["mode"], "flashing")

        self.router.set_fault(None)
        second = "0b5e6a1c-0000-4000-8000-000000000002"
        result = self.upgrade(operation_id=second)
        messages = self.assert_finished(result, EXIT_SUCCESS, "success", second)
        self.assertTrue(any("--lossrecovery" in m for m in messages))
        self.assertIn("--lossrecovery", self.tool_calls()[-1])
        self.assertEqual(self.router.modem_state()["firmware"], NEW_VERSION)

    def test_power_loss(self):
        self.router.set_fault("power-loss")
        result = self.upgrade(reboot_timeout="1")
        messages = self.assert_finished(result, EXIT_ABORTED, "aborted")
        self.assertIn("modem lost", messages[-1])

    def test_modem_not_back_within_reboot_timeout(self):
        self.router.set_fault("no-return")
        result = self.upgrade(reboot_timeout="1")
        messages = self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertIn("did not answer within 1s", messages[-1])

    def test_modem_stuck_in_flashing_mode_after_the_flash(self):
        self.router.set_fault("stuck-flashing")
        result = self.upgrade(reboot_timeout="1")
        messages = self.assert_finished(result, EXIT_ABORTED, "aborted")
        self.assertIn("still in flashing mode", messages[-1])

    def test_version_mismatch_after_flash(self):
        self.router.set_fault("stale-version")
        result = self.upgrade()
        messages = self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertIn(f"runs '{OLD_VERSION}' after the flash", messages[-1])

    def test_revision_is_compared_without_swpkgv(self):
        """Without #SWPKGV line 2 the revision is the version compared."""
        self.router.set_fault("no-swpkgv")
        path, sha = self.firmware()
        result = self.upgrade(
            firmware=path, sha256=sha, expected_version="45.00.010-B022-P0R.001600"
        )
        self.assert_finished(result, EXIT_SUCCESS, "success")


# what a bad "stream" looks like at its start: the server refuses these at
# upload; the router refuses them too (images uploaded before the check,
# or put in storage by other means)
TEXT_FILE = b"this is not firmware :-)\n"  # the 25 bytes of issue 17
ZIP_FILE = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)) * 4
GZIP_FILE = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(256)) * 4
XZ_FILE = b"\xfd7zXZ\x00\x00\x04" + bytes(range(256)) * 4
SEVEN_Z_FILE = b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(range(256)) * 4
TAR_FILE = b"fw.bin".ljust(257, b"\0") + b"ustar\x0000" + bytes(512)


class TestStreamCheckBeforeTouchingTheModem(RouterTestCase):
    """With --stream-prefix the wrapper refuses what cannot be a stream for
    the chipset before ModemManager, the modem daemon or the radio are
    touched: the irrecoverable code (the same file would be refused again)
    and a message that says the modem is untouched."""

    def write(self, content, name="bad.bin"):
        path = os.path.join(self.router.tmp_dir, name)
        with open(path, "wb") as f:
            f.write(content)
        return path, hashlib.sha256(content).hexdigest()

    def assert_refused_untouched(self, path, sha, reason):
        result = self.upgrade(firmware=path, sha256=sha, stream_prefix="45.")
        messages = self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertIn("refused before stopping anything", messages[-1])
        self.assertIn(reason, messages[-1])
        self.assertIn("modem untouched", messages[-1])
        events = self.router.modem_state()["events"]
        kinds = [event[0] for event in events]
        self.assertNotIn("inhibit", kinds)
        self.assertNotIn("daemon", kinds)
        self.assertNotIn("uxfp", kinds)
        self.assertNotIn(["at", "AT+CFUN=0"], events)
        self.assertEqual(self.router.modem_state()["cfun"], 1)
        return messages

    def test_text_file_is_refused(self):
        path, sha = self.write(TEXT_FILE)
        self.assertEqual(len(TEXT_FILE), 25)
        self.assert_refused_untouched(path, sha, "is text, not a firmware stream")

    def test_archives_are_refused(self):
        for kind, content in (
            ("zip", ZIP_FILE),
            ("gzip", GZIP_FILE),
            ("xz", XZ_FILE),
            ("7z", SEVEN_Z_FILE),
            ("tar", TAR_FILE),
        ):
            with self.subTest(kind):
                # one operation per file: a finished one is not run again
                operation_id = f"0b5e6a1c-0000-4000-8000-{kind.encode().hex():0>12}"
                path, sha = self.write(content, name=f"{kind}.bin")
                result = self.upgrade(
                    firmware=path,
                    sha256=sha,
                    stream_prefix="45.",
                    operation_id=operation_id,
                )
                messages = self.assert_finished(
                    result, EXIT_IRRECOVERABLE, "failed", operation_id
                )
                self.assertIn(f"is a {kind} archive", messages[-1])
                self.assertIn("modem untouched", messages[-1])
                self.assertEqual(self.router.modem_state()["events"], [])

    def test_stream_of_another_chipset_is_refused(self):
        path, sha = self.firmware(chipset="40.")
        messages = self.assert_refused_untouched(path, sha, "for another chipset")
        self.assertIn("40.00.010-B022-P0R.001600", messages[-1])

    def test_refused_without_modem_manager_too(self):
        self.router.stop()
        self.router = EmulatedRouter(
            ssh=False, uci={}, modem_manager=False, **self.modem
        )
        self.router.start()
        self.addCleanup(self.router.stop)
        path, sha = self.write(TEXT_FILE)
        result = self.upgrade(
            firmware=path,
            sha256=sha,
            stream_prefix="45.",
            modem_service=self.router.modem_service,
        )
        self.assertEqual(result.returncode, EXIT_IRRECOVERABLE)
        self.assertEqual(self.router.modem_state()["events"], [])
        self.assertEqual(self.router.modem_state()["daemon"], "running")

    def test_stream_of_this_chipset_is_flashed(self):
        result = self.upgrade(stream_prefix="45.")
        messages = self.assert_finished(result, EXIT_SUCCESS, "success")
        self.assertIn("stream software version 45.00.010-B022-P0R.001600", messages)

    def test_unreadable_header_is_left_to_the_tool(self):
        # binary, no archive magic, no version in the first 4 KiB
        path, sha = self.write(bytes(range(256)) * 64)
        result = self.upgrade(firmware=path, sha256=sha, stream_prefix="45.")
        messages = self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertIn(
            "stream header has no readable software version: the tool checks "
            "the stream",
            messages,
        )
        self.assertIn("[-] not a firmware stream", messages)

    def test_without_stream_prefix_nothing_is_checked(self):
        path, sha = self.write(TEXT_FILE)
        result = self.upgrade(firmware=path, sha256=sha)
        self.assertEqual(result.returncode, EXIT_IRRECOVERABLE)
        self.assertIn("uxfp", [e[0] for e in self.router.modem_state()["events"]])

    def test_same_header_rule_as_the_server(self):
        """The wrapper finds the header's version where the server's upload
        check does (upgraders/stream_checks.py), edge cases included."""
        binary = bytes(range(1, 256)) * 4
        cases = {
            "after-nul": bytes(100) + b"_40.00.010-B022-P0R.001600" + binary,
            "after-ff": b"\xff" * 10 + b"45.00.010-B022-P0R.001600" + bytes(9),
            "after-letter": bytes(100) + b"V40.00.010-B022" + binary,
            "past-4k": bytes(4096) + b"40.00.010-B022" + binary,
            "across-4k": bytes(4090) + b"40.00.010-B022" + binary,
            "no-build": bytes(10) + b"40.00.010" + binary,
        }
        for number, (name, content) in enumerate(cases.items()):
            with self.subTest(name):
                expected = header_version(content)
                operation_id = f"0b5e6a1c-0000-4000-8000-{number:012d}"
                path, sha = self.write(content, name=f"{name}.bin")
                self.upgrade(
                    firmware=path,
                    sha256=sha,
                    stream_prefix="45.",
                    operation_id=operation_id,
                )
                messages = [record[4] for record in self.journal(operation_id)]
                if expected is None:
                    self.assertIn(
                        "stream header has no readable software version: the "
                        "tool checks the stream",
                        messages,
                    )
                elif expected.startswith("45."):
                    self.assertIn(f"stream software version {expected}", messages)
                else:
                    self.assertIn("for another chipset", messages[-1])
                    self.assertIn(expected, messages[-1])
        self.assertEqual(
            [header_version(c) is None for c in cases.values()],
            [False, False, True, True, True, True],
        )

    def test_stream_prefix_is_validated(self):
        path, sha = self.write(TEXT_FILE)
        result = self.upgrade(firmware=path, sha256=sha, stream_prefix="45;x")
        self.assertEqual(result.returncode, EXIT_USAGE)


class TestWithoutModemManager(RouterTestCase):
    router_options = {"modem_manager": False}

    def test_second_modem_flashed_over_at(self):
        self.router.set_modem(extra_modems=[{"usb_path": "1-1.2"}])
        result = self.upgrade(usb_path="1-1.2")
        self.assert_finished(result, EXIT_SUCCESS, "success")
        state = self.router.modem_state()
        self.assertEqual(state["extra_modems"][0]["firmware"], NEW_VERSION)
        self.assertEqual(state["firmware"], OLD_VERSION)
        # its radio went off and on over its own AT port
        self.assertEqual(state["extra_modems"][0]["cfun"], 1)
        self.assertIn(["at", "AT+CFUN=0"], state["events"])

    def test_modem_daemon_is_stopped_and_restarted(self):
        result = self.upgrade(modem_service=self.router.modem_service)
        self.assert_finished(result, EXIT_SUCCESS, "success")
        daemon = [e[1] for e in self.router.modem_state()["events"] if e[0] == "daemon"]
        self.assertEqual(daemon, ["stop", "start"])

    def test_daemon_restarted_after_tool_error(self):
        self.router.set_fault("tool-error")
        result = self.upgrade(modem_service=self.router.modem_service)
        self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")


class TestContract(RouterTestCase):
    """The script and the server read the same contract (device_contract)."""

    def test_script_declares_the_servers_exit_codes(self):
        import re

        with open(UPGRADE) as f:
            declared = dict(re.findall(r"^(EXIT_[A-Z]+)=([0-9]+)", f.read(), re.M))
        self.assertEqual({k: int(v) for k, v in declared.items()}, EXIT_CODES)

    def test_servers_journal_read_finds_the_wrappers_files(self):
        """The layout the server gives the wrapper (``router_paths``) and
        the server's own read of the journal and the exit code, run on the
        router after the wrapper."""
        paths = router_paths(self.router.tmp_dir, OPERATION_ID, "image")
        self.router.set_flash_duration(0.2)
        result = self.upgrade(workdir=paths["base"])
        self.assertEqual(result.returncode, EXIT_SUCCESS, result.stderr)

        def read(seen, journal_dir=paths["journal_dir"]):
            command = journal_read_command(journal_dir, seen, shlex.quote)
            output = self.router.run(["-c", command]).stdout
            return parse_journal_read(output)

        started, records, exit_code = read(0)
        self.assertTrue(started)
        self.assertEqual(exit_code, EXIT_SUCCESS)
        self.assertEqual([r.seq for r in records], list(range(1, len(records) + 1)))
        self.assertEqual(records[-1].state, "success")
        started, later, _ = read(2)
        self.assertEqual([r.seq for r in later], [r.seq for r in records[2:]])
        other = router_paths(self.router.tmp_dir, OTHER_OPERATION_ID, "image")
        self.assertEqual(read(0, other["journal_dir"]), (False, [], None))

    def test_journal_records_parse_with_the_servers_parser(self):
        self.router.set_flash_duration(0.2)
        self.assert_finished(self.upgrade(), EXIT_SUCCESS, "success")
        path = os.path.join(self.opdir(), "journal")
        with open(path) as f:
            records = [parse_journal_line(line) for line in f]
        self.assertTrue(records)
        self.assertNotIn(None, records)
        self.assertEqual([r.seq for r in records], list(range(1, len(records) + 1)))
        self.assertTrue({r.state for r in records} <= set(JOURNAL_STATES))


class TestConcurrencyAndSignals(RouterTestCase):
    # the flash outlasts what a test does meanwhile (a second start, a
    # signal), also on a busy machine
    modem = {"flash_duration": 4, "reboot_delay": 0.2}

    def upgrade_args(self, **overrides):
        # and the flash timeout outlasts the flash on a busy machine
        overrides.setdefault("flash_timeout", "60")
        return super().upgrade_args(**overrides)

    def test_sigterm_before_flash_is_recoverable(self):
        # the modem does not answer: the wrapper waits for it, before uxfp
        self.router.set_fault("silent")
        process = self.start_upgrade()
        self.assertTrue(
            wait_for(lambda: any("sha256 verified" in r[4] for r in self.journal())),
            self.journal(),
        )
        process.send_signal(signal.SIGTERM)
        # nothing was written: the server may retry (not a recovery flash)
        self.assertEqual(process.wait(timeout=60), EXIT_RECOVERABLE)
        record = self.journal()[-1]
        self.assertEqual(record[2], "failed")
        self.assertIn("before flashing: modem untouched", record[4])
        self.assertNotIn("uxfp", [e[0] for e in self.router.modem_state()["events"]])
        self.assert_ports_released()

    def _wait_until_flashing(self):
        self.assertTrue(
            wait_for(lambda: any("uploading firmware" in r[4] for r in self.journal())),
            self.journal(),
        )

    def test_second_start_is_busy(self):
        first = self.start_upgrade()
        self._wait_until_flashing()
        before = self.journal()
        result = self.upgrade()
        self.assertEqual(result.returncode, EXIT_BUSY, result.stderr)
        # the second start wrote nothing of its own
        self.assertEqual(self.journal()[: len(before)], before)
        self.assertEqual(len(self.tool_calls()), 1)
        self.assertEqual(first.wait(timeout=60), EXIT_SUCCESS)
        self.assertEqual(self.journal()[-1][2], "success")

    def test_detached_second_start_is_busy(self):
        first = self.start_upgrade()
        self._wait_until_flashing()
        result = self.upgrade(detach=True)
        self.assertEqual(result.returncode, EXIT_BUSY, result.stderr)
        self.assertEqual(result.stdout.strip(), os.path.join(self.opdir(), "journal"))
        self.assertEqual(first.wait(timeout=60), EXIT_SUCCESS)
        self.assertEqual(len(self.tool_calls()), 1)

    def test_finished_operation_is_not_run_again(self):
        self.router.set_flash_duration(0.2)
        self.assertEqual(self.upgrade().returncode, EXIT_SUCCESS)
        records = self.journal()
        result = self.upgrade()
        self.assertEqual(result.returncode, EXIT_SUCCESS)
        self.assertEqual(self.journal(), records)
        self.assertEqual(len(self.tool_calls()), 1)

    def test_stale_lock_is_taken_over(self):
        self.router.set_flash_duration(0.2)
        os.makedirs(os.path.join(self.opdir(), "lock"))
        with open(os.path.join(self.opdir(), "lock", "pid"), "w") as f:
            f.write("999999\n")
        self.assert_finished(self.upgrade(), EXIT_SUCCESS, "success")

    def test_sigterm_during_flash_is_aborted(self):
        process = self.start_upgrade()
        self._wait_until_flashing()
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=60), EXIT_ABORTED)
        record = self.journal()[-1]
        self.assertEqual(record[2], "aborted")
        self.assertIn("killed by signal TERM during or after the flash", record[4])
        self.assert_ports_released()
        # the truth: the modem was left in flashing mode
        self.assertEqual(self.router.modem_state()["mode"], "flashing")

    def test_sigkill_still_releases_the_ports(self):
        """Nothing can trap SIGKILL: the inhibitor's guardian and the
        reporter notice the script is gone and end on their own."""
        self.router.set_uci(**{"openwisp.http.url": "http://127.0.0.1:9"})
        self.router.set_uci(**{"openwisp.http.key": "k"})
        process = self.start_upgrade()
        self._wait_until_flashing()
        self.assertTrue(self.router.modem_state()["inhibited_by"])
        process.kill()
        process.wait()
        self.assertTrue(wait_for(lambda: not self.router.modem_state()["inhibited_by"]))
        # the tool finishes its flash; then nothing of the run is left
        self.assertTrue(wait_for(lambda: not _pids_mentioning(self.router.root)))


PWNED = "pwned-marker"


class TestHostileArguments(RouterTestCase):
    hostile = [
        {"operation_id": f"$(touch {PWNED})"},
        {"operation_id": f"abc;touch {PWNED}"},
        {"operation_id": "../../etc"},
        {"tool_args": f"--debug `touch {PWNED}`"},
        {"tool_args": f"--debug\ntouch {PWNED}"},
        {"tool_args": f"--debug; touch {PWNED}"},
        {"tool_args": "--debug\t--noprogress"},
        {"expected_version": f'M0R"; touch {PWNED}; "'},
        {"expected_version": "M0R'x"},
        {"expected_model": "FN990A28 FN990A40"},
        {"firmware": f"/tmp/fw.bin;touch {PWNED}"},
        {"workdir": "/tmp/a dir"},
        {"tool": f"uxfp$(touch {PWNED})"},
        {"report_url": f"http://127.0.0.1/$(touch {PWNED})"},
        {"device_key": "abc'def"},
        {"flash_timeout": "1;reboot"},
        {"flash_timeout": "1.5"},
        {"report_interval": "0..2"},
        {"sha256": "abc"},
        {"sha256": "g" * 64},
        {"expected_model": None},
        {"operation_id": ""},
        {"operation_id": "a" * 65},
        {"usb_path": f"2-1;touch {PWNED}"},
        {"usb_path": "2-1\n"},
        {"usb_path": "../2-1"},
        {"usb_path": "2-1."},
        {"usb_path": "2"},
    ]

    def test_hostile_values_are_rejected(self):
        for overrides in self.hostile:
            with self.subTest(overrides=overrides):
                result = self.upgrade(**overrides)
                self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)
                self.assertEqual(os.listdir(self.router.tmp_dir), ["fw.bin"])
                self.assertFalse(os.path.exists(os.path.join(self.router.root, PWNED)))
                self.assertEqual(self.router.modem_state()["events"], [])

    def test_malformed_command_lines(self):
        base = self.upgrade_args()
        for args in (
            base + ["positional"],
            base + ["--flash-timeout"],
            base + ["--unknown", "x"],
            base + ["--operation-id=abc"],
            [],
        ):
            with self.subTest(args=args):
                from .helpers import UPGRADE

                result = self.router.run([UPGRADE, *args])
                self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)
                self.assertFalse(os.path.exists(self.opdir()))


class TestUsbPath(RouterTestCase):
    def test_flashes_the_modem_at_the_usb_path(self):
        # 1-1.2 sorts first: without --usb-path it would be chosen
        self.router.set_modem(extra_modems=[{"usb_path": "1-1.2"}])
        result = self.upgrade(usb_path="2-1")
        self.assertEqual(result.returncode, 0, result.stderr)
        (flash,) = [e for e in self.router.modem_state()["events"] if e[0] == "uxfp"]
        self.assertEqual(flash[flash.index("--port") + 1], "/dev/ttyUSB0")

    def test_both_modems_of_a_two_modem_router(self):
        # the second modem is flashed like the first: its own DIAG port,
        # its own ModemManager inhibition, its own version afterwards
        self.router.set_modem(extra_modems=[{"usb_path": "1-1.2"}])
        for operation_id, usb_path in (
            (OPERATION_ID, "1-1.2"),
            (OTHER_OPERATION_ID, "2-1"),
        ):
            with self.subTest(usb_path=usb_path):
                result = self.upgrade(operation_id=operation_id, usb_path=usb_path)
                messages = self.assert_finished(
                    result, EXIT_SUCCESS, "success", operation_id=operation_id
                )
                self.assertIn(f"firmware {NEW_VERSION} verified", messages[-1])
        state = self.router.modem_state()
        (extra,) = state["extra_modems"]
        self.assertEqual((extra["firmware"], extra["mode"]), (NEW_VERSION, "normal"))
        self.assertEqual(extra["usb_id"], "1bc7:1071")
        self.assertIsNone(extra["inhibited_by"])
        self.assertEqual(extra["cfun"], 1)
        self.assertEqual(state["firmware"], NEW_VERSION)
        ports = [call[call.index("--port") + 1] for call in self.tool_calls()]
        self.assertEqual(ports, ["/dev/ttyUSB4", "/dev/ttyUSB0"])
        inhibited = [e[1] for e in state["events"] if e[0] == "inhibit"]
        self.assertEqual([uid.rsplit("/", 1)[1] for uid in inhibited], ["1-1.2", "2-1"])
        # the emulator's record of each flash: one after the other
        flashes = [e for e in state["events"] if e[0].startswith("flash-")]
        self.assertEqual(
            [(e[0], e[1]) for e in flashes],
            [
                ("flash-start", "1-1.2"),
                ("flash-end", "1-1.2"),
                ("flash-start", "2-1"),
                ("flash-end", "2-1"),
            ],
        )

    def test_second_modem_fault_is_its_own(self):
        self.router.set_modem(
            extra_modems=[{"usb_path": "1-1.2", "fault": "tool-error"}]
        )
        result = self.upgrade(usb_path="1-1.2")
        self.assert_finished(result, EXIT_IRRECOVERABLE, "failed")
        self.assertTrue(
            wait_for(
                lambda: self.router.modem_state()["extra_modems"][0]["mode"] == "normal"
            )
        )
        state = self.router.modem_state()
        self.assertEqual(state["extra_modems"][0]["firmware"], OLD_VERSION)
        # the first modem was not touched, and flashes fine
        self.assertEqual((state["firmware"], state["mode"]), (OLD_VERSION, "normal"))
        result = self.upgrade(operation_id=OTHER_OPERATION_ID, usb_path="2-1")
        self.assert_finished(
            result, EXIT_SUCCESS, "success", operation_id=OTHER_OPERATION_ID
        )

    def test_no_modem_at_the_usb_path(self):
        result = self.upgrade(usb_path="3-1")
        self.assertNotIn(result.returncode, (0, EXIT_USAGE), result.stderr)
        uxfp = [e for e in self.router.modem_state()["events"] if e[0] == "uxfp"]
        self.assertEqual(uxfp, [])


class TestOperationIdIsLowercaseUuid(RouterTestCase):
    def test_uppercase_rejected(self):
        result = self.upgrade(operation_id=OPERATION_ID.upper())
        self.assertEqual(result.returncode, EXIT_USAGE)
