"""The report in a real browser: headless Chromium (Debian package) driven by Playwright.

Skips when Playwright or /usr/bin/chromium is missing (CI installs both: .ci/run). Playwright's
own browser download is not used: its bundled browsers cannot be fetched here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ENDOXAI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

# (table id, expected number of body rows); must agree with tests/report/conftest.py
EXPECTED_ROWS = {"table-run": 6, "table-metrics": 4, "table-per-image": 4,
                 "table-faithfulness": 3, "table-sanity": 2, "table-skip-flow": 8}


# Module scope: Playwright's sync API runs an event loop until it is closed, and a loop still
# running makes later tests' asyncio.run() and sync_playwright() fail (tests/view).
@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except sync_api.Error as err:  # e.g. a Chromium too old or too new for this Playwright
            pytest.skip(f"cannot start {CHROMIUM} with Playwright: {str(err).splitlines()[0]}")
        yield browser
        browser.close()


@pytest.mark.slow
def test_report_opens_cleanly_in_chromium(browser, built_report, tmp_path):
    problems: list[str] = []
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.on("request", lambda req: requests.append(req.url))
    page.goto((built_report.out / "index.html").resolve().as_uri(), wait_until="load")

    assert problems == []
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    broken = page.evaluate("""() => Array.from(document.images)
        .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src)""")
    assert broken == []
    n_images = page.evaluate("document.images.length")
    # gallery panels and layer maps; plots: curves, faithfulness, sanity, skip flow
    assert n_images == 3 * (5 + 16) + 4
    rows = page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll(
        'table[id]')).map(t => [t.id, t.tBodies[0].rows.length]))""")
    assert rows == EXPECTED_ROWS
    assert page.evaluate("document.querySelectorAll('section.card').length") == 3
    # the first link of the per-image table jumps to the first gallery card
    page.click("#table-per-image a")
    assert page.evaluate("location.hash") == "#g001"
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    keep = os.environ.get("ENDOXAI_SCREENSHOT")  # to look at it: ENDOXAI_SCREENSHOT=/tmp/r.png
    if keep:
        shutil.copyfile(shot, keep)
    page.close()
