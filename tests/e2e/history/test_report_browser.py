# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTML report in a real headless Chromium (Debian's chromium and
chromium-driver through selenium) with the network off: it renders, has its
tables and charts, loads nothing from anywhere, and the console shows no
error. A screenshot is kept beside the report."""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.datasteward.storage.plugins.module_utils._history import report
from ansible_collections.datasteward.storage.plugins.module_utils._history.record import Recorder
from ansible_collections.datasteward.storage.plugins.module_utils._history.store import Store
from ansible_collections.datasteward.storage.tests.unit.utils import history_data as gen

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium is not installed (Debian packages chromium and chromium-driver; make test-deps installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,2000",
        "--user-data-dir=%s" % tmp_path_factory.mktemp("chromium-profile"),
        # No way out: every request that is not to a file goes to a closed port.
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER, log_output=os.devnull)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    with Store(str(base / "h.sqlite")) as store:
        recorder = Recorder(store)
        for record in gen.fleet_records(hosts=2, days=15, users=4):
            recorder.record(*record)
        for name, text in report.render_all(report.build(store)).items():
            report.write_atomic(str(base), name, text)
    return base


def test_report_renders_offline_with_tables_and_charts(browser, report_dir):
    browser.get((report_dir / "report.html").as_uri())
    assert browser.title == "Storage report"
    by = pytest.importorskip("selenium.webdriver.common.by").By
    for section in ("attention", "filesystems", "users", "drives", "ingest", "inbox", "old_files"):
        assert browser.find_elements(by.ID, section), section
    assert len(browser.find_elements(by.CSS_SELECTOR, "table.filesystems tbody tr")) == 4
    assert len(browser.find_elements(by.CSS_SELECTOR, "table.growers")) == 2
    assert len(browser.find_elements(by.CSS_SELECTOR, "table.drives tbody tr")) == 2
    charts = browser.find_elements(by.CSS_SELECTOR, "figure.chart svg")
    assert len(charts) >= 4 and all(c.size["width"] > 100 and c.size["height"] > 50 for c in charts)
    # pygal drew lines and bars (paths inside the plot), not just axes
    assert browser.execute_script("return document.querySelectorAll('figure.chart svg .plot .series path, figure.chart svg .plot .series rect').length") > 4
    # nothing but the page itself was loaded
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    shot = report_dir / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20000
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR", "WARNING")]
    assert errors == []
