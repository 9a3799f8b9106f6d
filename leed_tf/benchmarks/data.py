"""Input pipeline benchmarks: ``image_dataset``, ``paired_dataset``,
in-step augmentation, epoch start-up and JPEG decoding."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from leed_tf.benchmarks.timing import (Measurement, _resident_mb, measure_matmul_gflops,
                                       time_dataset, time_function)
from leed_tf.data import augment, pipeline, records
from leed_tf.data.images import scale_to_unit


# One paired example holds four 128 x 128 faces: input, input neutral,
# reference, reference neutral.
_IMAGES_PER_PAIR = 4


def _epoch_costs(dataset: tf.data.Dataset, epochs: int = 3) -> tuple[float, float | None]:
    """Worst time to the first batch of a new pass, and memory growth after the first."""
    first_batch, memory = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        iterator = iter(dataset)
        next(iterator)
        first_batch.append(time.perf_counter() - start)
        for _ in iterator:
            pass
        del iterator
        memory.append(_resident_mb())
    growth = None if memory[0] is None else memory[-1] - memory[0]
    return max(first_batch), growth


def _write_portraits(directory: str, count: int, seed: int) -> list[str]:
    """Writes ``count`` smooth 681x1024 JPEGs, roughly the size of RaFD's photos."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        # Low-frequency colour fields upsampled and a little grain: JPEG sees
        # photo-like content, not incompressible noise.
        coarse = rng.integers(0, 256, (12, 8, 3), dtype=np.uint8)
        field = Image.fromarray(coarse).resize((records.RAFD_WIDTH, records.RAFD_HEIGHT),
                                               Image.BICUBIC)
        field = np.asarray(field, np.int16)
        grain = rng.integers(-6, 7, field.shape, dtype=np.int16)
        pixels = np.clip(field + grain, 0, 255).astype(np.uint8)
        path = os.path.join(directory, f"portrait_{i:04d}.jpg")
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def benchmark_jpeg_decoding(num_files: int = 200, size: int = 128, seed: int = 0
                            ) -> list[Measurement]:
    """Decoding RaFD-sized JPEGs with the face-box crop (``images.decode_files``).

    Args:
      num_files: JPEGs written to a temporary folder, then decoded.
      size: Output side.
      seed: Seed of the written pictures.

    Returns:
      One row: images decoded per second with the default worker threads.
    """
    from leed_tf.data import images as image_files

    with tempfile.TemporaryDirectory() as directory:
        paths = _write_portraits(directory, num_files, seed)
        megabytes = sum(os.path.getsize(p) for p in paths) / 2**20
        image_files.decode_files(paths[:4], records.RAFD_BOX, size)  # imports, thread start-up
        start = time.perf_counter()
        decoded, _, failures = image_files.decode_files(paths, records.RAFD_BOX, size)
        seconds = time.perf_counter() - start
    if failures or len(decoded) != num_files:
        raise RuntimeError(f"Decoding benchmark files failed: {failures[:3]}")
    return [Measurement(
        f"decode_files: {num_files} JPEGs {records.RAFD_WIDTH}x{records.RAFD_HEIGHT} -> box crop -> {size}",
        num_files / seconds, "images/s",
        f"{os.cpu_count()} threads, {megabytes / num_files * 1024:.0f} KB/file")]


def benchmark_data(batch_size: int = 24, num_images: int = 2000, steps: int = 200,
                   warmup: int = 20, jpeg_files: int = 200, seed: int = 0,
                   **unused) -> list[Measurement]:
    """Input pipeline throughput: what the training steps can be fed.

    Measures ``image_dataset`` and ``paired_dataset`` over a random ``uint8``
    array of ``num_images`` 128 x 128 faces (pixel content does not change
    their cost), ``augment_together`` as called inside a training step,
    the cost of starting a new epoch, and JPEG decoding of RaFD-sized files.

    Args:
      batch_size: Images (or pairs) per batch.
      num_images: Faces in the in-memory array.
      steps: Timed batches per row.
      warmup: Untimed batches before each timed run.
      jpeg_files: JPEGs for the decoding row (0 skips it).
      seed: Seed of the array and of the pipelines.
      **unused: Settings of other benchmarks, ignored.

    Returns:
      The table's rows.
    """
    del unused
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (num_images, 128, 128, 3), dtype=np.uint8)
    neutrals = rng.integers(0, 256, faces.shape, dtype=np.uint8)
    labels = rng.integers(0, 8, num_images)
    rows = [Measurement("matmul 2048x2048 float32 (machine peak, for context)",
                        measure_matmul_gflops(), "GFLOP/s")]

    def image_rate(**kwargs):
        dataset = pipeline.image_dataset(faces, labels, batch_size, seed=seed, repeat=True,
                                         **kwargs)
        return time_dataset(dataset, steps, warmup) * batch_size

    rows.append(Measurement("image_dataset, no augmentation",
                            image_rate(flip=False, max_shift=0), "images/s"))
    rows.append(Measurement("image_dataset, flip + shift 4", image_rate(), "images/s"))

    for jitter in (0.0, 0.1):
        name = "flip + shift 4" + (f" + jitter {jitter}" if jitter else "")
        dataset = pipeline.paired_dataset(faces, neutrals, batch_size, seed=seed, repeat=True,
                                          carry={"label": labels}, jitter=jitter)
        pairs = time_dataset(dataset, steps, warmup) * batch_size
        rows.append(Measurement(f"paired_dataset, {name}", pairs, "pairs/s"))
        rows.append(Measurement(f"paired_dataset, {name}", pairs * _IMAGES_PER_PAIR, "images/s",
                                f"{_IMAGES_PER_PAIR} faces per pair"))

    # The siamese network's two views are augmented inside the training step.
    batch = scale_to_unit(tf.constant(faces[:batch_size]))
    step_seed = tf.Variable([seed, 0], dtype=tf.int64)

    @tf.function
    def two_views():
        step_seed.assign_add([0, 1])
        first = augment.augment_together([batch, batch], step_seed, jitter=0.1)
        second = augment.augment_together([batch, batch], step_seed + [1, 0], jitter=0.1)
        return first + second

    calls = time_function(two_views, steps, warmup)
    rows.append(Measurement("augment_together in tf.function, 2 views of (image, neutral)",
                            calls * 4 * batch_size, "images/s",
                            f"{1000 / calls:.1f} ms per batch of {batch_size}"))

    dataset = pipeline.paired_dataset(faces, neutrals, batch_size, seed=seed)
    latency, growth = _epoch_costs(dataset)
    rows.append(Measurement("paired_dataset, new epoch: time to first batch (worst of 3)",
                            latency * 1000, "ms", f"{num_images} faces"))
    if growth is not None:
        rows.append(Measurement("paired_dataset, resident memory growth over 3 epochs",
                                growth, "MB", f"arrays: {2 * faces.nbytes / 2**20:.0f} MB"))
    if jpeg_files:
        rows.extend(benchmark_jpeg_decoding(jpeg_files, seed=seed))
    return rows
