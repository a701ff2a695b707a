"""Upgrades driven by the router-side wrapper (``device-scripts/``).

The stages and their progress ranges:

* transfer 0-10 (server): scripts over SCP, the image streamed over SSH,
  resuming what the router already holds (``transfer.py``);
* verify 10-20, execute 20-90, reboot 90-95, verify version 95-100: the
  wrapper on the router, which the server follows through the router's
  journal (over SSH) and the router's own progress reports (HTTP).

A worker runs ``start()`` (transfer, start of the detached wrapper) and is
freed; the engine's follow-up tasks call ``poll()``, one SSH round trip each,
until the wrapper's exit code and the server's reading of the modem. Vendors
differ only in the tool and its options: each is a sibling subclass with its
own ``SCHEMA`` built from ``wrapper_options()``.
"""

import os
import posixpath
import shlex
import time

from django.core.exceptions import ValidationError

from .. import settings as app_settings
from ..device_contract import (
    EXIT_ABORTED,
    EXIT_BUSY,
    EXIT_RECOVERABLE,
    EXIT_SUCCESS,
    STAGED_EXIT_MISMATCH,
    detected_version,
    flashed_modem,
    journal_read_command,
    parse_journal_read,
    parse_modem_list,
    router_paths,
    staged_image_command,
)
from ..device_scripts import scripts_dir
from ..exceptions import (
    IrrecoverableModemFailure,
    ModemUntouched,
    ModemUpgradeAborted,
    RecoverableModemFailure,
)
from ..health import OPTIONS as HEALTH_OPTIONS
from ..image_stream import open_image
from ..shell_values import (
    COMMAND,
    MODEM_MODEL,
    SHA256,
    STORAGE_DIR,
    TOOL_ARGS,
    VERSION,
    full_match,
)
from ..ssh import RouterShell
from ..statuses import TransferMode
from ..transfer import (
    parse_probe,
    plan_transfer,
    probe_command,
    stream_file_to_router,
    transfer_progressed,
    upload_directory,
)
from .base import FLASHING, BaseModemUpgrader
from .health_checks import HealthChecks

SPACE_MARGIN = 1024 * 1024


class RouterBusy(RecoverableModemFailure):
    """A wrapper runs on the router: nothing of it may be touched."""


def wrapper_options(title, tool_path, tool_args_title, required=()):
    """The options schema of a wrapper-driven upgrader: its tool's path and
    arguments, then what every wrapper upgrade shares."""
    schema = {
        "type": "object",
        "title": title,
        "additionalProperties": False,
        "properties": {
            "tool_path": {
                "type": "string",
                "pattern": COMMAND,
                "maxLength": 255,
                **tool_path,
            },
            "tool_args": {
                "type": "string",
                "title": tool_args_title,
                "pattern": TOOL_ARGS,
                "maxLength": 200,
                "default": "",
            },
            "remote_dir": {
                "type": "string",
                "title": (
                    "Directory on the router receiving the image: RAM-backed "
                    "/tmp or a mounted USB/extroot path"
                ),
                "pattern": STORAGE_DIR,
                "maxLength": 255,
                "default": "/tmp",
            },
            "transfer_timeout": {
                "type": "integer",
                "title": "Transfer timeout (seconds)",
                "minimum": 10,
                "maximum": 14400,
                "default": 1800,
            },
            "transfer_mode": {
                "type": "string",
                "title": (
                    "How the image reaches the router: push (the server streams "
                    "it over SSH) or pull (the router downloads it itself, with "
                    "resume, and no server worker waits for it)"
                ),
                "enum": list(TransferMode.values),
                "default": app_settings.TRANSFER_MODE,
            },
            "max_transfer_rate": {
                "type": "integer",
                "title": (
                    "Transfer rate cap in bytes per second (0: unlimited), for "
                    "metered or shared cellular uplinks"
                ),
                "minimum": 0,
                "maximum": 10**10,
                "default": 0,
            },
            "upgrade_timeout": {
                "type": "integer",
                "title": "Flash timeout (seconds)",
                "minimum": 60,
                "maximum": 14400,
                "default": 1800,
            },
            "reboot_timeout": {
                "type": "integer",
                "title": "Time allowed for the modem to come back (seconds)",
                "minimum": 10,
                "maximum": 3600,
                "default": 300,
            },
            "stage_ahead": {
                "type": "boolean",
                "title": (
                    "Stage ahead of the window: transfer and verify the image "
                    "at any time, flash only inside the maintenance window"
                ),
                "default": False,
            },
            "verify_checksum": {
                "type": "boolean",
                "title": "Verify the image checksum on the router",
                "default": True,
            },
            "progress_interval": {
                "type": "integer",
                "title": "Seconds between progress reports of the router",
                "minimum": 1,
                "maximum": 600,
                "default": 10,
            },
        },
    }
    # the pre-flight gate, the service verification and remediation (health.py)
    schema["properties"].update(HEALTH_OPTIONS)
    if required:
        schema["required"] = list(required)
    return schema


def scripts_size():
    """Bytes of the device scripts one upload sends (counted as data used)."""
    total = 0
    for directory, _, files in os.walk(scripts_dir()):
        total += sum(os.path.getsize(os.path.join(directory, name)) for name in files)
    return total


class WrapperUpgrader(HealthChecks, BaseModemUpgrader):
    detached = True
    # set by the engine: a recoverable failure will be retried, so a partial
    # image stays on the router for the retry to continue
    retry_follows = False
    # a journal read slower than this means the link is gone (cellular RTTs
    # stay far below it)
    journal_read_timeout = 30
    # the software version in the stream's header starts so (e.g. "45."):
    # the wrapper refuses another chipset's stream before it stops anything
    # (--stream-prefix); None: no header check on the router
    stream_version_prefix = None

    def start(self, image):
        """Prepares the router, sends what it lacks of the image and starts
        the detached wrapper; the flash then goes on without a worker."""
        self.begin(image)
        # until the router is told to flash nothing there can be running
        self.wrapper_may_run = False
        try:
            self.prepare_router()
            self.deliver_image()
            self.point_of_no_return()
            self.start_wrapper()
        except RouterBusy:
            raise  # nothing was touched: another wrapper may be using it all
        except RecoverableModemFailure as error:
            # the retry continues from the image bytes the router holds; an
            # interrupted transfer that made progress is always resumed
            resumed = transfer_progressed(error, self.operation.transfer_confirmed)
            if not self.wrapper_may_run:
                self.leave_router_as_found(keep_image=self.retry_follows or resumed)
            raise
        except BaseException:
            # a /tmp image of 100 MB-1 GB left behind can starve the router
            if not self.wrapper_may_run:
                self.leave_router_as_found()
            raise
        self.state["wrapper_started"] = True
        return FLASHING

    def stage(self, image):
        """Sends what the router lacks of the image and verifies its
        checksum there, then stops: the flash waits for the window, and its
        transfer then finds the image and sends nothing (skip-if-present).
        No pre-flight reading: the service is read when the flash starts."""
        self.begin(image)
        self.wrapper_may_run = False
        try:
            self.prepare_router(preflight=False)
            self.transfer_firmware()
            self.verify_staged_image()
        except RouterBusy:
            raise
        except RecoverableModemFailure as error:
            resumed = transfer_progressed(error, self.operation.transfer_confirmed)
            self.leave_router_as_found(keep_image=self.retry_follows or resumed)
            raise
        except BaseException:
            self.leave_router_as_found()
            raise

    def verify_staged_image(self):
        command = staged_image_command(
            self.paths, "verify", self.image.sha256, shlex.quote
        )
        output, code = self.shell.run_raw(command, timeout=600, exit_codes=None)
        if code == STAGED_EXIT_MISMATCH:
            # removed by the router: the next attempt sends it all again
            raise RecoverableModemFailure(
                "the staged image does not match its sha256 on the router: "
                "removed there, transferred again at the next attempt"
            )
        if code != EXIT_SUCCESS:
            detail = " ".join(output.split())[-200:]
            raise IrrecoverableModemFailure(
                f"the router could not verify the staged image (exit {code}): {detail}"
            )
        self.log("image staged: sha256 verified on the router", progress=10)

    def remove_staged_image(self):
        """Removes the staged image (cancelled, superseded, expired); a
        flashing wrapper on the router keeps it (it may be flashing it)."""
        command = staged_image_command(self.paths, "remove", "", shlex.quote)
        output, code = self.shell.run_raw(command, timeout=60, exit_codes=None)
        if code != EXIT_SUCCESS:
            raise RecoverableModemFailure(
                f"the staged image was not removed (exit {code}): "
                f"{' '.join(output.split())[-200:]}"
            )

    def begin(self, image):
        self.check_shell_values(image)
        self.shell = RouterShell(self.connection)
        self.image = image
        self.paths = self.router_paths()

    def poll(self, image):
        """One SSH round trip: new journal records and the exit code; once
        the wrapper exited, the server's own reading of the modem."""
        self.begin(image)
        if "exit_code" not in self.state:
            exit_code = self.read_journal()
            if exit_code is None:
                return None
            self.state["exit_code"] = exit_code
            self.remove_firmware()
            self.raise_for_exit_code(exit_code)
            self.log("the router reports success, reading the modem")
        if "verified_version" not in self.state:
            message = self.verify_version()
            if message is None:
                return None
            self.state["verified_version"] = self.recorder.read_version
        else:
            # read by the server at an earlier look (check_version)
            self.recorder.read_version = self.state["verified_version"]
        return self.verify_service()

    def clean_up(self, image):
        try:
            self.begin(image)
            if self.options.get("stage_ahead") and not self.operation.flash_started:
                self.remove_staged_image()
            else:
                self.remove_firmware()
        except Exception:  # best effort: tmpfs is cleared at reboot
            pass

    def router_paths(self):
        # named by content: a retry or a re-run finds what an earlier attempt sent
        sha256 = self.image.sha256
        image_name = sha256 if full_match(SHA256, sha256) else str(self.operation.pk)
        return router_paths(self.options["remote_dir"], self.operation.pk, image_name)

    # -- stage helpers -----------------------------------------------------

    def check_shell_values(self, image):
        """Refuses values that must not reach the router's shell.

        The model validated them when the operation was created; checked
        again here for operations stored before a validation rule changed.
        """
        try:
            self.validate_upgrade_options(self.operation.upgrade_options)
        except ValidationError as error:
            raise IrrecoverableModemFailure(
                f"invalid upgrade options: {'; '.join(error.messages)}"
            )
        build = image.build
        for name, pattern, value in (
            ("version", VERSION, build.version),
            ("modem model", MODEM_MODEL, build.modem_model),
        ):
            if not full_match(pattern, value):
                raise IrrecoverableModemFailure(f"invalid build {name}: {value!r}")

    def prepare_router(self, preflight=True):
        """Checks the router, reads what it holds of the image, sends the scripts.

        Round trips are what cost on a cellular link: one command (no other
        flash running, leftovers cleared, free space, the image's copy read),
        one SCP.
        """
        paths = self.paths
        output, _ = self.shell.run_raw(self._prepare_command(), timeout=120)
        if "--busy--" in output:
            raise RouterBusy(
                "another flash is running on the router (its wrapper holds a lock): "
                "nothing was sent"
            )
        df_output, _, probe_output = output.partition("--image--")
        self.router_copy = parse_probe(probe_output)
        available = self._parse_df(df_output.partition("--df--")[2])
        if available is None:
            # never guess: an image that does not fit can starve a tmpfs /tmp
            raise IrrecoverableModemFailure(
                f"cannot read the free space in {self.options['remote_dir']} on the "
                f"router from df's output: {' '.join(df_output.split())[-200:]!r}"
            )
        # the router's copy is continued or replaced: its bytes count as free
        needed = self.image.size + SPACE_MARGIN - self.router_copy.size
        if available * 1024 < needed:
            raise IrrecoverableModemFailure(
                f"not enough space in {self.options['remote_dir']} on the router: "
                f"{available} KiB free, {needed // 1024} KiB needed "
                "(set the remote_dir option to a larger storage)"
            )
        upload_directory(self.shell.transport, scripts_dir(), paths["scripts"])
        self.recorder.bytes_sent(scripts_size())
        if preflight:
            self.preflight()

    def _prepare_command(self):
        quote = shlex.quote
        paths = self.paths
        base, image = quote(paths["base"]), quote(paths["firmware"])
        return (
            # a wrapper still running (any operation) may be reading an image;
            # one that recorded its outcome only retries its last report
            # (for up to final_report_timeout when the server is out of reach)
            f"for pid_file in {base}/*/lock/pid; do"
            ' [ -f "${pid_file%/lock/pid}/exit_code" ] && continue;'
            ' pid=$(cat "$pid_file" 2>/dev/null)'
            ' && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null'
            ' && { echo "--busy--"; exit 0; };'
            " done;"
            f" rm -rf {quote(paths['journal_dir'])} {quote(paths['scripts'])}"
            f" && mkdir -p {base} || exit 1;"
            # images of earlier operations: only this one may be continued
            f' for old in {base}/*.bin; do [ "$old" = {image} ] || rm -f "$old"; done;'
            f" echo --df--; df -k {quote(self.options['remote_dir'])};"
            f" echo --image--; {probe_command(paths['firmware'])}"
        )

    @staticmethod
    def _parse_df(output):
        lines = [line.split() for line in output.strip().splitlines()[1:]]
        words = [word for line in lines for word in line]
        # busybox may wrap a long filesystem name on its own line
        try:
            return int(words[3] if len(words) >= 6 else words[2])
        except (IndexError, ValueError):
            return None

    @classmethod
    def validate_upgrade_options(cls, options):
        super().validate_upgrade_options(options)
        if (options or {}).get("stage_ahead") is True and cls.pulls(options):
            # stage() sends the image over SSH; a pulling wrapper would then
            # ask the server for bytes past the end of its complete copy
            raise ValidationError(
                {
                    "upgrade_options": [
                        "stage_ahead: staging sends the image over SSH (push "
                        "transfer mode); it cannot be combined with "
                        "transfer_mode pull"
                    ]
                }
            )

    @classmethod
    def pulls(cls, options):
        """Whether the router downloads the image itself (``transfer_mode``)."""
        return cls.get_options(options).get("transfer_mode") == TransferMode.PULL

    @classmethod
    def outcome_timeout_for(cls, options):
        # a pulled image is downloaded after the point of no return
        timeout = super().outcome_timeout_for(options)
        if cls.pulls(options):
            timeout += int(cls.get_options(options)["transfer_timeout"])
        return timeout

    def deliver_image(self):
        """The transfer strategy of this operation: push streams the image
        now, from this worker; pull leaves it to the wrapper, which
        downloads it on the router (``device-scripts/lib/download.sh``)."""
        if self.pulls(self.options):
            self.log(
                f"the router downloads the image ({self.image.size} bytes) itself, "
                "resuming what it holds: no bytes from this worker",
                progress=0,
            )
            return
        self.transfer_firmware()

    def transfer_firmware(self):
        """Sends what the router lacks of the image (resume, skip, rate cap)."""
        size = self.image.size
        with open_image(self.image.file) as firmware:
            plan = plan_transfer(self.router_copy, firmware, size, self.image.sha256)
            if plan.skip:
                self.log(
                    "the router already holds this image (sha256 verified there): "
                    "nothing to send",
                    progress=10,
                )
                return
            self.log(
                self._plan_message(plan, size), progress=int(10 * plan.offset / size)
            )
            self._stream(firmware, plan.offset, size)
        self.log("firmware transferred", progress=10)

    @staticmethod
    def _plan_message(plan, size):
        if plan.reason == "resume":
            return (
                f"resuming the transfer: the router holds the first {plan.offset} "
                f"bytes intact, sending the other {size - plan.offset}"
            )
        if plan.reason == "mismatch":
            return (
                f"the router's partial copy does not match the image: "
                f"sending all {size} bytes again"
            )
        return f"transferring {size} bytes to the router"

    def _stream(self, firmware, offset, size):
        done = [offset]
        counted = [offset]
        last_logged = [0.0]

        def count_sent():
            # counted as the bytes go out, not only at the end: a worker
            # killed mid-transfer runs no ``finally``, the data plan paid
            if done[0] > counted[0]:
                self.recorder.bytes_sent(done[0] - counted[0])
                counted[0] = done[0]

        def on_progress(sent, total):
            done[0] = sent
            now = time.monotonic()
            if now - last_logged[0] >= 1 or sent == total:
                last_logged[0] = now
                self.progress(int(10 * sent / max(total, 1)))
                count_sent()

        try:
            stream_file_to_router(
                self.shell.transport,
                firmware,
                size,
                self.paths["firmware"],
                self.options["transfer_timeout"],
                offset=offset,
                rate_limit=self.options.get("max_transfer_rate", 0),
                on_progress=on_progress,
            )
        finally:
            # the rest, whatever happens
            count_sent()

    def wrapper_arguments(self):
        device = self.operation.device
        build = self.image.build
        options = self.options
        args = [
            "sh",
            posixpath.join(self.paths["scripts"], "modem-upgrade.sh"),
            "--detach",
            "--operation-id",
            str(self.operation.pk),
            "--firmware",
            self.paths["firmware"],
            "--sha256",
            self.image.sha256,
            "--expected-version",
            build.version,
            "--expected-model",
            build.modem_model,
            "--workdir",
            self.paths["base"],
            "--tool",
            options["tool_path"],
            "--flash-timeout",
            options["upgrade_timeout"],
            "--reboot-timeout",
            options["reboot_timeout"],
            "--report-interval",
            options["progress_interval"],
            "--device-uuid",
            str(device.pk),
            "--device-key",
            device.key,
        ]
        if self.operation.usb_path:
            args += ["--usb-path", self.operation.usb_path]
        if self.stream_version_prefix:
            args += ["--stream-prefix", self.stream_version_prefix]
        if options.get("tool_args"):
            args += ["--tool-args", options["tool_args"]]
        if not options["verify_checksum"] and not self.pulls(options):
            # a downloaded image is always verified (download.sh)
            args.append("--no-checksum")
        if app_settings.DEVICE_REPORT_BASE_URL:
            args += ["--report-url", app_settings.DEVICE_REPORT_BASE_URL]
        if self.pulls(options):
            args += [
                "--pull",
                "--image-size",
                self.image.size,
                "--download-timeout",
                options["transfer_timeout"],
            ]
        return args

    def start_wrapper(self):
        self.log("starting the flashing wrapper on the router (no cancel from now)")
        # a lost answer does not tell whether the wrapper started
        self.wrapper_may_run = True
        output, code = self.shell.run(
            self.wrapper_arguments(), timeout=60, exit_codes=None
        )
        if code != EXIT_SUCCESS:
            # refused (bad arguments, could not detach): nothing runs, except
            # when another live wrapper holds this operation's lock
            self.wrapper_may_run = code == EXIT_BUSY
            if self.wrapper_may_run:
                self.raise_for_exit_code(code, output)
            detail = " ".join(output.split())[-300:]
            raise IrrecoverableModemFailure(
                f"the router refused to start the flash (exit {code}): nothing "
                f"was written to the modem{': ' + detail if detail else ''}"
            )

    def read_journal(self):
        """Applies the journal records not seen yet; the exit code, if any.

        No journal directory: the wrapper never started (the worker stopped
        between the point of no return and the start), so the modem is
        untouched.
        """
        seen = self.recorder.journal_seq()
        command = journal_read_command(self.paths["journal_dir"], seen, shlex.quote)
        output, _ = self.shell.run_raw(command, timeout=self.journal_read_timeout)
        started, tail, exit_code = parse_journal_read(output)
        if not started and not self.state.get("wrapper_started"):
            self.leave_router_as_found(keep_image=True)
            raise ModemUntouched(
                "the worker stopped after the point of no return but before the "
                "flashing wrapper started (no journal for this operation on the "
                "router): nothing was written to the modem"
            )
        self.state["wrapper_started"] = True
        if tail:
            self.recorder.journal(
                tail[-1].seq,
                [record.message for record in tail],
                max(record.percent for record in tail),
            )
        return exit_code

    @staticmethod
    def raise_for_exit_code(code, output=""):
        detail = f": {output.strip()[-300:]}" if output.strip() else ""
        if code == EXIT_SUCCESS:
            return
        if code == EXIT_RECOVERABLE:
            # the wrapper exits so only before uxfp ran (a signal included)
            raise ModemUntouched(
                f"the router could not start the flash, the modem is untouched "
                f"(exit {code}){detail}"
            )
        if code == EXIT_BUSY:
            raise RecoverableModemFailure(
                f"the router could not start the flash (exit {code}){detail}"
            )
        if code == EXIT_ABORTED:
            raise ModemUpgradeAborted(
                "the flash was interrupted: the modem may be left in flashing mode "
                f"and needs a recovery flash (exit {code}){detail}"
            )
        raise IrrecoverableModemFailure(f"the flash failed (exit {code}){detail}")

    def verify_version(self):
        """Reads the modems from the server's side and records them: the
        success message, ``None`` while the modem is not readable yet.

        The server's own reading is the rule: when the flashed modem cannot
        be read within ``reboot_timeout`` of the router's success the
        operation fails as unverified, even though the router verified the
        version itself.
        """
        since = self.state.setdefault("verify_since", time.time())
        try:
            modems, info = self.read_flashed_modem()
        except (RecoverableModemFailure, ValueError, LookupError) as error:
            if time.time() - since > self.options["reboot_timeout"]:
                raise IrrecoverableModemFailure(
                    "the router reports success but the server could not read the "
                    f"modem within {self.options['reboot_timeout']}s ({error}): "
                    "version unverified, check the device"
                )
            self.state["verify_error"] = str(error)[:200]
            return None
        self.check_version(modems, info)
        return "upgrade successful"

    def read_flashed_modem(self):
        """Every modem as ``modem-info.sh`` reads them (one attempt), and the
        one this operation flashed. ``GarbageOutput`` (a ``ValueError``) or
        ``LookupError`` when it cannot be told."""
        script = posixpath.join(self.paths["scripts"], "modem-info.sh")
        output, _ = self.shell.run(["sh", script], timeout=60)
        modems = parse_modem_list(output)
        info = self.flashed_modem(modems)
        if not self.detected_version(info):
            raise LookupError("no version in the modem's answer")
        return modems, info

    @staticmethod
    def detected_version(info):
        return detected_version(info)

    def check_version(self, modems, info):
        self.record_modem_info(modems)
        expected = self.image.build.version
        detected = self.detected_version(info)
        if detected != expected:
            raise IrrecoverableModemFailure(
                f"the modem reports version {detected!r} after the flash, "
                f"expected {expected!r}"
            )
        self.log(f"modem verified by the server: {info.get('model')} {detected}", 100)

    def flashed_modem(self, modems):
        """The entry of the modem this operation flashed; LookupError when
        it is not (yet) listed in normal mode."""
        return flashed_modem(
            modems, self.operation.usb_path, self.image.build.modem_model
        )

    def record_modem_info(self, modems):
        self.recorder.modems_read(modems)

    def leave_router_as_found(self, keep_image=False):
        """Removes everything this operation put on the router (no wrapper ran).

        ``keep_image``: a retry follows and continues from the image's bytes.
        """
        paths = self.paths
        names = (
            ("journal_dir", "scripts")
            if keep_image
            else ("firmware", "journal_dir", "scripts")
        )
        command = (
            "rm -rf "
            + " ".join(shlex.quote(paths[name]) for name in names)
            + f"; rmdir {shlex.quote(paths['base'])} 2>/dev/null; true"
        )
        try:
            if not keep_image and not self.shell.is_connected():
                # the last attempt lost the link: one more try, or the image
                # stays in the router's RAM until the next upgrade clears it
                self.shell.reconnect()
            self.shell.run_raw(command, timeout=30)
        except RecoverableModemFailure:
            pass  # link gone: the next upgrade's preparation clears it

    def remove_firmware(self):
        try:
            self.shell.run(["rm", "-f", self.paths["firmware"]], timeout=30)
        except RecoverableModemFailure:
            pass  # tmpfs is cleared at reboot; never mask the real outcome
