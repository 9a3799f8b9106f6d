"""Throughput benchmarks, run by ``scripts/benchmark.py <name>``.

Each benchmark is a function returning a list of ``Measurement`` rows;
``BENCHMARKS`` maps the command-line name to it, and ``run`` formats the rows
as a table under a line describing the machine. Figures measured with these
are recorded in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from leed_tf.data import augment, pipeline

# RaFD's photo size and face box (DESIGN.md section 4), for the decoding
# benchmark: portrait 681 x 1024, box (top, left, bottom, right).
_RAFD_WIDTH, _RAFD_HEIGHT = 681, 1024
_RAFD_BOX = (90, 30, 711, 651)

# One paired example holds four 128 x 128 faces: input, input neutral,
# reference, reference neutral.
_IMAGES_PER_PAIR = 4


@dataclasses.dataclass
class Measurement:
    """One row of a benchmark table.

    Attributes:
      what: What was measured.
      value: The figure.
      unit: Its unit, e.g. ``"images/s"``.
      note: Anything needed to read the figure.
    """

    what: str
    value: float
    unit: str
    note: str = ""


def machine_description() -> str:
    """CPU model, core count, accelerators and TensorFlow version, on one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    accelerators = f"{len(gpus)} GPU" if gpus else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {accelerators}, TensorFlow {tf.__version__}, "
            f"Python {platform.python_version()}")


def measure_matmul_gflops(size: int = 2048, repeats: int = 10, warmup: int = 2) -> float:
    """Peak float32 matmul rate of this machine, for context beside other figures.

    Times ``tf.linalg.matmul`` of two ``size x size`` float32 matrices in a
    ``tf.function`` and counts ``2 * size**3`` floating-point operations per
    product. The fastest repeat is reported: other processes can only slow a
    run down, so the minimum is the best estimate of what the machine can do.

    Args:
      size: Side of the square matrices.
      repeats: Timed products.
      warmup: Untimed products first (tracing, thread pools, caches).

    Returns:
      GFLOP/s of the fastest product.
    """
    a = tf.random.stateless_uniform([size, size], seed=[1, 2])
    b = tf.random.stateless_uniform([size, size], seed=[3, 4])

    @tf.function
    def product(a, b):
        # Returning one element keeps the copy back to Python out of the timing.
        return tf.linalg.matmul(a, b)[0, 0]

    for _ in range(warmup):
        product(a, b).numpy()
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        fastest = min(fastest, time.perf_counter() - start)
    return 2.0 * size**3 / fastest / 1e9


def time_dataset(dataset: tf.data.Dataset, steps: int, warmup: int) -> float:
    """Batches per second that ``dataset`` delivers to an idle consumer.

    Args:
      dataset: An endless (``repeat=True``) dataset.
      steps: Timed batches.
      warmup: Untimed batches first, which also let tf.data's autotuner and
        the prefetch buffer settle.

    Returns:
      Batches per second over the timed steps.
    """
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps / (time.perf_counter() - start)


def time_function(function: Callable[[], object], steps: int, warmup: int) -> float:
    """Calls per second of ``function`` (whose result is fetched to the host)."""
    for _ in range(warmup):
        _fetch(function())
    start = time.perf_counter()
    for _ in range(steps):
        _fetch(function())
    return steps / (time.perf_counter() - start)


def _fetch(result):
    for tensor in tf.nest.flatten(result):
        tensor.numpy()


def _resident_mb() -> float | None:
    """Resident memory of this process in MB (Linux only, else None)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


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
        field = np.asarray(Image.fromarray(coarse).resize((_RAFD_WIDTH, _RAFD_HEIGHT),
                                                          Image.BICUBIC), np.int16)
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
        image_files.decode_files(paths[:4], _RAFD_BOX, size)  # imports, thread start-up
        start = time.perf_counter()
        decoded, _, failures = image_files.decode_files(paths, _RAFD_BOX, size)
        seconds = time.perf_counter() - start
    if failures or len(decoded) != num_files:
        raise RuntimeError(f"Decoding benchmark files failed: {failures[:3]}")
    return [Measurement(
        f"decode_files: {num_files} JPEGs {_RAFD_WIDTH}x{_RAFD_HEIGHT} -> box crop -> {size}",
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
    batch = pipeline.to_unit(faces[:batch_size])
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


BENCHMARKS: dict[str, Callable[..., list[Measurement]]] = {
    "data": benchmark_data,
}


def get_benchmark(name: str) -> Callable[..., list[Measurement]]:
    """The benchmark called ``name``.

    Raises:
      ValueError: ``name`` is not a key of ``BENCHMARKS``.
    """
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"Unknown benchmark {name!r}; expected one of: "
                         f"{', '.join(sorted(BENCHMARKS))}.") from None


def format_table(rows: list[Measurement]) -> str:
    """Rows as an aligned plain-text table."""
    width = max(len(r.what) for r in rows)
    lines = [f"{'what':<{width}}  {'value':>10}  {'unit':<9}  note",
             "-" * (width + 36)]
    for r in rows:
        lines.append(f"{r.what:<{width}}  {r.value:>10.1f}  {r.unit:<9}  {r.note}".rstrip())
    return "\n".join(lines)


def run(name: str, **settings) -> str:
    """Runs benchmark ``name`` with ``settings`` and returns its report.

    Args:
      name: A key of ``BENCHMARKS``.
      **settings: Keyword arguments of the benchmark (e.g. ``batch_size``).

    Returns:
      A header (date, machine, settings) and the table.
    """
    benchmark = get_benchmark(name)
    rows = benchmark(**settings)
    described = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    header = [f"benchmark: {name} ({described})",
              f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
              f"machine: {machine_description()}"]
    return "\n".join(header + ["", format_table(rows)])
