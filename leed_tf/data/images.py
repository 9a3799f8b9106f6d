"""Robust image decoding: any PIL-readable file to an upright RGB uint8 face.

Every real data set goes through ``decode_image``: EXIF orientation applied,
every PIL mode (greyscale, 16-bit, palette, CMYK, alpha) mapped to 8-bit RGB,
an optional face box cropped, and the result resized to a square with
antialiasing. Bad input raises ``BadImageError`` naming the file and the
reason, so ``decode_files`` can skip it with a warning instead of stopping a
run over one broken JPEG.

Boxes are ``(top, left, bottom, right)`` in pixels of the upright image, the
row/column order in which docs/design.md states the RaFD face box.

This module also owns every conversion between the three pixel ranges:
``uint8`` [0, 255] (stored and decoded faces), ``float32`` [-1, 1], the
networks' range (``unit`` here), and ``float32`` [0, 1] (``uint8 / 255``),
what the editor, the export and its clients take and return. Each works on
numpy arrays and on TensorFlow tensors (also inside ``tf.function`` /
``tf.data``) and returns the same kind.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
from absl import logging
from PIL import Image, ImageFile

from leed_tf.data.records import Box

# Truncated files must fail loudly: silently padding them with grey would put
# half-faces in the training set.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Larger than any face photo (RaFD is 0.7 MP) yet small enough that a crafted
# header cannot make us allocate gigabytes.
MAX_PIXELS = 100_000_000

# Resampling keeps at least this many source pixels per output pixel before
# the final LANCZOS pass (JPEG DCT scaling and ``Image.reduce`` do the rest):
# the same speed/quality trade as ``Image.thumbnail``.
_REDUCING_GAP = 2.0

_PROGRESS_EVERY = 500

_EXIF_ORIENTATION = 0x0112
# What turns a stored image with each EXIF orientation upright (the table of
# ``ImageOps.exif_transpose``); 5-8 swap width and height.
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)



class BadImageError(ValueError):
    """An input that is not a usable image (corrupt, truncated, empty, ...).

    Attributes:
      name: The file name (or ``"<bytes>"``) the error is about.
      reason: Why it cannot be used.
    """

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


def walk_files(root: str) -> Iterator[str]:
    """Every non-hidden file under ``root``, in a deterministic order."""
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(folder, name)


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (``IMAGE_EXTENSIONS``)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def center_square_box(width: int, height: int) -> Box:
    """The largest centred square of a ``width`` x ``height`` image.

    Used when a data set has no face box, so that resizing to a square keeps
    the aspect ratio instead of squashing the face.

    Args:
      width: Image width in pixels.
      height: Image height in pixels.

    Returns:
      ``(top, left, bottom, right)``.
    """
    side = min(width, height)
    top = (height - side) // 2
    left = (width - side) // 2
    return (top, left, top + side, left + side)


def _check_box(box) -> Box:
    """Validates a ``(top, left, bottom, right)`` box (a caller error if bad)."""
    try:
        top, left, bottom, right = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"A box is (top, left, bottom, right) in pixels, got {box!r}.") from None
    if top < 0 or left < 0 or bottom <= top or right <= left:
        raise ValueError(f"Box (top, left, bottom, right) = {box!r} is empty or negative.")
    return (top, left, bottom, right)


def _stored_box(box: Box, orientation: int, width: int, height: int):
    """Maps an upright ``(top, left, bottom, right)`` box to ``(left, top,
    right, bottom)`` in the stored image (``width`` x ``height``) that EXIF
    ``orientation`` turns upright."""
    top, left, bottom, right = box
    xs, ys = (left, right), (top, bottom)
    flipped_x, flipped_y = (width - right, width - left), (height - bottom, height - top)
    # Orientations 5-8 swap axes: the upright rows come from stored columns.
    flipped_x_of_y = (width - bottom, width - top)
    flipped_y_of_x = (height - right, height - left)
    x, y = {1: (xs, ys), 2: (flipped_x, ys), 3: (flipped_x, flipped_y), 4: (xs, flipped_y),
            5: (ys, xs), 6: (ys, flipped_y_of_x), 7: (flipped_x_of_y, flipped_y_of_x),
            8: (flipped_x_of_y, xs)}[orientation]
    return (x[0], y[0], x[1], y[1])


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Converts any PIL mode to 8-bit RGB.

    Transparent pixels are composited over white: the studio face sets we
    read (RaFD, CFEE) are shot against a white background, so a cut-out face
    then looks like the rest of the data.
    """
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in ("L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX") and (
            "transparency" not in img.info):
        return img.convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        # 16-bit samples (PIL reads 16-bit greyscale PNG/TIFF as I;16 or I):
        # the high byte is the 8-bit value; clipping would saturate all but
        # the darkest 256 levels to white.
        values = np.asarray(img).astype(np.int64)
        grey = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        # Float images have no standard range; [0, 1] (the usual scientific
        # convention) is scaled, anything larger is taken as 0-255.
        values = np.asarray(img, np.float64)
        if np.nanmax(values, initial=0.0) <= 1.0:
            values = values * 255.0
        grey = np.clip(np.nan_to_num(np.rint(values)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    try:
        rgba = np.asarray(img.convert("RGBA"), np.uint16)
    except (ValueError, OSError) as e:
        raise BadImageError(name, f"unsupported image mode {mode!r} ({e})") from None
    alpha = rgba[..., 3:]
    rgb = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def _open(data: bytes, name: str, max_pixels: int) -> tuple[Image.Image, int]:
    """The opened (not yet decoded) image and its EXIF orientation, after
    the checks every decoder makes: not empty, readable, within
    ``max_pixels`` (read from the header, before any pixel is decoded)."""
    if not data:
        raise BadImageError(name, "empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        # PIL's own guard (2 x Image.MAX_IMAGE_PIXELS) fires on the header
        # before ours can; report it in the same words.
        raise BadImageError(name, f"image exceeds the limit of {max_pixels / 1e6:.1f} "
                            f"megapixels ({e})") from None
    except Exception as e:  # PIL raises many types for garbage input.
        raise BadImageError(name, f"not a readable image ({type(e).__name__}: {e})") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise BadImageError(name, f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        img.close()
        raise BadImageError(
            name, f"image of {width}x{height} = {width * height / 1e6:.1f} megapixels "
            f"exceeds the limit of {max_pixels / 1e6:.1f} megapixels")
    try:
        orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # A malformed EXIF block must not cost the image.
        orientation = 1
    return img, orientation if orientation in _UPRIGHT else 1


def decode_photo(data: bytes, *, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decodes a whole image, upright and RGB at its full size (what face
    alignment, ``leed_tf.inference.align``, starts from).

    The same checks and conversions as ``decode_image``, without crop or
    resize.

    Returns:
      ``uint8 [H, W, 3]``.

    Raises:
      BadImageError: Empty, corrupt, truncated or non-image data, or an
        image over ``max_pixels``.
    """
    img, orientation = _open(data, name, max_pixels)
    with img:
        try:
            img.load()
        except Exception as e:  # Truncated data, bad Huffman codes, ...
            raise BadImageError(name, f"cannot decode ({type(e).__name__}: {e})") from None
        try:
            upright = img.transpose(_UPRIGHT[orientation]) if orientation != 1 else img
            rgb = _to_rgb(upright, name)
        except BadImageError:
            raise
        except Exception as e:
            raise BadImageError(name, f"cannot convert ({type(e).__name__}: {e})") from None
        return np.array(rgb, np.uint8)


def decode_image(data: bytes, box: Sequence[int] | None = None, size: int = 128, *,
                 name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decodes an encoded image into an upright, cropped, square RGB face.

    Args:
      data: The encoded file (JPEG, PNG, or anything else PIL reads).
      box: ``(top, left, bottom, right)`` crop in pixels of the upright
        (EXIF-rotated) image; ``None`` crops the centred square.
      size: Output side in pixels.
      name: The file name used in error messages.
      max_pixels: Largest accepted width x height, checked on the header
        before any pixel is decoded (decompression bomb guard). PIL's own
        limit, twice ``Image.MAX_IMAGE_PIXELS``, applies as well.

    Returns:
      ``uint8 [size, size, 3]`` RGB.

    Raises:
      BadImageError: Empty, corrupt, truncated or non-image data; an image
        over ``max_pixels``; an image smaller than ``box``.
      ValueError: A malformed ``box`` or ``size`` (a caller error).
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}.")
    if box is not None:
        box = _check_box(box)
    img, orientation = _open(data, name, max_pixels)
    with img:
        width, height = img.size
        upright = (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)
        if box is None:
            box = center_square_box(*upright)
        top, left, bottom, right = box
        if bottom > upright[1] or right > upright[0]:
            raise BadImageError(
                name, f"image of {upright[0]}x{upright[1]} (width x height) is smaller "
                f"than the face box (top, left, bottom, right) = {box}")

        # JPEG can decode at 1/2, 1/4 or 1/8 scale almost for free; keep at
        # least _REDUCING_GAP source pixels per output pixel for the final
        # antialiased resize.
        scale = 1
        crop_side = min(bottom - top, right - left)
        while scale < 8 and crop_side / (2 * scale) >= _REDUCING_GAP * size:
            scale *= 2
        if scale > 1:
            try:
                drafted = img.draft(None, (width // scale, height // scale))
            except Exception:
                drafted = None
            scale = width / drafted[1][2] if drafted else 1

        try:
            img.load()
        except Exception as e:  # Truncated data, bad Huffman codes, ...
            raise BadImageError(name, f"cannot decode ({type(e).__name__}: {e})") from None
        try:
            # Crop in stored coordinates, then turn upright: a reduced image
            # is rounded up in size, and cropping after a flip would shift
            # the box by that fraction of a pixel. Cropping first also keeps
            # ``resize(box=...)``'s filter from reaching past the box, and
            # rounding inwards drops reduced pixels straddling its edge.
            x0, y0, x1, y1 = _stored_box(box, orientation, width, height)
            crop = (math.ceil(x0 / scale - 1e-6), math.ceil(y0 / scale - 1e-6),
                    math.floor(x1 / scale + 1e-6), math.floor(y1 / scale + 1e-6))
            img = img.crop(crop)
            if orientation != 1:
                img = img.transpose(_UPRIGHT[orientation])
            img = _to_rgb(img, name)
            resized = img.resize((size, size), Image.Resampling.LANCZOS,
                                 reducing_gap=_REDUCING_GAP + 1.0)
        except BadImageError:
            raise
        except Exception as e:
            raise BadImageError(name, f"cannot convert ({type(e).__name__}: {e})") from None
    out = np.asarray(resized, np.uint8)
    if out.shape != (size, size, 3):  # Guards the conversion table above.
        raise BadImageError(name, f"decoded to unexpected shape {out.shape}")
    return out


def _decode_file(path: str, box, size: int, max_pixels: int) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BadImageError(path, f"cannot read ({e.strerror or e})") from None
    return decode_image(data, box, size, name=path, max_pixels=max_pixels)


def _is_single_box(boxes_or_box) -> bool:
    if boxes_or_box is None:
        return True
    try:
        return len(boxes_or_box) == 4 and all(np.isscalar(v) for v in boxes_or_box)
    except TypeError:
        return False


def decode_files(paths: Sequence[str], boxes_or_box=None, size: int = 128,
                 num_workers: int | None = None, *, max_pixels: int = MAX_PIXELS):
    """Decodes many image files in parallel, skipping the bad ones.

    Threads suffice: PIL releases the GIL while decoding and resizing.

    Args:
      paths: Image file paths.
      boxes_or_box: One ``(top, left, bottom, right)`` box for every file, a
        sequence of boxes (or ``None``s) aligned with ``paths``, or ``None``
        for the centred square of each image.
      size: Output side in pixels.
      num_workers: Decoding threads; ``None`` uses ``os.cpu_count()``, 1
        decodes in the calling thread.
      max_pixels: See ``decode_image``.

    Returns:
      ``(images, kept_indices, failures)``: ``uint8 [M, size, size, 3]`` for
      the ``M`` decoded files, their ``int64 [M]`` indices into ``paths`` (in
      order), and ``(path, reason)`` for every skipped file.

    Raises:
      ValueError: ``boxes_or_box`` is neither one box nor one per path.
    """
    paths = [os.fspath(p) for p in paths]
    if _is_single_box(boxes_or_box):
        boxes = [None if boxes_or_box is None else _check_box(boxes_or_box)] * len(paths)
    else:
        boxes = [None if b is None else _check_box(b) for b in boxes_or_box]
        if len(boxes) != len(paths):
            raise ValueError(f"Got {len(boxes)} boxes for {len(paths)} paths.")
    num_workers = max(1, int(num_workers or os.cpu_count() or 1))

    images = np.zeros((len(paths), size, size, 3), np.uint8)
    ok = np.zeros(len(paths), bool)
    failures: list[tuple[str, str]] = []
    start = time.monotonic()

    def work(i: int):
        try:
            images[i] = _decode_file(paths[i], boxes[i], size, max_pixels)
            return None
        except BadImageError as e:
            return e.reason

    def results():
        if num_workers == 1 or len(paths) <= 1:
            yield from map(work, range(len(paths)))
        else:
            with ThreadPoolExecutor(num_workers, thread_name_prefix="decode") as pool:
                yield from pool.map(work, range(len(paths)))

    for i, reason in enumerate(results()):
        if reason is None:
            ok[i] = True
        else:
            failures.append((paths[i], reason))
            logging.warning("Skipping bad image %s: %s", paths[i], reason)
        done = i + 1
        if done % _PROGRESS_EVERY == 0 and done < len(paths):
            logging.info("decoded %d/%d files (%.0f/s)", done, len(paths),
                         done / max(time.monotonic() - start, 1e-9))
    kept = np.flatnonzero(ok).astype(np.int64)
    if failures:
        images = images[kept]
    logging.info("decoded %d images, skipped %d bad files (%.1f s)", len(kept), len(failures),
                 time.monotonic() - start)
    return images, kept, failures


def _is_tf_tensor(x) -> bool:
    # Only consult TensorFlow if the caller already imported it: plain numpy
    # users should not pay for a TensorFlow import.
    tf = sys.modules.get("tensorflow")
    return tf is not None and tf.is_tensor(x)


def scale_to_unit(images):
    """Maps ``uint8`` pixels [0, 255] to ``float32`` [-1, 1] (the networks' range)."""
    if _is_tf_tensor(images):
        import tensorflow as tf
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return np.asarray(images, np.float32) / np.float32(127.5) - np.float32(1.0)


def to_uint8(images):
    """Inverse of ``scale_to_unit``: [-1, 1] to ``uint8``, clipped and rounded."""
    if _is_tf_tensor(images):
        import tensorflow as tf
        values = (tf.cast(images, tf.float32) + 1.0) * 127.5
        return tf.cast(tf.round(tf.clip_by_value(values, 0.0, 255.0)), tf.uint8)
    values = (np.asarray(images, np.float32) + np.float32(1.0)) * np.float32(127.5)
    return np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)


def as_unit_images(images) -> np.ndarray:
    """``uint8`` images to float32 in [-1, 1]; float images (taken to be in
    [-1, 1] already) as float32, unchanged.

    Raises:
      ValueError: for an array that is neither ``uint8`` nor floating point.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return scale_to_unit(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"Images must be uint8 (0..255) or float ([-1, 1]), got {images.dtype}.")
    return images.astype(np.float32, copy=False)


def unit_from_01(images01):
    """[0, 1] to the networks' [-1, 1]."""
    return images01 * 2.0 - 1.0


def unit_to_01(unit):
    """The networks' [-1, 1] to [0, 1], clipped."""
    if _is_tf_tensor(unit):
        import tensorflow as tf
        return tf.clip_by_value((unit + 1.0) * 0.5, 0.0, 1.0)
    return np.clip((np.asarray(unit, np.float32) + np.float32(1.0)) * np.float32(0.5), 0.0, 1.0)


def uint8_to_01(pixels):
    """``uint8`` [0, 255] to float32 [0, 1]."""
    if _is_tf_tensor(pixels):
        import tensorflow as tf
        return tf.cast(pixels, tf.float32) / 255.0
    return np.asarray(pixels).astype(np.float32) / np.float32(255.0)


def uint8_from_01(images01):
    """[0, 1] to ``uint8``, clipped and rounded (as the export's PNG output)."""
    if _is_tf_tensor(images01):
        import tensorflow as tf
        return tf.cast(tf.round(tf.clip_by_value(images01, 0.0, 1.0) * 255.0), tf.uint8)
    return np.rint(np.clip(np.asarray(images01, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def unique_rows(*arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct images of several ``[N_i, ...]`` arrays, and where each row went.

    E.g. faces and their real neutral faces, which are faces of the same set:
    work done per distinct image (encoding) is then done once.

    Returns:
      ``(unique, rows)``: ``unique[rows[i][j]]`` equals ``arrays[i][j]``.
    """
    index, unique, rows = {}, [], []
    for array in arrays:
        positions = np.empty(len(array), np.int64)
        for j, image in enumerate(array):
            key = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()
            if key not in index:
                index[key] = len(unique)
                unique.append(image)
            positions[j] = index[key]
        rows.append(positions)
    return np.stack(unique), rows
