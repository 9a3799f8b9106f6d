"""Image contact sheets: faces tiled into one labelled grid."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from leed_tf.data.records import FaceSet


def contact_sheet(faces, rows: int, cols: int, column_labels: Sequence[str] | None = None,
                  row_labels: Sequence[str] | None = None, pad: int = 2) -> np.ndarray:
    """Tiles faces row-major into one image, with optional text labels.

    Args:
      faces: A :class:`FaceSet` or ``uint8 [N, S, S, 3]``; the first
        ``rows * cols`` are used.
      rows: Grid rows.
      cols: Grid columns.
      column_labels: Text above each column.
      row_labels: Text left of each row.
      pad: Pixels between tiles.

    Returns:
      ``uint8 [H, W, 3]`` image on a white background.
    """
    from PIL import Image, ImageDraw

    images = faces.images if isinstance(faces, FaceSet) else np.asarray(faces)
    if len(images) < rows * cols:
        raise ValueError(f"{rows}x{cols} grid needs {rows * cols} faces, got {len(images)}.")
    s = images.shape[1]
    top = 14 if column_labels else 0
    left = 34 if row_labels else 0
    sheet = np.full((top + rows * (s + pad) + pad, left + cols * (s + pad) + pad, 3), 255, np.uint8)
    for n in range(rows * cols):
        r, c = divmod(n, cols)
        y, x = top + pad + r * (s + pad), left + pad + c * (s + pad)
        sheet[y:y + s, x:x + s] = images[n]
    if column_labels or row_labels:
        pil = Image.fromarray(sheet)
        draw = ImageDraw.Draw(pil)
        for c, text in enumerate(column_labels or ()):
            x = left + pad + c * (s + pad) + s // 2
            draw.text((x, 2), str(text), fill=(0, 0, 0), anchor="ma")
        for r, text in enumerate(row_labels or ()):
            y = top + pad + r * (s + pad) + s // 2
            draw.text((2, y), str(text), fill=(0, 0, 0), anchor="lm")
        sheet = np.asarray(pil)
    return sheet
