"""Encoded images inside the serving graph: JPEG/PNG headers read before
decoding, the face crop, and the in-graph checks whose messages name the
input (docs/serving.md, "Hostile input").

Every check is a ``tf.debugging.Assert`` with one readable message; a failed
one fails the request with an ``InvalidArgumentError`` and the server carries
on. A header is read and checked before ``tf.io.decode_image`` allocates
anything, so a hostile file costs at most ``max_pixels`` worth of decoding.
"""

from __future__ import annotations

import tensorflow as tf

from leed_tf.data.images import uint8_from_01, uint8_to_01

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A PNG's width and height are the first 8 bytes of its IHDR chunk's data.
_PNG_MIN_BYTES = 33
# JPEG markers that open a frame header (SOF0-3, 5-7, 9-11, 13-15): sample
# precision, height and width follow the segment length.
_JPEG_SOF_MARKERS = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
# Markers without a length field (TEM, RST0-7).
_JPEG_STANDALONE_MARKERS = (0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7)
# Markers that cannot come before the frame header (SOI, EOI, SOS).
_JPEG_NOT_BEFORE_FRAME = (0xD8, 0xD9, 0xDA)
# Segments walked looking for the frame header: encoders write fewer than 30
# (APPn, DQT, DHT, COM); the cap bounds the work a hostile file can ask for.
_JPEG_MAX_SEGMENTS = 1024
# Larger sides than this are refused whatever max_pixels says, so that
# height * width cannot overflow int64.
_MAX_SIDE = 2**31 - 1

def check(condition, template: str, *values):
    """``tf.debugging.Assert`` with one readable message: ``template``'s ``{}``
    are filled with ``values`` (``tf.strings.format``)."""
    message = tf.strings.format(template, values) if values else template
    return tf.debugging.Assert(condition, [message])


def after(checks, tensor):
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(tensor)


def decode_face(data, index, name: str, image_size: int, box, max_pixels: int):
    """One JPEG/PNG -> face crop ``[S, S, 3]`` in [0, 1], validated first.

    The header is read here (size, and that it is a header at all) and
    checked before ``decode_image`` allocates anything, so a hostile file
    costs at most ``max_pixels`` worth of decoding and is refused with a
    message naming it.
    """
    where = f"{name}[{{}}]"
    length = tf.strings.length(data)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
    is_png = tf.equal(tf.strings.substr(data, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
    checks = [
        check(length > 0, where + " is empty (0 bytes).", index),
        check(tf.logical_or(is_jpeg, is_png), where + " is not a JPEG or PNG image ({} bytes that "
              "start with neither signature).", index, length),
        check(tf.logical_or(is_jpeg, length >= _PNG_MIN_BYTES),
              where + " is a truncated PNG ({} bytes).", index, length),
    ]
    with tf.control_dependencies(checks):
        height, width, readable = tf.cond(is_jpeg, lambda: jpeg_size(data), lambda: png_size(data))
    header_checks = [
        check(tf.logical_or(is_png, readable), where + " is a JPEG without a readable frame header "
              "(no SOF marker among its header segments; {} bytes).", index, length),
        check(tf.logical_or(is_jpeg, readable), where + " is a PNG whose first chunk is not IHDR.",
              index),
    ]
    side_limit = min(max_pixels, _MAX_SIDE)
    with tf.control_dependencies(header_checks):
        sides_ok = tf.logical_and(tf.logical_and(height > 0, width > 0),
                                  tf.logical_and(height <= side_limit, width <= side_limit))
        # With both sides within the limit the product cannot overflow.
        size_ok = tf.logical_and(sides_ok, height * width <= max_pixels)
    size_check = check(size_ok, where + f" has an invalid size: {{}} x {{}} pixels (the limit is "
                       f"{max_pixels} pixels).", index, width, height)
    with tf.control_dependencies([size_check]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return crop_and_resize(image, index, where, image_size, box)

def crop_and_resize(image, index, where: str, image_size: int, box):
    s = image_size
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    if box is None:
        side = tf.minimum(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        bottom, right = top + side, left + side
    else:
        # An image that is already a face crop is used as it is.
        is_crop = tf.logical_and(tf.equal(height, s), tf.equal(width, s))
        top, left, bottom, right = (tf.where(is_crop, default, tf.constant(v, tf.int32))
                                    for v, default in zip(box, (0, 0, s, s)))
        fits = check(tf.logical_and(height >= bottom, width >= right),
                     where + f" of {{}} x {{}} pixels is smaller than the face box (top, left, bottom, "
                     f"right) = {box}.", index, width, height)
        image = after([fits], image)
    crop = tf.cast(image[top:bottom, left:right], tf.float32)
    resized = tf.image.resize(crop[None], [s, s], method="lanczos3", antialias=True)[0]
    return uint8_to_01(tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8))

def encode_png(images):
    """[0, 1] images as PNG strings ``[B]``."""
    pixels = uint8_from_01(images)
    return tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string))

def jpeg_size(data):
    """``(height, width, readable)`` from a JPEG's frame header.

    The marker segments after SOI are walked to the first SOF. Read here
    rather than by ``tf.image.extract_jpeg_shape`` so that a malformed header
    is refused by a check that names the input (the op's own error cannot).
    """
    length = tf.cast(tf.strings.length(data), tf.int64)
    # Reads at or past the end see zeros, and are refused below.
    padded = tf.strings.join([data, b"\0" * 9])

    # state: 0 searching, 1 frame header read, 2 malformed.
    def searching(position, state, height, width):
        return tf.equal(state, 0)

    def next_segment(position, state, height, width):
        read_at = tf.minimum(position, length)
        head = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, read_at, 9), tf.uint8), tf.int64)
        marker = head[1]
        is_frame = _any_equal(marker, _JPEG_SOF_MARKERS)
        is_fill = tf.equal(marker, 0xFF)
        standalone = _any_equal(marker, _JPEG_STANDALONE_MARKERS)
        segment = head[2] * 256 + head[3]
        malformed = tf.reduce_any(tf.stack([
            tf.not_equal(head[0], 0xFF), position + 4 > length, _any_equal(marker, _JPEG_NOT_BEFORE_FRAME),
            tf.logical_and(is_frame, position + 9 > length),
            tf.logical_and(tf.logical_not(is_fill | standalone), segment < 2)]))
        state = tf.where(malformed, 2, tf.where(is_frame, 1, 0))
        step = tf.where(is_fill, tf.constant(1, tf.int64), tf.where(standalone, tf.constant(2, tf.int64),
                                                                    2 + segment))
        found = tf.logical_and(is_frame, tf.logical_not(malformed))
        height = tf.where(found, head[5] * 256 + head[6], height)
        width = tf.where(found, head[7] * 256 + head[8], width)
        return position + step, state, height, width

    zero = tf.constant(0, tf.int64)
    _, state, height, width = tf.while_loop(
        searching, next_segment, (zero + 2, tf.constant(0), zero, zero),
        maximum_iterations=_JPEG_MAX_SEGMENTS, parallel_iterations=1)
    return height, width, tf.equal(state, 1)


def png_size(data):
    """``(height, width, readable)`` from a PNG's IHDR chunk, which must come first."""
    # int64: a PNG side may be up to 2**32 - 1, and the pixel count more.
    header = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64)

    def big_endian(b):
        return ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]

    is_ihdr = tf.equal(tf.strings.substr(data, 12, 4), b"IHDR")
    return big_endian(header[4:8]), big_endian(header[0:4]), is_ihdr


def _any_equal(value, constants):
    return tf.reduce_any(tf.equal(value, tf.constant(constants, value.dtype)))
