"""What the ``Editor`` takes as an image, before any face is cut: whether
an argument is one image or a batch, sizes read from headers, whole photos
decoded upright, and the square around the face OpenCV's Haar cascade finds
(``detect_face=True``). Face alignment with landmarks is
``leed_tf.inference.align``.
"""

from __future__ import annotations

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from leed_tf.data.images import BadImageError, decode_photo

# Haar boxes cover brows to chin; the training crops also hold hair and neck.
FACE_SCALE = 2.0
FACE_SHIFT = 0.1
_OPENCV_HINT = ("Face detection needs OpenCV: pip install 'opencv-python-headless<5' "
                "(or pip install -e '.[face]').")


def is_single(images) -> bool:
    """Whether ``images`` is one image (a path, bytes, PIL image or [H, W(, C)] array), not a batch."""
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)):
        return True
    if isinstance(images, np.ndarray) or tf.is_tensor(images):
        return len(images.shape) in (2, 3)
    return False


def peek_size(data: bytes):
    """Width and height from the header, or None if PIL cannot tell."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # decode_image reports unreadable data properly.
        return None


def source_size(image):
    """(width, height) of an image argument before any crop, or None if
    unknown (an unreadable file is reported when it is decoded)."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as img:
                return img.size
        except Exception:
            return None
    if isinstance(image, (bytes, bytearray, memoryview)):
        return peek_size(bytes(image))
    if isinstance(image, Image.Image):
        return image.size
    shape = getattr(image, "shape", None)
    return (int(shape[1]), int(shape[0])) if shape is not None and len(shape) in (2, 3) else None


def describe(image) -> str:
    """A file's path, else the argument's type, for messages."""
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"<{type(image).__name__}>"


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encoded(image) -> tuple[bytes, str] | None:
    """A path's, bytes' or PIL image's encoded bytes and name (PIL images
    upright, as PNG); None for any other argument.

    Raises:
      BadImageError: a file that cannot be read (naming it).
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        try:
            with open(path, "rb") as f:
                return f.read(), path
        except OSError as e:
            raise BadImageError(path, f"cannot read ({e.strerror or e})") from None
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image), "<bytes>"
    if isinstance(image, Image.Image):
        return png_bytes(ImageOps.exif_transpose(image)), "<PIL image>"
    return None


def load_photo(image) -> tuple[np.ndarray | None, str]:
    """A whole image argument as ``uint8 [H, W, 3]`` upright RGB, and its
    name; ``None`` for arrays other than ``uint8 [H, W, 3]`` (the caller
    converts those).

    Raises:
      BadImageError: an unreadable file or image (naming it).
    """
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        return image, "<array>"
    found = encoded(image)
    if found is None:
        return None, describe(image)
    data, name = found
    return decode_photo(data, name=name), name


def detect_face_box(data: bytes, name: str = "<bytes>", scale: float = FACE_SCALE,
                    shift: float = FACE_SHIFT) -> tuple[int, int, int, int]:
    """A square crop around the largest face OpenCV's Haar cascade finds.

    Args:
      data: The encoded image.
      name: Its name, for errors.
      scale: Crop side over the detected box's side (Haar boxes span brows to
        chin; the training crops include hair and neck).
      shift: Upward shift of the crop's centre, in detected box heights.

    Returns:
      ``(top, left, bottom, right)`` in the upright image, for ``decode_image``.

    Raises:
      ImportError: OpenCV is not installed (with the install command).
      BadImageError: unreadable image, or no face found.
    """
    try:
        import cv2
    except ImportError:
        raise ImportError(_OPENCV_HINT) from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            grey = np.asarray(ImageOps.exif_transpose(img).convert("L"))
    except Exception as e:
        raise BadImageError(name, f"not a readable image ({type(e).__name__}: {e})") from None
    height, width = grey.shape
    factor = max(1.0, max(height, width) / 640.0)  # Detection on at most 640 px is enough.
    if factor > 1.0:
        grey = cv2.resize(grey, (round(width / factor), round(height / factor)), interpolation=cv2.INTER_AREA)
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        raise BadImageError(name, "no face found by OpenCV's Haar cascade; crop the face yourself "
                            "or do without face detection")
    x, y, w, h = (float(v) * factor for v in max(faces, key=lambda f: f[2] * f[3]))
    side = min(scale * max(w, h), width, height)
    centre_x, centre_y = x + w / 2.0, y + h / 2.0 - shift * h
    left = int(round(min(max(centre_x - side / 2.0, 0.0), width - side)))
    top = int(round(min(max(centre_y - side / 2.0, 0.0), height - side)))
    side = int(side)
    return (top, left, top + side, left + side)
