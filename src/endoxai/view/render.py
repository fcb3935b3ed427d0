"""What the viewer sends to the browser: PNGs of images, mask layers and relevance maps; npz.

Mask colours are those of every picture of a mask's errors (``viz.overlays``, colour-blind
safe): true positives sky blue, false positives yellow, false negatives blue (a prediction
without a truth mask is shown in the true-positive colour). Relevance uses the project's
diverging map (``viz.heatmaps``: red = positive, white = 0, blue = negative) on a symmetric scale
±max|R|.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import numpy as np
from PIL import Image

from endoxai.explain.flow import SkipFlow
from endoxai.viz.heatmaps import heatmap_rgb, symmetric_limit
from endoxai.viz.overlays import FN_COLOUR, FP_COLOUR, TP_COLOUR
LAYER_MIN_PX = 64  # layer maps smaller than this are enlarged (nearest) so they can be seen
THUMB_PX = 112  # gallery thumbnails: the longer side


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> PNG bytes (fast compression: served, not kept)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def mask_layer(pred: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    """RGBA uint8 (S, S, 4): TP / FP / FN colours (or the prediction alone), transparent elsewhere.

    The browser blends it over the image at the opacity the user picks.
    """
    out = np.zeros((*pred.shape, 4), dtype=np.uint8)
    if truth is None:
        out[pred] = (*TP_COLOUR, 255)
        return out
    out[pred & truth] = (*TP_COLOUR, 255)
    out[pred & ~truth] = (*FP_COLOUR, 255)
    out[~pred & truth] = (*FN_COLOUR, 255)
    return out


def thumbnail(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A gallery thumbnail of a model-resolution image, at its original aspect ratio."""
    scale = THUMB_PX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def relevance_map(relevance: np.ndarray) -> tuple[bytes, float]:
    """(H, W) relevance -> (PNG of its heatmap, the symmetric limit max|R| of its colour scale)."""
    limit = symmetric_limit(relevance)
    return png_bytes(heatmap_rgb(relevance, limit)), limit


def layer_map(relevance: np.ndarray) -> tuple[bytes, float]:
    """A block's channel-summed (h, w) relevance, enlarged to at least ``LAYER_MIN_PX``."""
    limit = symmetric_limit(relevance)
    rgb = heatmap_rgb(relevance, limit)
    factor = max(1, -(-LAYER_MIN_PX // max(rgb.shape[:2])))
    return png_bytes(rgb.repeat(factor, 0).repeat(factor, 1)), limit


def flow_rows(flow: SkipFlow) -> dict:
    """The skip-flow ledger of one image (``endoxai.explain.flow``) as a table for the page:
    one row per encoder level from the output down, shares of the output's relevance."""
    shares = {key: value[0] for key, value in flow.shares().items()}
    depth = flow.depth
    rows = []
    for k in range(1, depth):
        j = depth + 1 - k
        rows.append([f"down{k}", f"up{j}", _percent(shares["absorbed_decoder"][j - 1]),
                     _percent(shares["skip"][k - 1]), _percent(shares["deeper"][k - 1])])
    rows.append(["bottleneck", "up1", _percent(shares["absorbed_decoder"][0]),
                 _percent(shares["bottleneck"]), ""])
    note = (f"Shares of the output relevance ΣR = {float(flow.total[0]):.4g}. The encoder "
            f"absorbs {_percent(shares['absorbed_encoder'].sum())}; "
            f"{_percent(shares['input'])} reaches the input pixels.")
    return {"columns": ["encoder level", "skip read by", "absorbed there",
                        "enters through the skip", "continues deeper"],
            "rows": rows, "note": note}


def _percent(share: object) -> str:
    value = 100 * float(share)
    if not np.isfinite(value):
        return "n/a"
    return "0.0 %" if abs(value) < 0.05 else f"{value:.1f} %"  # no "-0.0 %"


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
