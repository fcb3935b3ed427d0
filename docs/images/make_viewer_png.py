"""Makes docs/images/viewer.png: a screenshot of ``endoxai view`` taken by headless Chromium.

It starts ``endoxai view`` on a few Kvasir-SEG training images with their masks, opens the page
in Debian's Chromium (Playwright), picks the image in the middle of the gallery (sorted worst
Dice first), drags a box around the pixel of its predicted mask nearest to the mask's centre,
waits for the answer, shows the map over the image and saves the page. Nothing is drawn or
edited by hand.

    python docs/images/make_viewer_png.py [--checkpoint C] [--data DATA/kvasir-seg] [--images 8]

Default model: the bundled one; default data: $ENDOXAI_DATA (else ../shared/data)/kvasir-seg.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from endoxai.viz.overlays import FN_COLOUR

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ENDOXAI_DATA") or REPO.parent / "shared" / "data") / "kvasir-seg"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
WAIT_MS = 120_000
BOX_HALF = 20  # the dragged box: 41 x 41 model pixels around the mask's centre
RELEVANCE_SRC = "() => document.querySelector('#relevance img').getAttribute('src') || ''"


def start_viewer(args: argparse.Namespace, images: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "endoxai", "-q", "view", "--images", str(images),
               "--masks", str(args.data / "masks"), "--port", "0"]
    if args.checkpoint:
        command += ["--checkpoint", str(args.checkpoint)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "open http://" in line:
            return process, next(w for w in line.split() if w.startswith("http://"))
        print(line, end="", file=sys.stderr)
    raise SystemExit("endoxai view did not start")


def mask_centre(url: str, image_id: str) -> tuple[int, int, int]:
    """(row, column) of the predicted-mask pixel nearest the mask's centre, and the model size."""
    with urllib.request.urlopen(f"{url}api/images/{image_id}/mask.png") as response:
        layer = np.asarray(Image.open(io.BytesIO(response.read())))
    # true and false positives: the prediction (not the false negatives' colour)
    predicted = (layer[..., 3] > 0) & (layer[..., :3] != FN_COLOUR).any(axis=-1)
    ys, xs = np.nonzero(predicted)
    if ys.size == 0:
        return layer.shape[0] // 2, layer.shape[1] // 2, layer.shape[0]
    nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return int(ys[nearest]), int(xs[nearest]), layer.shape[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, help="model (default: the bundled one)")
    p.add_argument("--data", type=Path, default=DATA, help="Kvasir-SEG folder")
    p.add_argument("--images", type=int, default=8, help="first N ids of train.txt (default 8)")
    p.add_argument("--output", type=Path, default=Path(__file__).with_name("viewer.png"))
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    ids = [line.strip() for line in (args.data / "train.txt").read_text().split() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        for stem in ids[:args.images]:
            source = next((args.data / "images").glob(f"{stem}.*"))
            (Path(tmp) / source.name).symlink_to(source)
        process, url = start_viewer(args, Path(tmp))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(url, wait_until="load")
                page.wait_for_function(f"() => ({RELEVANCE_SRC})().startsWith('data:')",
                                       timeout=WAIT_MS)
                buttons = page.locator("#gallery button")
                middle = buttons.nth(buttons.count() // 2)
                image_id = middle.get_attribute("data-id")
                old = page.evaluate(RELEVANCE_SRC)
                middle.click()
                page.wait_for_function(f"old => ({RELEVANCE_SRC})() !== old", arg=old,
                                       timeout=WAIT_MS)
                y, x, size = mask_centre(url, image_id)
                box = page.locator("#image img").bounding_box()

                def at(row: int, column: int) -> tuple[float, float]:
                    row, column = min(max(row, 0), size - 1), min(max(column, 0), size - 1)
                    return (box["x"] + (column + 0.5) / size * box["width"],
                            box["y"] + (row + 0.5) / size * box["height"])

                old = page.evaluate(RELEVANCE_SRC)
                page.mouse.move(*at(y - BOX_HALF, x - BOX_HALF))
                page.mouse.down()
                page.mouse.move(*at(y + BOX_HALF, x + BOX_HALF), steps=5)
                page.mouse.up()
                page.wait_for_function(f"old => ({RELEVANCE_SRC})() !== old", arg=old,
                                       timeout=WAIT_MS)
                page.check("#relevance-over")  # the map over the image: where it looks
                page.wait_for_timeout(300)  # let the layer thumbnails decode
                shot = page.screenshot()
                browser.close()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    # 256 colours, dithered: a third of the size, and the page's colours survive it
    picture = Image.open(io.BytesIO(shot)).convert("RGB")
    picture.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG
                     ).save(args.output, optimize=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
