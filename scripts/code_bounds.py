"""How well simple linear codes reconstruct held-out synthetic faces.

A yardstick for the auto-encoder (docs/results.md, "A linear patch path"):
a code of a 128x128 face made by

- area-downsampling to ``s x s`` and resizing back (bicubic), and
- PCA of the faces' ``p x p`` patches to ``k`` numbers per patch (fitted on
  the training identities, scored on others): the best linear code of that
  size and cell layout, what ``--patch_path`` starts the auto-encoder from.

Usage:
  python scripts/code_bounds.py [--train_subjects=60 --test_subjects=20 --components=64]

Prints one row per code: its numbers per face and its PSNR on the held-out
faces (all their expressions).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf.training import losses  # noqa: E402

_TRAIN = flags.DEFINE_integer("train_subjects", 60, "Identities the PCA is fitted on.")
_TEST = flags.DEFINE_integer("test_subjects", 20, "Other identities it is scored on.")
_COMPONENTS = flags.DEFINE_integer("components", 64, "Numbers per patch (Table 3's 512 channels x width).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic identities.")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-image PSNR of images in [0, 1] (``losses.psnr``, clipped as edits are)."""
    return float(tf.reduce_mean(losses.psnr(np.clip(a, 0, 1) * 2 - 1, b * 2 - 1)))


def patches(images: np.ndarray, p: int) -> np.ndarray:
    """``[N, S, S, 3]`` -> ``[N * (S/p)^2, p*p*3]``."""
    n, s = images.shape[0], images.shape[1]
    x = images.reshape(n, s // p, p, s // p, p, 3).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, p * p * 3)


def unpatch(rows: np.ndarray, n: int, s: int, p: int) -> np.ndarray:
    x = rows.reshape(n, s // p, s // p, p, p, 3).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, s, s, 3)


def pca_psnr(train: np.ndarray, test: np.ndarray, p: int, k: int) -> float:
    """PSNR of ``test`` through the ``k`` leading components of ``train``'s patches."""
    rows = patches(train, p).astype(np.float64)
    mean = rows.mean(0)
    _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
    basis = vt[:k]
    test_rows = patches(test, p).astype(np.float64) - mean
    rebuilt = (test_rows @ basis.T) @ basis + mean
    return psnr(unpatch(rebuilt, *test.shape[:2], p), test)


def resize_psnr(test: np.ndarray, side: int) -> float:
    small = tf.image.resize(test, (side, side), method="area")
    return psnr(tf.image.resize(small, test.shape[1:3], method="bicubic").numpy(), test)


def main(argv):
    del argv
    from leed_tf.data import synthetic

    print(f"Rendering {_TRAIN.value} + {_TEST.value} identities (all expressions, frontal)", flush=True)
    common = dict(seed=_SEED.value, poses=(0.0,))
    train = synthetic.render_face_set(_TRAIN.value, **common).images.astype(np.float32) / 255
    test = synthetic.render_face_set(_TEST.value, first_subject=_TRAIN.value,
                                     **common).images.astype(np.float32) / 255
    size, k = test.shape[1], _COMPONENTS.value
    rows = []
    for side in (16, 32):
        rows.append((f"area-downsampled to {side}x{side}, bicubic back", side * side * 3,
                     resize_psnr(test, side)))
    for p in (16, 8):
        cells = size // p
        rows.append((f"PCA of {p}x{p} patches to {k} numbers ({cells}x{cells}x{k} code)",
                     cells * cells * k, pca_psnr(train, test, p, k)))
    print(f"Held-out faces: {len(test)} of {_TEST.value} identities; PCA fitted on {len(train)} faces")
    print(f"  {'code':58s} {'numbers':>8s} {'PSNR dB':>8s}")
    for name, numbers, value in rows:
        print(f"  {name:58s} {numbers:8d} {value:8.2f}")


if __name__ == "__main__":
    cli.run(main)
