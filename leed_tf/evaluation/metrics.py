"""Pixel metrics of edited faces against their ground truth: PSNR, SSIM, L1.

Image convention: every function takes float images in **[-1, 1]** (the range
the networks read and write) with ``data_range=2.0``, the default. Pass
``data_range=1.0`` for float images in [0, 1] and ``255.0`` for 0..255
values. ``uint8`` arrays are accepted too and mapped to [-1, 1] first (then
leave ``data_range`` at 2.0). Each metric returns one value per image
(``float64 [N]``); ``summarize`` turns them into means.

PSNR of two identical images is infinite (``tf.image.psnr`` divides by a
zero MSE). The per-image values keep the ``inf``; ``mean_psnr`` counts such
an image as ``PSNR_CAP_DB`` so that one exact copy cannot make a method's
mean infinite, and ``summarize`` reports how many pairs were identical.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from leed_tf.data.images import as_unit_images

DATA_RANGE = 2.0  # [-1, 1]
# Identical images count as this many dB in means: the same cap the training
# loop's validation PSNR uses (leed_tf.training.losses.psnr), so the two agree.
PSNR_CAP_DB = 100.0
# tf.image.ssim on large batches holds several [N, H, W, C] temporaries.
_CHUNK = 256


def _pairs(images, targets):
    images, targets = as_unit_images(images), as_unit_images(targets)
    if images.shape != targets.shape or images.ndim != 4:
        raise ValueError(f"Expected two [N, H, W, C] batches of one shape, got {images.shape} "
                         f"and {targets.shape}.")
    return images, targets


# Graphs: SSIM's many small ops are slow eagerly; evaluations call these per batch.
_PSNR = tf.function(lambda a, b, max_val: tf.image.psnr(a, b, max_val=max_val), reduce_retracing=True)
_SSIM = tf.function(lambda a, b, max_val: tf.image.ssim(a, b, max_val=max_val), reduce_retracing=True)


def _chunked(fn, images, targets, data_range: float) -> np.ndarray:
    max_val = tf.constant(data_range, tf.float32)
    values = [fn(tf.constant(images[i:i + _CHUNK]), tf.constant(targets[i:i + _CHUNK]), max_val).numpy()
              for i in range(0, len(images), _CHUNK)]
    return np.concatenate(values).astype(np.float64) if values else np.zeros(0)


def psnr(images, targets, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-image PSNR in dB (``tf.image.psnr``); ``inf`` for identical images.

    Args:
      images: ``[N, H, W, C]`` images, in [-1, 1] by default.
      targets: Their ground truth, same shape and range.
      data_range: Span of the value range (2.0 for [-1, 1], 1.0 for [0, 1]).
    """
    images, targets = _pairs(images, targets)
    return _chunked(_PSNR, images, targets, data_range)


def ssim(images, targets, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-image SSIM (``tf.image.ssim``, 11x11 Gaussian window); 1 for
    identical images. Images must be at least 11 pixels on a side."""
    images, targets = _pairs(images, targets)
    return _chunked(_SSIM, images, targets, data_range)


def l1(images, targets) -> np.ndarray:
    """Per-image mean absolute difference, in the images' own units (a
    uniform shift of 0.1 in [-1, 1] gives 0.1)."""
    images, targets = _pairs(images, targets)
    return np.abs(images.astype(np.float64) - targets).mean(axis=(1, 2, 3))


def mean_psnr(values, cap_db: float = PSNR_CAP_DB) -> float:
    """Mean of per-image PSNRs with each capped at ``cap_db`` (identical images
    count as ``cap_db`` instead of making the mean infinite); NaN if empty."""
    values = np.asarray(values, np.float64)
    return float(np.minimum(values, cap_db).mean()) if values.size else float("nan")


def image_metrics(images, targets, data_range: float = DATA_RANGE) -> dict[str, np.ndarray]:
    """``{"psnr", "ssim", "l1"}`` per image (see the functions of the same names)."""
    images, targets = _pairs(images, targets)
    return {"psnr": psnr(images, targets, data_range), "ssim": ssim(images, targets, data_range),
            "l1": l1(images, targets)}


def summarize(per_image: dict[str, np.ndarray]) -> dict[str, float]:
    """Means of per-image metrics: ``psnr`` by ``mean_psnr`` (plus
    ``identical``, the number of infinite PSNRs), the rest plainly.

    Keys other than ``psnr`` are averaged as they are, e.g. 0/1 correctness
    arrays become accuracies.
    """
    out = {}
    for key, values in per_image.items():
        values = np.asarray(values, np.float64)
        if key == "psnr":
            out["psnr"] = mean_psnr(values)
            out["identical"] = int(np.isinf(values).sum())
        else:
            out[key] = float(values.mean()) if values.size else float("nan")
    return out
