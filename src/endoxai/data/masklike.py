"""Is a decoded file a binary mask? The test that keeps a photograph from being scored as one.

A binary mask has two grey levels (black and white, or 0 and 1), blurred by JPEG noise near its
edges; a photograph, a probability map or a multi-colour label map has many. ``mask_problem``
finds the two most frequent grey levels, each with the ±``NOISE`` levels around it, and asks
that nearly every pixel lies in one of those two windows.

Measured on the files of Kvasir-SEG (1000 JPEG masks, 1000 photographs): every mask has all its
pixels in the two windows; the photographs have at most 75 % (median 43 %). JPEG-compressed
synthetic masks of many small discs keep at least 92 % even at quality 10.
"""

from __future__ import annotations

import numpy as np

from endoxai.data.io import MASK_THRESHOLD

NOISE = 16  # grey levels either side of a mask's two levels that JPEG noise may reach
MIN_TWO_LEVEL_SHARE = 0.90  # of the pixels, inside the two windows
MIN_LEVEL_SHARE = 0.01  # a second level holding fewer pixels than this is noise, not a level
COLOUR_SPREAD = 48  # max - min of R, G, B above which a pixel is coloured, not grey
MIN_COLOUR_SHARE = 0.05  # of the pixels coloured: a colour image


def mask_problem(grey: np.ndarray) -> str | None:
    """None if ``grey`` (H, W), grey values 0..255 or 0/1 as ``io.read_mask_grey`` gives them,
    is a binary mask; else why not, as a phrase for a message ("its grey values are spread: ...").

    Two problems are found: grey values that are not two-valued (a photograph, a probability
    map), and two levels that both lie on one side of the 127.5 threshold (a colour mask whose
    foreground is dark in grey, or a mask of 0 and 100), which would read as all background or
    all foreground. 0/1 masks are binary by construction.
    """
    values = np.rint(np.asarray(grey, dtype=np.float64)).clip(0, 255).astype(np.intp).ravel()
    if values.size == 0 or values.max() <= 1:
        return None
    counts = np.bincount(values, minlength=256)
    first = int(counts.argmax())
    rest = counts.copy()
    rest[_window(first)] = 0
    if not rest.any():  # one level (and its noise): an empty or a full mask
        return None
    second = int(rest.argmax())
    inside = np.zeros(256, dtype=bool)
    inside[_window(first)] = True
    inside[_window(second)] = True
    share = counts[inside].sum() / values.size
    if share < MIN_TWO_LEVEL_SHARE:
        return (f"its grey values are spread, not two-valued: only {share:.0%} of the pixels lie "
                f"within ±{NOISE} of its two main levels ({min(first, second)} and "
                f"{max(first, second)})")
    if counts[_window(second)].sum() / values.size >= MIN_LEVEL_SHARE:
        low, high = sorted((first, second))
        if (low > MASK_THRESHOLD) == (high > MASK_THRESHOLD):
            side = "above" if low > MASK_THRESHOLD else "below"
            every = "foreground" if low > MASK_THRESHOLD else "background"
            return (f"its two grey levels, {low} and {high}, are both {side} {MASK_THRESHOLD}, so "
                    f"every pixel would read as {every}")
    return None


def is_colour(rgb: np.ndarray) -> bool:
    """True when more than 5 % of the pixels of uint8 (H, W, 3) ``rgb`` have clearly different
    red, green and blue values: a colour image (a photograph, a colour label map), not a grey
    mask. Used to word a message; chroma noise of a JPEG mask stays far below it."""
    rgb = np.asarray(rgb, dtype=np.int16)
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)
    return bool(spread.size) and float((spread > COLOUR_SPREAD).mean()) > MIN_COLOUR_SHARE


def _window(level: int) -> slice:
    return slice(max(0, level - NOISE), min(255, level + NOISE) + 1)
