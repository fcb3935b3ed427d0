"""The viewer in a real browser: headless Debian Chromium driven by Playwright, as the report's
browser test does, with the ``browser`` fixture of tests/conftest.py (skipped when Playwright or
Chromium is missing)."""

from __future__ import annotations

import pytest

WAIT_MS = 60_000  # a loaded CI machine can take seconds per answer
RELEVANCE_SRC = "() => document.querySelector('#relevance img').getAttribute('src') || ''"


def wait_for_new_map(page, old: str, answers: list[str]) -> str:
    try:
        page.wait_for_function(f"old => ({RELEVANCE_SRC})() !== old && "
                               f"({RELEVANCE_SRC})().startsWith('data:image/png')",
                               arg=old, timeout=WAIT_MS)
    except Exception as err:  # say what the page showed, and what the server answered
        shown = {key: page.text_content(key) for key in ("#target-label", "#timing", "#error")}
        raise AssertionError(f"no new map: {shown}; relevance answers {answers}") from err
    return page.evaluate(RELEVANCE_SRC)


def answer_status(response) -> str:
    try:
        body = response.json()
    except Exception:
        return f"{response.status} (no JSON)"
    return f"{response.status} " + ("superseded" if body.get("superseded") else
                                    body.get("error") or f"answer {body.get('result')}")


@pytest.mark.slow
def test_click_composite_and_a_corrupt_upload_in_chromium(browser, live_server,
                                                         full_screenshot):
    problems: list[str] = []
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1050})
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}")
            if "ERR_ABORTED" not in (req.failure or "") else None)  # superseded on purpose
    page.on("request", lambda req: requests.append(req.url))
    answers: list[str] = []
    page.on("response", lambda response: answers.append(answer_status(response))
            if response.url.endswith("/api/relevance") else None)
    page.goto(live_server.url, wait_until="load")

    # the worst image is opened and its whole mask explained
    first = wait_for_new_map(page, "", answers)
    assert page.locator("#gallery li").count() == 3
    assert "Dice" in page.text_content("#scores")
    assert "whole predicted mask" in page.text_content("#target-label")

    # click a pixel: a new map, the pixel framed, the time it took
    page.click("#image img", position={"x": 120, "y": 90})
    clicked = wait_for_new_map(page, first, answers)
    assert "pixel (row" in page.text_content("#target-label")
    assert page.is_visible("#relevance .frame") and page.is_visible("#image .frame")
    assert "s on the server" in page.text_content("#timing")
    assert page.locator("#layers img").count() == 16
    assert page.is_visible("#flow")
    assert page.get_attribute("#download-npz", "href").startswith("/api/results/")

    page.check("#relevance-over")  # the map over the image
    assert "over" in page.get_attribute("#relevance", "class")

    # another composite: another map for the same pixel
    page.select_option("#composite", "lrp0")
    recomposed = wait_for_new_map(page, clicked, answers)
    assert "lrp0" in page.text_content("#relevance-label")

    # drag a box
    box = page.locator("#image img").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 120, steps=5)
    page.mouse.up()
    wait_for_new_map(page, recomposed, answers)
    assert "box rows" in page.text_content("#target-label")

    # a layer thumbnail enlarges
    page.click("#layers li:nth-child(4) button")
    assert page.is_visible("#layer-large") and "down4" in page.text_content("#layer-large")
    page.click("#layer-close")

    # a corrupt file: a clear message in the page, the gallery unchanged
    page.set_input_files("#upload input", files=[{"name": "broken.png", "mimeType": "image/png",
                                                  "buffer": b"\x89PNG\r\n\x1a\n broken"}])
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    assert "broken.png" in page.text_content("#error")
    assert page.locator("#gallery li").count() == 3

    assert problems == []
    assert all(url.startswith((live_server.url, "data:")) for url in requests), requests
    full_screenshot(page, min_bytes=20_000)
    page.close()
