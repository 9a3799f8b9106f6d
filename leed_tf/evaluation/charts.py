"""Small PNG charts drawn with Pillow (no plotting library needed).

Every function returns a ``uint8 [H, W, 3]`` image; missing values (None or
NaN) are drawn as "n/a" rather than dropped, so a method that could not run
still has its row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
_BACKGROUND, _INK, _GRID = (255, 255, 255), (20, 20, 20), (225, 225, 225)


def font(size: int = 12):
    """Pillow's built-in font at ``size`` (its fixed bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _text_width(draw: ImageDraw.ImageDraw, text: str, face) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=face)
    return right - left


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], *,
              value_format: str = "{:.2f}", highlight: Sequence[str] = (), width: int = 720) -> np.ndarray:
    """Horizontal bars, one per label, with the value written after each bar.

    Args:
      title: Chart title.
      labels: Bar names.
      values: Bar lengths (>= 0; None/NaN drawn as "n/a", negatives as 0).
      value_format: Format of the written values.
      highlight: Labels drawn in a strong colour (e.g. LEED's rows).
      width: Image width in pixels.
    """
    face, title_face = font(12), font(14)
    row, top, bottom = 22, 30, 10
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = max([_text_width(probe, str(t), face) for t in labels] + [40]) + 12
    value_width = 70
    image = Image.new("RGB", (width, top + row * len(labels) + bottom), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), title, fill=_INK, font=title_face)
    finite = [float(v) for v in values if not _missing(v)]
    scale = max([v for v in finite if v > 0] + [1e-12])
    span = width - label_width - value_width - 8
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + i * row
        draw.text((label_width - 6, y + row // 2), str(label), fill=_INK, font=face, anchor="rm")
        if _missing(value):
            draw.text((label_width + 4, y + row // 2), "n/a", fill=(120, 120, 120), font=face, anchor="lm")
            continue
        length = int(round(span * max(float(value), 0.0) / scale))
        colour = PALETTE[3] if label in highlight else PALETTE[0]
        draw.rectangle((label_width, y + 3, label_width + max(length, 1), y + row - 4), fill=colour)
        draw.text((label_width + length + 6, y + row // 2), value_format.format(value), fill=_INK, font=face,
                  anchor="lm")
    return np.asarray(image)


def grouped_bar_chart(title: str, groups: Sequence[str], series: dict[str, Sequence[float | None]], *,
                      value_range: tuple[float, float] | None = None, value_format: str = "{:.2f}",
                      height: int = 300, group_width: int = 110) -> np.ndarray:
    """Vertical bars grouped along x (e.g. expressions), one colour per series
    (e.g. methods), with a legend.

    Args:
      title: Chart title.
      groups: Group names along x.
      series: Series name -> one value per group (None/NaN: no bar, "n/a").
      value_range: y axis (low, high); default 0 to the largest value.
      value_format: Format of the axis labels.
      height: Plot height in pixels.
      group_width: Pixels per group.
    """
    face, title_face = font(11), font(14)
    names = list(series)
    legend_rows = (len(names) + 3) // 4
    top, left, bottom = 30 + 16 * legend_rows, 56, 40
    width = left + group_width * len(groups) + 20
    image = Image.new("RGB", (max(width, 480), top + height + bottom), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), title, fill=_INK, font=title_face)
    for k, name in enumerate(names):
        x, y = 8 + (k % 4) * 170, 28 + (k // 4) * 16
        draw.rectangle((x, y + 2, x + 10, y + 12), fill=PALETTE[k % len(PALETTE)])
        draw.text((x + 14, y), name, fill=_INK, font=face)
    finite = [float(v) for values in series.values() for v in values if not _missing(v)]
    low, high = value_range or (0.0, max(finite + [1e-12]))
    high = high if high > low else low + 1.0

    def y_of(value):
        return top + height - int(round(height * (min(max(value, low), high) - low) / (high - low)))

    for tick in np.linspace(low, high, 5):
        y = y_of(tick)
        draw.line((left, y, image.width - 10, y), fill=_GRID)
        draw.text((left - 4, y), value_format.format(tick), fill=_INK, font=face, anchor="rm")
    bar = max(2, (group_width - 16) // max(1, len(names)))
    for g, group in enumerate(groups):
        x0 = left + g * group_width + 8
        for k, name in enumerate(names):
            value = series[name][g]
            x = x0 + k * bar
            if _missing(value):
                continue
            draw.rectangle((x, y_of(float(value)), x + bar - 2, y_of(low)), fill=PALETTE[k % len(PALETTE)])
        draw.text((left + g * group_width + group_width // 2, top + height + 6), str(group), fill=_INK,
                  font=face, anchor="ma")
    draw.line((left, top, left, top + height), fill=_INK)
    draw.line((left, top + height, image.width - 10, top + height), fill=_INK)
    return np.asarray(image)


@dataclass
class Panel:
    """One small line chart.

    Attributes:
      title: Panel title.
      lines: ``(label, steps, values)`` triples.
    """

    title: str
    lines: list = field(default_factory=list)


def line_panels(panels: Sequence[Panel], *, columns: int = 3, size: tuple[int, int] = (360, 210),
                title: str = "") -> np.ndarray:
    """A grid of small line charts (e.g. one per loss), each with its own y
    range: losses weighted by 0.01 and by 1000 do not share an axis.

    Args:
      panels: The charts.
      columns: Panels per row.
      size: Width and height of one panel.
      title: Title above the grid.
    """
    face, title_face = font(11), font(14)
    rows = max(1, (len(panels) + columns - 1) // columns)
    head = 26 if title else 0
    image = Image.new("RGB", (size[0] * columns, head + size[1] * rows), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((8, 5), title, fill=_INK, font=title_face)
    for n, panel in enumerate(panels):
        ox, oy = (n % columns) * size[0], head + (n // columns) * size[1]
        _line_panel(draw, panel, (ox, oy), size, face)
    return np.asarray(image)


def _line_panel(draw, panel: Panel, origin, size, face) -> None:
    ox, oy = origin
    left, right, top, bottom = ox + 58, ox + size[0] - 10, oy + 34, oy + size[1] - 22
    draw.text((ox + 8, oy + 4), panel.title, fill=_INK, font=face)
    points = [(np.asarray(s, float), np.asarray(v, float)) for _, s, v in panel.lines]
    steps = np.concatenate([s for s, _ in points]) if points else np.zeros(0)
    values = np.concatenate([v for _, v in points]) if points else np.zeros(0)
    values = values[np.isfinite(values)]
    if not len(values):
        draw.text(((left + right) // 2, (top + bottom) // 2), "no data", fill=(120, 120, 120), font=face,
                  anchor="mm")
        return
    x_low, x_high = float(steps.min()), float(steps.max())
    y_low, y_high = float(values.min()), float(values.max())
    x_high = x_high if x_high > x_low else x_low + 1.0
    pad = 0.05 * (y_high - y_low) or max(abs(y_high) * 0.05, 1e-6)
    y_low, y_high = y_low - pad, y_high + pad
    draw.rectangle((left, top, right, bottom), outline=_GRID)
    for value in (y_low + pad, y_high - pad):
        y = bottom - (value - y_low) / (y_high - y_low) * (bottom - top)
        draw.text((left - 4, y), f"{value:.3g}", fill=_INK, font=face, anchor="rm")
    draw.text((left, bottom + 4), f"{x_low:g}", fill=_INK, font=face, anchor="la")
    draw.text((right, bottom + 4), f"step {x_high:g}", fill=_INK, font=face, anchor="ra")
    for k, ((label, _, _), (s, v)) in enumerate(zip(panel.lines, points)):
        keep = np.isfinite(v)
        xy = [(left + (a - x_low) / (x_high - x_low) * (right - left),
               bottom - (b - y_low) / (y_high - y_low) * (bottom - top)) for a, b in zip(s[keep], v[keep])]
        colour = PALETTE[k % len(PALETTE)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        elif xy:
            x, y = xy[0]
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        if len(panel.lines) > 1:
            draw.text((right - 4, top + 4 + 13 * k), label, fill=colour, font=face, anchor="ra")
