"""The report in a real browser: headless Chromium (Debian package) driven by Playwright.

Skips when Playwright or /usr/bin/chromium is missing (CI installs both: .ci/run). Playwright's
own browser download is not used: its bundled browsers cannot be fetched here.
"""

from __future__ import annotations

import pytest

# (table id, expected number of body rows); must agree with tests/report/conftest.py
EXPECTED_ROWS = {"table-run": 6, "table-metrics": 4, "table-per-image": 4,
                 "table-faithfulness": 3, "table-sanity": 2, "table-skip-flow": 8}


@pytest.mark.slow
def test_report_opens_cleanly_in_chromium(browser, built_report, full_screenshot):
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
    full_screenshot(page, min_bytes=50_000)
    page.close()
