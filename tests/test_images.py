"""Decoding every kind of image file to an upright RGB uint8 face."""

import io
import logging

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

import fixtures_data as fx
from leed_tf.data import images


def decode(img_or_bytes, fmt="PNG", box=None, size=8, **kwargs):
    data = img_or_bytes if isinstance(img_or_bytes, bytes) else fx.encode(img_or_bytes, fmt)
    out = images.decode_image(data, box, size, **kwargs)
    assert out.dtype == np.uint8 and out.shape == (size, size, 3)
    return out


def test_exif_orientation_is_applied():
    # Upright: 40 wide x 60 tall, red top half, blue bottom half. Stored
    # rotated a quarter turn with Orientation 6 ("rotate 90 CW to view").
    upright = Image.new("RGB", (40, 60), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 40, 30))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = fx.encode(stored, "JPEG", exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).size == (60, 40)
    out = decode(data, size=16).astype(int)
    assert out[1, 8, 0] > 200 and out[1, 8, 2] < 60    # top is red
    assert out[14, 8, 2] > 200 and out[14, 8, 0] < 60  # bottom is blue


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pil_exif_transpose(orientation):
    rng = np.random.default_rng(orientation)
    stored = Image.fromarray(rng.integers(0, 256, (30, 50, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = fx.encode(stored, "PNG", exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    box = (3, 5, 21, 27)  # top, left, bottom, right; not square, off-centre
    expected = upright.crop((5, 3, 27, 21)).resize((11, 11), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(decode(data, box=box, size=11), np.asarray(expected))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_with_a_face_box_and_reduced_decoding(orientation):
    upright = fx.boxed_image((200, 100, 50))
    upright.paste((20, 60, 220), (30, 90, 651, 400))  # blue upper half of the face box
    stored = upright.transpose({3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                                8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = decode(fx.encode(stored, "JPEG", exif=exif.tobytes()), box=fx.RAFD_BOX, size=64)
    reference = decode(fx.encode(upright, "JPEG"), box=fx.RAFD_BOX, size=64)
    assert np.abs(out.astype(int) - reference).mean() < 1.0
    assert np.abs(out[5:25].astype(int) - [20, 60, 220]).max() <= 4
    assert np.abs(out[40:60].astype(int) - [200, 100, 50]).max() <= 4


def test_greyscale_palette_and_alpha():
    np.testing.assert_array_equal(decode(Image.new("L", (20, 30), 100)), 100)
    np.testing.assert_array_equal(decode(Image.new("1", (20, 20), 1)), 255)
    assert np.abs(decode(Image.new("L", (20, 20), 100), "JPEG").astype(int) - 100).max() <= 2

    palette = Image.new("P", (20, 20), 3)
    palette.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60, 200, 100, 50] + [0] * 756)
    np.testing.assert_array_equal(decode(palette), np.broadcast_to([200, 100, 50], (8, 8, 3)))
    transparent = fx.encode(palette, "PNG", transparency=3)
    np.testing.assert_array_equal(decode(transparent), 255)  # composited over white

    rgba = Image.new("RGBA", (20, 20), (0, 0, 255, 255))
    rgba.paste((255, 0, 0, 0), (0, 0, 20, 10))  # transparent top half
    out = decode(rgba, size=20)
    np.testing.assert_array_equal(out[2], 255)
    np.testing.assert_array_equal(out[17], np.broadcast_to([0, 0, 255], (20, 3)))
    np.testing.assert_array_equal(decode(Image.new("RGBA", (9, 9), (0, 0, 0, 128))), 127)
    np.testing.assert_array_equal(decode(Image.new("LA", (9, 9), (0, 0))), 255)


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red
    out = decode(cmyk, "JPEG").astype(int)
    assert np.abs(out - [255, 0, 0]).max() <= 3


def test_16_bit_is_scaled_not_clipped():
    grey = np.full((16, 16), 0x8040, np.uint16)
    grey[8:] = 0xFFFF
    data = fx.encode(Image.fromarray(grey), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = decode(data, size=16)
    np.testing.assert_array_equal(out[:7], 0x80)  # >> 8, not clip(., 255)
    np.testing.assert_array_equal(out[9:], 0xFF)

    rgb = np.zeros((16, 16, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0x10FF, 0x8000, 0xFFFF
    np.testing.assert_array_equal(decode(fx.png16_rgb(rgb)),
                                  np.broadcast_to([0x10, 0x80, 0xFF], (8, 8, 3)))


def test_box_crop_and_center_square():
    img = Image.new("RGB", (100, 60), (0, 0, 0))
    img.paste((255, 255, 255), (50, 0, 100, 30))  # top-right quadrant white
    np.testing.assert_array_equal(decode(img, box=(0, 50, 30, 100)), 255)
    np.testing.assert_array_equal(decode(img, box=(30, 0, 60, 50)), 0)
    assert images.center_square_box(100, 60) == (0, 20, 60, 80)
    assert images.center_square_box(60, 100) == (20, 0, 80, 60)
    # No box: the centred square, so a wide image is not squashed.
    out = decode(img, size=60)
    assert out[:25, 35:].min() == 255 and out[:25, :25].max() == 0

    with pytest.raises(images.BadImageError, match=r"smaller than the face box"):
        decode(img, box=(0, 0, 61, 50))
    with pytest.raises(ValueError, match="empty or negative"):
        decode(img, box=(10, 10, 5, 20))


def test_rafd_sized_jpeg_with_box():
    out = decode(fx.boxed_image((200, 100, 50)), "JPEG", box=fx.RAFD_BOX, size=128)
    # The box holds only the face colour: no black border leaks in.
    assert np.abs(out.astype(int) - [200, 100, 50]).max() <= 4


def test_decompression_bomb_is_refused_from_the_header():
    header_only = fx.png_bytes(20000, 20000, 8, 2)  # 400 MP claimed, no pixel data
    with pytest.raises(images.BadImageError, match="megapixels"):
        decode(header_only)
    with pytest.raises(images.BadImageError, match="exceeds the limit"):
        decode(Image.new("RGB", (100, 100)), max_pixels=5000)


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "empty", "text"])
def test_bad_bytes_raise_bad_image_error(kind):
    with pytest.raises(images.BadImageError) as info:
        images.decode_image(fx.bad_files()[kind], name=f"{kind}.jpg")
    assert f"{kind}.jpg" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_decode_files_skips_and_reports_bad_files(tmp_path, caplog):
    colors = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    good = [fx.write(tmp_path / f"good{i}.jpg", fx.encode(fx.boxed_image(c)))
            for i, c in enumerate(colors)]
    bad = {k: fx.write(tmp_path / f"{k}.jpg", v) for k, v in fx.bad_files().items()}
    paths = [good[0], bad["corrupt"], good[1], bad["truncated"], bad["empty"], good[2],
             bad["text"], str(tmp_path / "missing.jpg")]
    with caplog.at_level(logging.INFO, logger="absl"):
        out, kept, failures = images.decode_files(paths, fx.RAFD_BOX, 16, num_workers=2)
    np.testing.assert_array_equal(kept, [0, 2, 5])
    assert out.shape == (3, 16, 16, 3)
    for image, color in zip(out, colors):
        assert np.abs(image.astype(int) - color).max() <= 4
    assert [p for p, _ in failures] == [p for i, p in enumerate(paths) if i not in (0, 2, 5)]
    assert "empty" in dict(failures)[bad["empty"]]
    assert "cannot read" in dict(failures)[str(tmp_path / "missing.jpg")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for path, _ in failures:
        assert any(path in w for w in warnings), path
    assert any("decoded 3 images, skipped 5 bad files" in r.getMessage() for r in caplog.records)


def test_decode_files_per_path_boxes_and_serial_mode(tmp_path):
    img = Image.new("RGB", (40, 40), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 40))  # left half white
    path = fx.write(tmp_path / "a.png", fx.encode(img, "PNG"))
    out, kept, failures = images.decode_files(
        [path, path, path], [(0, 0, 40, 20), (0, 20, 40, 40), None], 4, num_workers=1)
    assert not failures and list(kept) == [0, 1, 2]
    assert out[0].min() == 255 and out[1].max() == 0
    with pytest.raises(ValueError, match="2 boxes for 3 paths"):
        images.decode_files([path] * 3, [None, None], 4)
    empty, kept, failures = images.decode_files([], None, 4)
    assert empty.shape == (0, 4, 4, 3) and not len(kept) and not failures


def test_scale_to_unit_and_back():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    unit = images.scale_to_unit(pixels)
    assert unit.dtype == np.float32 and unit.min() == -1.0 and unit.max() == 1.0
    np.testing.assert_array_equal(images.to_uint8(unit), pixels)
    np.testing.assert_array_equal(images.to_uint8(np.array([-3.0, 0.0, 0.999, 5.0])),
                                  [0, 128, 255, 255])
    tensor = images.scale_to_unit(tf.constant(pixels))
    assert tf.is_tensor(tensor) and tensor.dtype == tf.float32
    np.testing.assert_allclose(tensor.numpy(), unit)
    back = images.to_uint8(tensor)
    assert back.dtype == tf.uint8
    np.testing.assert_array_equal(back.numpy(), pixels)


def test_progress_is_logged_for_long_runs(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(images, "_PROGRESS_EVERY", 2)
    path = fx.write(tmp_path / "a.png", fx.encode(Image.new("RGB", (8, 8)), "PNG"))
    with caplog.at_level(logging.INFO, logger="absl"):
        images.decode_files([path] * 5, None, 4, num_workers=2)
    assert sum("decoded 2/5" in r.getMessage() or "decoded 4/5" in r.getMessage()
               for r in caplog.records) == 2


def test_unique_rows_maps_every_row_to_its_distinct_image():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    neutrals = faces[[0, 0, 3, 3, 5, 5]]
    unique, (face_rows, neutral_rows) = images.unique_rows(faces, neutrals)
    assert len(unique) == 6
    np.testing.assert_array_equal(unique[face_rows], faces)
    np.testing.assert_array_equal(unique[neutral_rows], neutrals)
