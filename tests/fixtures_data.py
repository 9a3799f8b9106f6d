"""Builds small image files and data set trees in a temporary folder.

Nothing binary is committed: every fixture is drawn with PIL at test time.
Faces are flat colours that encode their labels (``label_color``), drawn
only inside the data set's face box, so a test can check both that a decoded
face belongs to its record and that the crop hit the box.
"""

from __future__ import annotations

import csv
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

RAFD_SIZE = (681, 1024)  # width, height
RAFD_BOX = (90, 30, 711, 651)  # top, left, bottom, right


def label_color(subject_index: int, expression_index: int) -> tuple[int, int, int]:
    """A colour far (>= 40 per channel step) from every other label's colour."""
    return (40 + 40 * (subject_index % 5), 40 + 25 * (expression_index % 8),
            200 - 40 * (subject_index // 5 % 4))


def boxed_image(color, size=RAFD_SIZE, box=RAFD_BOX, background=(0, 0, 0), mode="RGB"):
    """An image of ``background`` with ``box`` filled with ``color``."""
    img = Image.new("RGB", size, background)
    top, left, bottom, right = box
    img.paste(color, (left, top, right, bottom))
    return img.convert(mode) if mode != "RGB" else img


def encode(img: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}) | kwargs)
    return buf.getvalue()


def write(path, data: bytes) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def png_bytes(width: int, height: int, bit_depth: int, color_type: int,
              raw_rows: bytes | None = None) -> bytes:
    """A hand-made PNG (for formats PIL cannot write, e.g. 16-bit RGB).

    ``raw_rows`` are the unfiltered scanlines without filter bytes; ``None``
    writes a header-only file (no pixel data).
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if raw_rows is not None:
        row_len = len(raw_rows) // height
        filtered = b"".join(b"\x00" + raw_rows[i * row_len:(i + 1) * row_len]
                            for i in range(height))
        out += chunk(b"IDAT", zlib.compress(filtered))
    return out + chunk(b"IEND", b"")


def png16_rgb(values: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of ``uint16 [H, W, 3]`` values."""
    height, width, _ = values.shape
    return png_bytes(width, height, 16, 2, values.astype(">u2").tobytes())


def bad_files() -> dict[str, bytes]:
    """File suffix -> contents of the four kinds of bad file docs/design.md names."""
    good = encode(boxed_image((120, 60, 30)))
    corrupt = bytearray(good)
    # Keep the JPEG markers so PIL identifies the file, but wreck the
    # quantisation/Huffman tables and the entropy-coded data.
    corrupt[20:len(corrupt) - 2] = bytes((i * 37 + 11) % 256 for i in range(len(corrupt) - 22))
    return {
        "corrupt": bytes(corrupt),
        "truncated": good[:len(good) // 2],
        "empty": b"",
        "text": b"This is not an image, just text saved with a .jpg name.\n",
    }


def make_rafd_tree(root, subjects=("01", "02", "03"),
                   expressions=("happy", "neutral", "sad"),
                   angles=("000", "045", "090", "135", "180"), gazes=("frontal", "left"),
                   nested=True, distractors=True) -> dict[str, tuple]:
    """Writes RaFD-named 681x1024 JPEGs; returns path -> (subject, expression, angle, gaze)."""
    from leed_tf.data.records import RAFD_EXPRESSIONS
    ethnicity = {0: "Caucasian", 1: "Moroccan", 2: "Kid"}
    written = {}
    for s_i, subject in enumerate(subjects):
        gender = "female" if s_i % 2 else "male"
        folder = os.path.join(root, f"batch{s_i % 2}") if nested else os.fspath(root)
        for expression in expressions:
            color = label_color(s_i, RAFD_EXPRESSIONS.index(expression))
            data = encode(boxed_image(color))
            for angle in angles:
                for gaze in gazes:
                    name = (f"Rafd{angle}_{subject}_{ethnicity[s_i % 3]}_{gender}_"
                            f"{expression}_{gaze}.jpg")
                    written[write(os.path.join(folder, name), data)] = (
                        subject, expression, angle, gaze)
    if distractors:
        write(os.path.join(root, "README.txt"), b"Radboud Faces Database\n")
        write(os.path.join(root, "Rafd090_01_Caucasian_male_bored_frontal.jpg"), data)
        write(os.path.join(root, "thumbs", "Rafd090_thumb.jpg"), data)
    return written


def make_cfee_tree(root, subjects=("001", "002", "003"), codes=(1, 2, 3), per_code=1,
                   top="CFEE_Database_230") -> dict[str, tuple]:
    """Writes CFEE's nested archive layout; returns path -> (subject, code).

    Groups, image-folder names and extensions vary in case, as they may in
    an unpacked archive.
    """
    written = {}
    img_folders = ("Images", "images_part2", "IMAGES")
    exts = (".jpg", ".JPG", ".png")
    for s_i, subject in enumerate(subjects):
        folder = os.path.join(root, top, f"Group{s_i % 2 + 1}", img_folders[s_i % 3])
        for code in codes:
            for n in range(per_code):
                ext = exts[(s_i + code) % 3]
                img = boxed_image(label_color(s_i, code % 8), size=(120, 90),
                                  box=(0, 0, 90, 120))
                data = encode(img, "PNG" if ext == ".png" else "JPEG")
                path = write(os.path.join(folder, f"{code:02d}_{subject}_{n + 1:04d}{ext}"), data)
                written[path] = (subject, code)
    write(os.path.join(root, top, "AU_annotation_all_subjects.xls"), b"not parsed")
    return written


def make_folder_tree(root, layout: dict[str, list[str]], size=(40, 60)) -> dict[str, tuple]:
    """Writes ``root/<expression>/<file>``; returns path -> (expression, file name)."""
    written = {}
    for e_i, (expression, names) in enumerate(sorted(layout.items())):
        for s_i, name in enumerate(names):
            img = boxed_image(label_color(s_i, e_i), size=size, box=(0, 0, size[1], size[0]))
            fmt = "PNG" if name.lower().endswith(".png") else "JPEG"
            written[write(os.path.join(root, expression, name), encode(img, fmt))] = (
                expression, name)
    return written


def write_manifest(path, rows, header=("path", "subject", "expression")) -> str:
    os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return os.fspath(path)
