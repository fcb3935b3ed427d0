"""Figures drawn with Pillow: text in DejaVu Sans, framed panels, colour bars, PNG bytes.

``endoxai explain`` writes three figures per image; drawn with matplotlib they cost more than the
LRP pass itself (about 0.4 s to import it and 0.6 s to draw, on a 2-core CPU). These figures are
mostly pixels (heatmaps shown as blocks, one per model pixel), which Pillow pastes directly. The
font is matplotlib's own DejaVu Sans, found without importing matplotlib, so the text looks as in
the other figures.
"""

from __future__ import annotations

import importlib.util
import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from endoxai.viz.heatmaps import heatmap_rgb

INK = (0, 0, 0)
FRAME = (89, 89, 89)  # matplotlib's grey "0.35": a panel's frame
WHITE = (255, 255, 255)
LINE_SPACING = 1.25  # of the font size, between the lines of one text
_MINUS = "\u2212"  # typographic minus, as matplotlib prints tick labels
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels; right and bottom exclusive


@lru_cache(maxsize=1)
def _font_file() -> str | None:
    spec = importlib.util.find_spec("matplotlib")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return str(path)
    return None


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size`` pixels (matplotlib's default font); Pillow's own font if absent."""
    path = _font_file()
    if path is None:
        try:
            return ImageFont.load_default(size)
        except TypeError:  # Pillow < 10.1: one bitmap size only
            return ImageFont.load_default()
    return ImageFont.truetype(path, size)


class Canvas:
    """A white RGB picture to draw a figure on; ``texts`` lists every text drawn, in order (what
    the figure says, for tests and for readers of the code)."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("RGB", (int(width), int(height)), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.texts: list[str] = []

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def text(self, x: float, y: float, text: str, size: int, anchor: str = "mt",
             fill: tuple[int, int, int] = INK) -> Box:
        """Draw ``text`` (lines split at newlines, each centred for ``m``) with its block anchored
        at (x, y): ``anchor`` = horizontal l / m / r + vertical t / m / b of the whole block.
        Returns the block's box."""
        self.texts.append(text)
        f = font(size)
        lines = text.split("\n")
        step = round(size * LINE_SPACING)
        height = step * (len(lines) - 1) + size
        top = y - {"t": 0, "m": height / 2, "b": height}[anchor[1]]
        widths = [self.draw.textlength(line, font=f) for line in lines]
        width = max(widths)
        left = x - {"l": 0, "m": width / 2, "r": width}[anchor[0]]
        for i, (line, w) in enumerate(zip(lines, widths)):
            lx = {"l": left, "m": left + (width - w) / 2, "r": left + width - w}[anchor[0]]
            self.draw.text((lx, top + i * step), line, font=f, fill=fill, anchor="lt")
        return round(left), round(top), round(left + width), round(top + height)

    def vertical_text(self, x: float, y: float, text: str, size: int) -> None:
        """``text`` turned 90° anticlockwise (read from bottom to top), centred at (x, y)."""
        self.texts.append(text)
        f = font(size)
        width = math.ceil(self.draw.textlength(text, font=f)) + 2
        strip = Image.new("L", (width, size + 4), 0)
        ImageDraw.Draw(strip).text((1, 1), text, font=f, fill=255, anchor="lt")
        strip = strip.rotate(90, expand=True)
        ink = Image.new("RGB", strip.size, INK)
        self.image.paste(ink, (round(x - strip.width / 2), round(y - strip.height / 2)), strip)

    def rectangle(self, box: Box, fill: tuple[int, int, int] | None = None,
                  outline: tuple[int, int, int] | None = None, width: int = 1) -> None:
        """A rectangle covering columns left..right-1 and rows top..bottom-1."""
        left, top, right, bottom = box
        if right <= left or bottom <= top:
            return
        self.draw.rectangle((left, top, right - 1, bottom - 1), fill=fill, outline=outline,
                            width=width)

    def dashed_rectangle(self, box: Box, colour: tuple[int, int, int], dash: int = 6) -> None:
        left, top, right, bottom = (box[0], box[1], box[2] - 1, box[3] - 1)
        for x in range(left, right + 1, 2 * dash):
            for y in (top, bottom):
                self.draw.line((x, y, min(x + dash - 1, right), y), fill=colour)
        for y in range(top, bottom + 1, 2 * dash):
            for x in (left, right):
                self.draw.line((x, y, x, min(y + dash - 1, bottom)), fill=colour)

    def panel(self, rgb: np.ndarray, box: Box, frame: bool = True) -> None:
        """Paste the uint8 (h, w, 3) picture ``rgb`` scaled to fill ``box``, every source pixel a
        block (nearest neighbour; averaged when the box is smaller), in a thin grey frame."""
        left, top, right, bottom = box
        picture = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
        size = (right - left, bottom - top)
        if picture.size != size:
            shrink = size[0] < picture.width or size[1] < picture.height
            picture = picture.resize(size, Image.Resampling.BOX if shrink else
                                     Image.Resampling.NEAREST)
        self.image.paste(picture, (left, top))
        if frame:
            self.rectangle((left - 1, top - 1, right + 1, bottom + 1), outline=FRAME)

    def colour_bar(self, box: Box, limit: float, label: str, tick_size: int,
                   label_size: int) -> None:
        """A vertical ``bwr`` bar from +limit (top) to -limit (bottom), framed, with ticks and
        their values right of it, and ``label`` (plus the unit of the ticks, ``scale_unit``)
        turned along its right side."""
        left, top, right, bottom = box
        height = bottom - top
        values = np.linspace(limit, -limit, height)[:, None].repeat(right - left, axis=1)
        self.panel(heatmap_rgb(values, limit), box)
        scale, unit = scale_unit(limit)
        widest = 0.0
        for value in nice_ticks(-limit, limit):
            y = top + (limit - value) / (2 * limit) * (height - 1)
            self.draw.line((right, round(y), right + 3, round(y)), fill=INK)
            tick = tick_label(value / scale)
            self.text(right + 6, y, tick, tick_size, anchor="lm")
            widest = max(widest, self.draw.textlength(tick, font=font(tick_size)))
        self.vertical_text(right + 10 + widest + label_size * 0.8, (top + bottom) / 2,
                           label + unit, label_size)

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


def scale_unit(limit: float) -> tuple[float, str]:
    """(divisor, label suffix) that keep colour-bar ticks between 0.1 and 999: the scale goes
    into the bar's label, where it is read, not into a "1e-2" above the bar."""
    if not limit > 0 or not np.isfinite(limit):
        return 1.0, ""
    exponent = int(np.floor(np.log10(limit)))
    if -1 <= exponent <= 2:
        return 1.0, ""
    return 10.0 ** exponent, f" in units of 10{str(exponent).translate(_SUPERSCRIPT)}"


def nice_ticks(low: float, high: float, most: int = 9) -> list[float]:
    """Tick values in [low, high], from the top down: multiples of a round step (1, 2, 2.5 or 5
    times a power of ten, 0 included when in range), the smallest step that gives at most
    ``most`` ticks."""
    span = high - low
    if not span > 0 or not np.isfinite(span):
        return [float(low)]
    magnitude = 10.0 ** math.floor(math.log10(span))
    for factor in (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0):
        step = factor * magnitude
        first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
        if last - first + 1 <= most:
            break
    return [k * step + 0.0 for k in range(last, first - 1, -1)]


def tick_label(value: float) -> str:
    """A tick's text: shortest form (``%g``), ``0`` for zero, a typographic minus."""
    text = f"{value:.4g}" if abs(value) > 1e-12 else "0"
    return text.replace("-", _MINUS)


def blend(colour: tuple[int, int, int], alpha: float) -> tuple[int, int, int]:
    """``colour`` at opacity ``alpha`` over white, as one opaque colour."""
    return tuple(round(alpha * c + (1 - alpha) * 255) for c in colour)


def hex_colour(text: str) -> tuple[int, int, int]:
    """``"#d62728"`` -> (214, 39, 40)."""
    return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
