"""The admin in headless Chromium, against a real emulated router.

Pages and websockets are served by one in-process Daphne (``LiveASGIServer``)
sharing the test database connection, like Django's live server does for
SQLite in memory, so the router's reports, the pages and the live progress
all reach the same database. Upgrades queued by the admin run in a thread of
the test while the browser watches.
"""

import os
import queue
import stat
import tempfile
import threading
import time
from unittest import mock

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.db import connections
from django.db.models import Q
from django.test import TransactionTestCase, tag
from django.urls import reverse
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from openwisp_utils.tests import SeleniumTestMixin

from ..base.models import ACTIVE_STATUSES, OperationStatus
from ..engine import run_operation
from ..scheduler import dispatch, drive
from ..upgrade import finish_operation
from . import FN990A28, ModemBatchUpgradeOperation, ModemUpgradeOperation
from .test_engine import FAST, EngineTestMixin

BASE_DIR = os.path.join(os.path.dirname(__file__), "..", "..")
ARTIFACTS = [os.path.join(BASE_DIR, ".test-artifacts")]
# the documentation's copies change on every run: refreshed only on request
if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
    ARTIFACTS.append(os.path.join(BASE_DIR, "docs", "images"))
# The network is closed: no background traffic, and no name resolves except
# the loopback (the device page's map would otherwise fetch OpenStreetMap tiles).
CHROMIUM_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    '--host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"',
)


def _chromium_wrapper():
    """A CHROME_BIN starting Debian's chromium with those flags."""
    path = os.path.join(tempfile.mkdtemp(prefix="modem-chromium-"), "chromium")
    binary = os.environ.get("CHROME_BIN") or "/usr/bin/chromium"
    with open(path, "w") as wrapper:
        wrapper.write(f'#!/bin/sh\nexec {binary} {" ".join(CHROMIUM_FLAGS)} "$@"\n')
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


class SharedConnectionApplication:
    """Runs every ASGI call on the test's database connection."""

    connection = None

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        # a context variable: sync_to_async threads of this call inherit it
        connections["default"] = self.connection
        return await self.application(scope, receive, send)


class LiveASGIServer:
    """One Daphne for the whole run: Twisted's reactor cannot be restarted."""

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self):
        from channels.routing import get_default_application
        from daphne.server import Server

        self.application = SharedConnectionApplication(
            ASGIStaticFilesHandler(get_default_application())
        )
        self.server = Server(
            application=self.application,
            endpoints=["tcp:port=0:interface=127.0.0.1"],
            signal_handlers=False,
            verbosity=0,
        )
        thread = threading.Thread(target=self.server.run, daemon=True)
        thread.start()
        # generous: a shared CI machine may take long to start it
        deadline = time.monotonic() + 60
        while not self.server.listening_addresses:
            if time.monotonic() > deadline:
                raise RuntimeError("Daphne did not start listening within 60s")
            time.sleep(0.05)
        self.port = self.server.listening_addresses[0][1]


class ChannelsThreadLiveServerTestCase(TransactionTestCase):
    host = "127.0.0.1"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._server = LiveASGIServer.get()
        connection = connections["default"]
        connection.inc_thread_sharing()
        cls._server.application.connection = connection

    @classmethod
    def tearDownClass(cls):
        connections["default"].dec_thread_sharing()
        super().tearDownClass()

    @property
    def live_server_url(self):
        return f"http://{self.host}:{self._server.port}"


# openwisp-utils' browser waits give up after 2-5s: a busy machine (a shared
# CI runner) renders slower. Every wait is on a condition, so this floor
# costs nothing when the page is fast.
BROWSER_WAIT = 60

os.environ.setdefault("SELENIUM_HEADLESS", "1")
os.environ.setdefault("SE_CHROMEDRIVER", "/usr/bin/chromedriver")


@tag("selenium")
class TestModemUpgraderBrowser(
    EngineTestMixin, SeleniumTestMixin, ChannelsThreadLiveServerTestCase
):
    browser = "chrome"
    ignored_browser_log_messages = SeleniumTestMixin.ignored_browser_log_messages + (
        "tile.openstreetmap.org",
    )

    def _setup_and_call(self, result, debug=False):
        # no retries: a flaky browser test must fail, not be retried into a
        # pass (and the mixin's retry loop overwrites earlier tests' failures)
        return super(SeleniumTestMixin, self)._setup_and_call(result, debug)

    @classmethod
    def setUpClass(cls):
        with mock.patch.dict(os.environ, {"CHROME_BIN": _chromium_wrapper()}):
            super().setUpClass()

    def _wait_until_page_ready(self, html_container="#main-content", timeout=5, **kw):
        super()._wait_until_page_ready(html_container, max(timeout, BROWSER_WAIT), **kw)

    def wait_for(self, method, by, value, timeout=2, driver=None):
        timeout = max(timeout, BROWSER_WAIT)
        return super().wait_for(method, by, value, timeout, driver)

    def wait_until(self, condition, timeout=2, driver=None):
        return super().wait_until(condition, max(timeout, BROWSER_WAIT), driver)

    def setUp(self):
        super().setUp()
        self.queued = queue.Queue()
        patcher = mock.patch(
            "openwisp_modem_upgrader.scheduler.publish_upgrade",
            side_effect=lambda operation_id, **kwargs: self.queued.put(operation_id),
        )
        patcher.start()
        self.addCleanup(patcher.stop)
        # the previous test's page keeps running (websocket, notification
        # widget) after that test's database was flushed, and its requests
        # then fail (401): leave it, and drop what it logged, so that each
        # test answers for its own browser errors
        self.web_driver.get("about:blank")
        self.web_driver.get_log("browser")
        self.login()

    def run_queued_upgrades(self, timeout=240):
        """Runs the upgrades the admin queued, in a thread, as a worker
        would, and the scheduler's periodic pass (as beat would) until they
        are over: the worker only starts the flash, follow-ups end it.
        Callers join it for longer than ``timeout`` (the join returns when
        the work is over: a saturated CI run took over 90 s)."""
        shared = connections["default"]

        def work():
            connections["default"] = shared
            started = set()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                while not self.queued.empty():
                    operation_id = self.queued.get_nowait()
                    started.add(operation_id)
                    run_operation(operation_id)
                # a router's next modem waits for the one started (runs_after):
                # watched from the start, so the end of the first upgrade is
                # not taken for the end of the work, however slow the machine
                started |= set(
                    ModemUpgradeOperation.objects.filter(
                        runs_after__in=started
                    ).values_list("pk", flat=True)
                )
                if not ModemUpgradeOperation.objects.filter(pk__in=started).filter(
                    Q(status__in=ACTIVE_STATUSES) | Q(next_check_at__isnull=False)
                ):
                    return
                drive()
                time.sleep(0.2)

        worker = threading.Thread(target=work)
        worker.start()
        self.addCleanup(worker.join, 120)
        return worker

    def screenshot(self, name):
        for directory in ARTIFACTS:
            os.makedirs(directory, exist_ok=True)
            self.web_driver.save_screenshot(os.path.join(directory, name))

    def device_url(self):
        opts = self.device._meta
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change", args=[self.device.pk]
        )

    def option_input(self, prefix, path):
        """The input of the option at ``path`` in openwisp-controller's
        JSON-schema editor of the ``prefix`` form."""
        editor = f"#id_{prefix}upgrade_options_jsoneditor"
        name = "root" + "".join(f"[{part}]" for part in path)
        return self.find_element(By.CSS_SELECTOR, f'{editor} [name="{name}"]')

    def set_option(self, prefix, path, value):
        field = self.option_input(prefix, path)
        field.clear()
        field.send_keys(str(value))
        # the editor reads the value on "change"
        self.web_driver.execute_script(
            "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
            field,
        )

    def fill_options(self, prefix):
        options = dict(FAST, remote_dir=self.remote_dir, tool_path=self.tool_path)
        for name, value in options.items():
            self.set_option(prefix, [name], value)

    def show_tab(self, inline_class):
        """Device pages show each inline in a tab."""
        group = self.web_driver.find_element(By.CSS_SELECTOR, f".{inline_class}")
        tab_id = group.get_attribute("id")
        self.find_element(By.CSS_SELECTOR, f'ul.tabs a[href="#{tab_id}"]').click()

    def scroll_to(self, selector):
        self.web_driver.execute_script(
            "document.querySelector(arguments[0]).scrollIntoView();"
            "window.scrollBy(0, -80);",
            selector,
        )

    def click(self, element):
        # below the sticky header otherwise
        self.web_driver.execute_script(
            "arguments[0].scrollIntoView({block: 'center'});", element
        )
        element.click()

    def at_width(self, width):
        """The window ``width`` px wide for this test (the driver is shared)."""
        size = self.web_driver.get_window_size()
        self.web_driver.set_window_size(width, 900)
        self.addCleanup(self.web_driver.set_window_size, size["width"], size["height"])

    def wait_live(self):
        self.wait_for_presence(By.CSS_SELECTOR, '[data-modem-live="connected"]', 10)

    def progress_of(self, operation):
        bar = self.web_driver.find_element(
            By.CSS_SELECTOR,
            f'tr.modem-operation[data-operation-id="{operation.pk}"] .modem-progress',
        )
        return int(bar.get_attribute("aria-valuenow"))

    def test_device_page_upgrade_reaches_100_live(self):
        self.router.set_flash_duration(3)
        self.open(self.device_url())
        self.show_tab("modem-firmware-inline")
        select = Select(self.find_element(By.NAME, "modems-0-upgrade_to"))
        select.select_by_value(str(self.image.pk))
        self.fill_options("modems-0-")
        self.find_element(By.NAME, "_continue").click()
        self.wait_for_admin_success_message(timeout=10)
        operation = ModemUpgradeOperation.objects.get(device=self.device)
        self.assertEqual(operation.status, OperationStatus.IDLE)
        self.show_tab("modem-recent-upgrades")
        self.wait_live()
        self.web_driver.execute_script("window.modemPageMarker = 1;")
        self.assertEqual(self.progress_of(operation), 0)
        # every value the page's progress bar takes, recorded by the page
        # itself: sampling it from here could miss a stage on a busy machine
        self.web_driver.execute_script(
            """
            window.modemSeen = [];
            const selector = arguments[0];
            new MutationObserver(() => {
                const bar = document.querySelector(selector);
                if (bar) window.modemSeen.push(+bar.getAttribute("aria-valuenow"));
            }).observe(document.body, {
                subtree: true, childList: true, attributes: true,
                attributeFilter: ["aria-valuenow"],
            });
            """,
            f'tr.modem-operation[data-operation-id="{operation.pk}"] .modem-progress',
        )
        worker = self.run_queued_upgrades()
        WebDriverWait(self.web_driver, 240, poll_frequency=0.2).until(
            lambda driver: self.progress_of(operation) == 100
        )
        worker.join(60)
        seen = set(self.web_driver.execute_script("return window.modemSeen;"))
        # live updates: the page was never reloaded, and moved through stages
        self.assertEqual(
            self.web_driver.execute_script("return window.modemPageMarker;"), 1
        )
        self.assertTrue(any(0 < value < 100 for value in seen), seen)
        row = f'tr.modem-operation[data-operation-id="{operation.pk}"]'
        self.wait_until(
            lambda d: d.find_element(By.CSS_SELECTOR, f"{row} .modem-status").text
            == "success",
            timeout=10,
        )
        log = self.web_driver.find_element(
            By.CSS_SELECTOR,
            f'tr.modem-operation-log[data-operation-id="{operation.pk}"] pre',
        ).get_attribute("textContent")
        self.assertIn("upgrade successful", log)
        self.assertFalse(
            self.web_driver.find_elements(By.CSS_SELECTOR, ".modem-cancel")
        )
        started = self.web_driver.find_element(By.CSS_SELECTOR, f"{row} .modem-started")
        self.assertNotEqual(started.text, "-")
        self.scroll_to(".modem-recent-upgrades")
        self.screenshot("modem-device-page.png")
        self.assert_no_browser_errors()

    def test_operation_page_stage_indicator_follows_the_flash(self):
        self.router.set_flash_duration(4)
        operation = ModemUpgradeOperation.objects.create(
            device=self.device,
            image=self.image,
            upgrade_options=dict(
                FAST, remote_dir=self.remote_dir, tool_path=self.tool_path
            ),
        )
        opts = operation._meta
        self.open(
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change", args=[operation.pk]
            )
        )
        stages = self.web_driver.find_elements(By.CSS_SELECTOR, ".modem-stage")
        self.assertEqual(
            [stage.text for stage in stages],
            ["Transfer", "Verify", "Flash", "Reboot", "Verify version"],
        )
        self.wait_live()
        # every stage the page marks current, recorded by the page itself
        self.web_driver.execute_script("""
            window.modemStages = [];
            new MutationObserver(() => {
                const current = document.querySelector(".modem-stage.stage-current");
                const index = current ? +current.dataset.stage : null;
                const seen = window.modemStages;
                if (index !== null && seen[seen.length - 1] !== index) seen.push(index);
            }).observe(document.querySelector(".modem-stages"), {
                subtree: true, attributes: true, attributeFilter: ["class"],
            });
            """)
        self.queued.put(str(operation.pk))
        self.run_queued_upgrades().join(300)
        self.wait_until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".modem-stage.stage-done"))
            == 5,
            timeout=60,
        )
        seen = self.web_driver.execute_script("return window.modemStages;")
        # the flash (4 s) is seen live, and stages only move forward
        self.assertIn(2, seen)
        self.assertEqual(seen, sorted(seen))
        # the engine's bookkeeping is folded away, the data sent in units
        diagnostics = self.find_element(By.CSS_SELECTOR, "fieldset.modem-diagnostics")
        self.assertIn("device seq", diagnostics.get_attribute("textContent").lower())
        self.assertFalse(
            self.web_driver.find_element(
                By.CSS_SELECTOR, ".field-device_seq"
            ).is_displayed()
        )
        status = self.find_element(
            By.CSS_SELECTOR, ".modem-recent-upgrades .modem-status"
        )
        self.assertEqual(status.text, "success")
        self.scroll_to(".modem-recent-upgrades")
        self.screenshot("modem-operation-page.png")
        self.assert_no_browser_errors()

    def test_mass_upgrade_through_preview(self):
        other = self._create_modem_device(
            name="other-variant",
            mac_address="00:11:22:33:44:aa",
            modem_model="FN990A40",
        )
        opts = self.image.build._meta
        self.open(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        self.find_element(
            By.CSS_SELECTOR,
            f'input[name="_selected_action"][value="{self.image.build.pk}"]',
        ).click()
        Select(self.find_element(By.NAME, "action")).select_by_value("mass_upgrade")
        self.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()
        self.fill_options("")
        self.click(self.find_element(By.NAME, "preview"))
        self.wait_for_visibility(By.ID, "modem-preview-devices", 10)
        eligible = self.find_element(By.ID, "modem-preview-devices").text
        excluded = self.find_element(By.ID, "modem-preview-excluded").text
        self.assertIn(self.device.name, eligible)
        self.assertIn(other.name, excluded)
        self.assertIn("the modem is another model", excluded)
        self.click(self.find_element(By.NAME, "confirm"))
        self.wait_for_visibility(By.CSS_SELECTOR, ".modem-batch", 10)
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertIn(str(batch.pk), self.web_driver.current_url)
        # what the options editor sent, kept through the preview's reload
        self.assertEqual(
            batch.upgrade_options,
            dict(FAST, remote_dir=self.remote_dir, tool_path=self.tool_path),
        )
        self.wait_live()
        self.run_queued_upgrades().join(300)
        self.wait_until(
            lambda d: d.find_element(
                By.CSS_SELECTOR, ".modem-batch .modem-progress"
            ).get_attribute("aria-valuenow")
            == "100",
            timeout=20,
        )
        self.wait_until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".modem-batch-status").text
            == "success",
            timeout=10,
        )
        success = self.web_driver.find_element(
            By.CSS_SELECTOR, 'tr[data-status="success"] .modem-count'
        )
        self.assertEqual(success.text, "1")
        self.assertFalse(
            self.web_driver.find_elements(By.CSS_SELECTOR, ".modem-cancel-batch")
        )
        self.scroll_to(".modem-batch")
        self.screenshot("modem-batch-page.png")
        self.assertEqual(
            self.router.modem_state()["firmware"], self.image.build.version
        )
        self.assert_no_browser_errors()

    def test_mass_upgrade_of_every_modem_of_a_two_modem_router(self):
        from ..detection import detect_device
        from . import DeviceModemFirmware

        self.router.set_modem(extra_modems=[{"usb_path": "1-1.2"}])
        DeviceModemFirmware.objects.filter(device=self.device).delete()
        detect_device(self.device)
        opts = self.image.build._meta
        self.open(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        self.find_element(
            By.CSS_SELECTOR,
            f'input[name="_selected_action"][value="{self.image.build.pk}"]',
        ).click()
        Select(self.find_element(By.NAME, "action")).select_by_value("mass_upgrade")
        self.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()
        self.fill_options("")
        self.click(self.find_element(By.NAME, "preview"))
        self.wait_for_visibility(By.ID, "modem-preview-devices", 10)
        # the default: the first matching modem, the other one left out
        note = self.find_element(By.CSS_SELECTOR, ".modem-multi-modem-note").text
        self.assertIn("1 router has more than one modem matching this build", note)
        left = self.find_element(By.CSS_SELECTOR, ".modem-left-out").text
        self.assertIn("2-1 (351234567890123)", left)
        Select(self.find_element(By.NAME, "modems")).select_by_value("every")
        self.click(self.find_element(By.NAME, "preview"))
        self.wait_until(
            lambda d: "one after the other"
            in d.find_element(By.CSS_SELECTOR, ".modem-multi-modem-note").text,
            timeout=10,
        )
        flashed = self.find_element(By.CSS_SELECTOR, ".modem-flashed").text
        self.assertIn("1-1.2 (351234567890999)", flashed)
        self.assertIn("2-1 (351234567890123)", flashed)
        self.click(self.find_element(By.NAME, "confirm"))
        self.wait_for_visibility(By.CSS_SELECTOR, ".modem-batch", 10)
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertEqual(batch.modems, "every")
        self.wait_live()
        self.run_queued_upgrades().join(300)
        self.wait_until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".modem-batch-status").text
            == "success",
            timeout=20,
        )
        self.assertEqual(
            self.find_element(By.CSS_SELECTOR, ".modem-batch-total").text, "2"
        )
        state = self.router.modem_state()
        version = self.image.build.version
        self.assertEqual(state["firmware"], version)
        self.assertEqual(state["extra_modems"][0]["firmware"], version)
        self.assert_no_browser_errors()

    def test_option_typed_and_saved_at_once_is_stored(self):
        """No "change" event sent by hand, no wait: Save right after typing."""
        self.open(self.device_url())
        self.show_tab("modem-firmware-inline")
        Select(self.find_element(By.NAME, "modems-0-upgrade_to")).select_by_value(
            str(self.image.pk)
        )
        field = self.option_input("modems-0-", ["remote_dir"])
        field.clear()
        field.send_keys("/mnt/usb")
        save = self.find_element(By.NAME, "_continue")
        self.web_driver.execute_script(
            "arguments[0].scrollIntoView({block: 'center'});", save
        )
        # the editor's own copy happens a frame later: it must not matter
        self.web_driver.execute_script(
            "arguments[0].focus(); arguments[1].click();", field, save
        )
        self.wait_for_admin_success_message(timeout=10)
        operation = ModemUpgradeOperation.objects.get(device=self.device)
        self.assertEqual(operation.upgrade_options.get("remote_dir"), "/mnt/usb")
        # and the page says what happened, with a link to the upgrade
        message = self.find_element(By.CSS_SELECTOR, ".messagelist").text
        self.assertIn("Modem upgrade started", message)
        link = self.find_element(By.LINK_TEXT, "Follow it on its page")
        self.assertIn(str(operation.pk), link.get_attribute("href"))

    def test_shape_of_a_path_in_words_in_the_editor(self):
        self.open(self.device_url())
        self.show_tab("modem-firmware-inline")
        Select(self.find_element(By.NAME, "modems-0-upgrade_to")).select_by_value(
            str(self.image.pk)
        )
        self.set_option("modems-0-", ["remote_dir"], "/etc")
        editor = self.find_element(By.ID, "id_modems-0-upgrade_options_jsoneditor")
        self.wait_until(lambda d: "not a system directory" in editor.text, timeout=5)
        self.assertNotIn("pattern", editor.text)
        self.assertNotIn("(?", editor.text)

    def test_nested_option_schema_in_the_editor(self):
        from .test_admin_options import NESTED_TYPE, register_nested

        patcher = register_nested()
        patcher.start()
        self.addCleanup(patcher.stop)
        nested = self._create_image(build=self.image.build, type=NESTED_TYPE)
        self.open(self.device_url())
        self.show_tab("modem-firmware-inline")
        select = Select(self.find_element(By.NAME, "modems-0-upgrade_to"))
        # no image chosen: no options editor
        self.wait_for_invisibility(By.NAME, "modems-0-upgrade_options")
        self.assertFalse(
            self.web_driver.find_elements(
                By.CSS_SELECTOR, "#id_modems-0-upgrade_options_jsoneditor input"
            )
        )
        select.select_by_value(str(self.image.pk))
        self.option_input("modems-0-", ["upgrade_timeout"])
        self.assertFalse(
            self.web_driver.find_elements(
                By.CSS_SELECTOR, '[name="root[retry][attempts]"]'
            )
        )
        # the nested image's schema: objects in objects, defaults filled in
        select.select_by_value(str(nested.pk))
        attempts = self.option_input("modems-0-", ["retry", "attempts"])
        self.assertEqual(attempts.get_attribute("value"), "2")
        seconds = self.option_input("modems-0-", ["retry", "backoff", "seconds"])
        self.assertEqual(seconds.get_attribute("value"), "30")
        self.set_option("modems-0-", ["retry", "attempts"], 9)
        editor = self.find_element(By.ID, "id_modems-0-upgrade_options_jsoneditor")
        self.wait_until(lambda d: "at most 5" in editor.text, timeout=5)
        self.set_option("modems-0-", ["retry", "attempts"], 4)
        self.set_option("modems-0-", ["retry", "backoff", "seconds"], 90)
        self.click(self.find_element(By.NAME, "_continue"))
        self.wait_for_admin_success_message(timeout=10)
        operation = ModemUpgradeOperation.objects.get(device=self.device)
        self.assertEqual(operation.image, nested)
        self.assertEqual(
            operation.upgrade_options,
            {"retry": {"attempts": 4, "backoff": {"seconds": 90}}},
        )

    def test_rollout_with_a_canary_wave_paused_from_the_batch_page(self):
        for i in range(2):
            self._create_modem_device(
                name=f"fleet-{i}", mac_address=f"00:11:22:33:55:{i:02x}"
            )
        opts = self.image.build._meta
        self.open(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        self.find_element(
            By.CSS_SELECTOR,
            f'input[name="_selected_action"][value="{self.image.build.pk}"]',
        ).click()
        Select(self.find_element(By.NAME, "action")).select_by_value("mass_upgrade")
        self.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()
        for name, value in (("max_concurrent", "1"), ("canary_size", "1")):
            field = self.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        Select(self.find_element(By.NAME, "confirm_waves")).select_by_value("false")
        self.click(self.find_element(By.NAME, "preview"))
        self.wait_for_visibility(By.ID, "modem-preview-devices", 10)
        self.assertIn(
            "the canary wave first: 1, 2",
            self.find_element(By.CSS_SELECTOR, ".modem-preview-waves").text,
        )
        self.click(self.find_element(By.NAME, "confirm"))
        self.wait_for_visibility(By.CSS_SELECTOR, ".modem-rollout", 10)
        batch = ModemBatchUpgradeOperation.objects.get()
        self.assertEqual((batch.canary_size, batch.max_concurrent), (1, 1))
        # the canary alone was queued
        self.assertEqual(self.queued.qsize(), 1)
        self.assertEqual(
            self.find_element(By.CSS_SELECTOR, ".modem-rollout-wave").text,
            "wave 1 of 2",
        )
        self.assertIn(
            "2 waiting",
            self.find_element(By.CSS_SELECTOR, ".modem-rollout-counts").text,
        )
        self.wait_live()
        self.click(self.find_element(By.CSS_SELECTOR, ".modem-rollout-pause"))
        self.wait_for_admin_success_message(timeout=10)
        self.assertIn(
            "The mass upgrade is paused",
            self.find_element(By.CSS_SELECTOR, ".messagelist").text,
        )
        self.assertEqual(
            self.find_element(By.CSS_SELECTOR, ".modem-rollout").get_attribute(
                "data-rollout-state"
            ),
            "paused",
        )
        self.assertEqual(
            self.find_element(By.CSS_SELECTOR, ".modem-rollout-state").text,
            "Paused by an operator",
        )
        self.assertEqual(
            self.find_element(By.CSS_SELECTOR, ".modem-rollout-resume").text, "Resume"
        )
        self.assertFalse(
            self.web_driver.find_element(
                By.CSS_SELECTOR, ".modem-rollout-pause"
            ).is_displayed()
        )
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, "paused")
        # the canary ends: a running batch would open the next wave now
        canary = batch.operations.get(wave=1)
        finish_operation(canary.pk, OperationStatus.SUCCESS, "upgrade successful")
        with mock.patch("openwisp_modem_upgrader.scheduler.publish_upgrade") as publish:
            self.assertEqual(dispatch(), 0)
        publish.assert_not_called()
        self.assertFalse(
            batch.operations.filter(dispatched_at__isnull=False)
            .exclude(pk=canary.pk)
            .exists()
        )
        self.scroll_to(".modem-rollout")
        self.screenshot("modem-batch-rollout-paused.png")
        self.assert_no_browser_errors()

    def test_go_ahead_button_appears_without_a_reload(self):
        from ..batch import create_batch

        self._create_modem_device(name="fleet-0", mac_address="00:11:22:33:56:00")
        batch = create_batch(
            self.image.build,
            self.device.organization,
            canary_size=1,
            max_concurrent=1,
            confirm_waves=True,
        )
        canary = batch.operations.get(wave=1)
        opts = batch._meta
        self.open(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[batch.pk])
        )
        self.wait_live()
        self.web_driver.execute_script("window.modemPageMarker = 1;")
        # on the page, hidden (the mixin's find_element waits for visibility)
        resume = self.web_driver.find_element(By.CSS_SELECTOR, ".modem-rollout-resume")
        self.assertFalse(resume.is_displayed())
        self.assertTrue(
            self.find_element(By.CSS_SELECTOR, ".modem-rollout-pause").is_displayed()
        )
        # the canary ends and the scheduler's pass stops at the wave's end
        finish_operation(canary.pk, OperationStatus.SUCCESS, "upgrade successful")
        dispatch()
        batch.refresh_from_db()
        self.assertEqual(batch.rollout_state, "awaiting-go-ahead")
        self.wait_until(lambda d: resume.is_displayed(), timeout=60)
        self.assertEqual(resume.text, "Give the go-ahead")
        box = self.find_element(By.CSS_SELECTOR, ".modem-rollout")
        self.assertEqual(box.get_attribute("data-rollout-state"), "awaiting-go-ahead")
        self.assertIn("waiting for an operator's go-ahead", box.text)
        self.assertIn("0 in flight", box.text)
        self.assertEqual(
            self.web_driver.execute_script("return window.modemPageMarker;"), 1
        )
        self.scroll_to(".modem-rollout")
        self.screenshot("modem-batch-go-ahead.png")
        self.click(resume)
        self.wait_for_admin_success_message(timeout=10)
        batch.refresh_from_db()
        self.assertEqual((batch.rollout_state, batch.current_wave), ("running", 2))
        self.assert_no_browser_errors()

    def test_cancel_operation(self):
        operation = ModemUpgradeOperation.objects.create(
            device=self.device, image=self.image
        )
        self.open(self.device_url())
        self.show_tab("modem-recent-upgrades")
        self.find_element(By.CSS_SELECTOR, ".modem-cancel").click()
        self.wait_for_admin_success_message(timeout=10)
        self.assertIn(
            "was cancelled", self.find_element(By.CSS_SELECTOR, ".messagelist").text
        )
        operation.refresh_from_db()
        self.assertEqual(operation.status, OperationStatus.CANCELLED)
        self.show_tab("modem-recent-upgrades")
        status = self.find_element(
            By.CSS_SELECTOR,
            f'tr.modem-operation[data-operation-id="{operation.pk}"] .modem-status',
        )
        self.assertEqual(status.text, "cancelled")
        self.assertFalse(
            self.web_driver.find_elements(By.CSS_SELECTOR, ".modem-cancel")
        )

    def test_failure_log_shown(self):
        self.router.set_modem(
            firmware="M0R.010000-B020", mode="normal", fault="tool-error"
        )
        operation = ModemUpgradeOperation.objects.create(
            device=self.device,
            image=self.image,
            upgrade_options=dict(
                FAST, remote_dir=self.remote_dir, tool_path=self.tool_path
            ),
        )
        self.open(self.device_url())
        self.show_tab("modem-recent-upgrades")
        self.wait_live()
        self.queued.put(str(operation.pk))
        self.run_queued_upgrades().join(300)
        row = f'tr.modem-operation[data-operation-id="{operation.pk}"]'
        self.wait_until(
            lambda d: d.find_element(By.CSS_SELECTOR, f"{row} .modem-status").text
            == "failed",
            timeout=15,
        )
        log = self.find_element(
            By.CSS_SELECTOR,
            f'tr.modem-operation-log[data-operation-id="{operation.pk}"] pre',
        )
        self.assertIn("could not complete firmware upload", log.text)
        # and on the operation's own page, after a reload
        opts = operation._meta
        self.open(
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change", args=[operation.pk]
            )
        )
        self.assertIn(
            "could not complete firmware upload",
            self.find_element(By.CSS_SELECTOR, ".modem-log").text,
        )
        self.assertEqual(FN990A28, self.image.build.modem_model)

    # the inventory: the "Detect modems" action and the dashboard chart

    def test_detect_modems_action(self):
        from ..swapper import load_model

        DeviceModemDetection = load_model("DeviceModemDetection")
        self.device.modems.all().delete()
        opts = self.device._meta
        self.open(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        checkbox = self.find_element(
            By.CSS_SELECTOR, f'input.action-select[value="{self.device.pk}"]'
        )
        self.click(checkbox)
        Select(self.find_element(By.NAME, "action")).select_by_value("detect_modems")
        self.click(self.find_element(By.CSS_SELECTOR, 'button[name="index"]'))
        self.wait_for_admin_success_message(timeout=30)
        self.assertIn(
            "Modem detection queued for 1 device.",
            self.find_element(By.CSS_SELECTOR, ".messagelist").text,
        )
        # Celery runs eagerly here: the emulated router was really read
        detection = DeviceModemDetection.objects.get(device=self.device)
        self.assertEqual(detection.status, "ok")
        self.assertEqual(
            list(self.device.modems.values_list("modem_model", flat=True)),
            [FN990A28],
        )
        self.open(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        # the model, its firmware below
        lines = self.find_element(By.CSS_SELECTOR, "td.field-modem_model").text
        self.assertEqual(lines.split("\n")[0], FN990A28)
        self.assertRegex(lines.split("\n")[1], r"^M0R\.\d{6}-B\d{3}$")

    def test_device_list_modem_columns_fit_1400(self):
        """At 1400 px every column of the device list, the modem columns
        last, is inside the window: no sideways scrolling to find them."""
        # its widest state: a modem behind a newer build
        newer = self._create_build(
            category=self.image.build.category, version="M0R.090000-B090"
        )
        self._create_image(build=newer)
        self.at_width(1400)
        opts = self.device._meta
        self.open(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        self.find_element(By.CSS_SELECTOR, "td.field-modem_detected .modem-behind")
        edges = self.web_driver.execute_script(
            "const last = document.querySelector('#result_list thead th:last-child');"
            "const results = document.querySelector('#changelist .results');"
            "return {last: last.className,"
            " right: last.getBoundingClientRect().right,"
            " window: document.documentElement.clientWidth,"
            " scroll: results.scrollWidth, shown: results.clientWidth,"
            " columns: Array.from(document.querySelectorAll("
            "  '#result_list thead th')).map("
            "  th => [th.className, Math.round(th.getBoundingClientRect().width)])};"
        )
        self.assertIn("column-modem_detected", edges["last"], edges)
        self.assertLessEqual(edges["right"], edges["window"], edges)
        self.assertLessEqual(edges["scroll"], edges["shown"], edges)
        self.screenshot("device-list-modems.png")

    def test_compliance_dashboard_chart(self):
        self.open(reverse("admin:index"))
        chart = self.wait_for_presence(
            By.XPATH, '//*[contains(text(), "Modem firmware compliance")]', 10
        )
        self.assertTrue(chart.is_displayed())
        self.screenshot("dashboard-modem-compliance.png")

    def test_compliance_page(self):
        """At 1400 px the page and its upgrade button fit the window."""
        newer = self._create_build(
            category=self.image.build.category, version="M0R.090000-B090"
        )
        self._create_image(build=newer)
        self.at_width(1400)
        opts = newer._meta
        self.open(reverse(f"admin:{opts.app_label}_{opts.model_name}_compliance"))
        button = self.find_element(
            By.CSS_SELECTOR, '.modem-compliance-upgrade input[type="submit"]'
        )
        self.assertIn("M0R.090000-B090", button.get_attribute("value"))
        overflow = self.web_driver.execute_script(
            "const right = arguments[0].getBoundingClientRect().right;"
            "return [right, document.documentElement.clientWidth,"
            " document.documentElement.scrollWidth];",
            button,
        )
        right, width, scroll_width = overflow
        self.assertLessEqual(right, width, overflow)
        self.assertLessEqual(scroll_width, width, overflow)
        self.screenshot("modem-compliance-page.png")

    def test_every_rollout_mistake_shown_at_once(self):
        self.open(
            reverse("admin:modem_upgrader_mass_upgrade", args=[self.image.build.pk])
        )
        Select(self.find_element(By.NAME, "organization")).select_by_value(
            str(self.device.organization_id)
        )
        for name, value in (
            ("canary_size", "150"),
            ("failure_threshold", "120"),
        ):
            field = self.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        # a time input: its typing depends on the browser's locale
        self.web_driver.execute_script(
            "arguments[0].value = '22:00';", self.find_element(By.NAME, "window_start")
        )
        Select(self.find_element(By.NAME, "canary_percent")).select_by_value("true")
        Select(self.find_element(By.NAME, "failure_threshold_percent")).select_by_value(
            "true"
        )
        self.click(self.find_element(By.NAME, "preview"))
        self.wait_until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "ul.errorlist li")) >= 3,
            timeout=30,
        )
        errors = " ".join(
            e.text for e in self.web_driver.find_elements(By.CSS_SELECTOR, ".errorlist")
        )
        self.assertEqual(errors.count("A percentage is at most 100."), 2, errors)
        self.assertIn("Give both ends of the maintenance window", errors)
        self.assertFalse(ModemBatchUpgradeOperation.objects.exists())

    def test_unreachable_router_device_page(self):
        from ..swapper import load_model

        self.device.modems.all().delete()
        load_model("DeviceModemDetection").objects.create(
            device=self.device,
            status="unreachable",
            reason="Unable to connect to port 22 on 127.0.0.1",
            attempted_at=timezone.now(),
        )
        self.open(self.device_url())
        self.show_tab("modem-firmware-inline")
        refusal = self.find_element(By.CSS_SELECTOR, ".modem-upgrade-refused")
        self.assertIn("the server cannot reach this router", refusal.text)
        self.assertIn("Unable to connect to port 22", refusal.text)
        # nothing to choose: no upgrade is offered where it would be refused
        self.assertFalse(
            self.web_driver.find_elements(
                By.CSS_SELECTOR, 'select[name="modems-0-upgrade_to"]'
            )
        )
