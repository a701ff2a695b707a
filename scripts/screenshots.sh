#!/bin/sh
# Regenerates the admin guide's screenshots (docs/images/*.png) from the pages
# as they are now: the browser tests that take them run with
# UPDATE_DOCS_SCREENSHOTS=1 (they always write .test-artifacts/ too).
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export SELENIUM_HEADLESS=1 SE_CHROMEDRIVER=/usr/bin/chromedriver
export UPDATE_DOCS_SCREENSHOTS=1
browser=openwisp_modem_upgrader.tests.test_selenium.TestModemUpgraderBrowser
.venv/bin/python runtests.py \
    "$browser.test_device_page_upgrade_reaches_100_live" \
    "$browser.test_operation_page_stage_indicator_follows_the_flash" \
    "$browser.test_mass_upgrade_through_preview" \
    "$browser.test_go_ahead_button_appears_without_a_reload" \
    "$browser.test_rollout_with_a_canary_wave_paused_from_the_batch_page" \
    "$browser.test_detect_modems_action" \
    "$browser.test_compliance_dashboard_chart" \
    "$browser.test_compliance_page" \
    "$@"
ls -l docs/images/*.png
