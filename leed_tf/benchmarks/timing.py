"""Machine facts and timers: the ``Measurement`` row, the machine's line,
its peak matmul rate, and wall-time helpers shared by the benchmarks."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from typing import Callable

import numpy as np
import tensorflow as tf


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


def measure_matmul_gflops(size: int = 2048, repeats: int = 10, warmup: int = 2,
                          dtype: tf.DType = tf.float32) -> float:
    """Peak matmul rate of this machine, for context beside other figures.

    Times ``tf.linalg.matmul`` of two ``size x size`` matrices of ``dtype``
    (float32 unless given: the reference every share of peak is taken of) in a
    ``tf.function`` and counts ``2 * size**3`` floating-point operations per
    product. The fastest repeat is reported: other processes can only slow a
    run down, so the minimum is the best estimate of what the machine can do.

    Args:
      size: Side of the square matrices.
      repeats: Timed products.
      warmup: Untimed products first (tracing, thread pools, caches).
      dtype: The matrices' dtype.

    Returns:
      GFLOP/s of the fastest product.
    """
    a = tf.cast(tf.random.stateless_uniform([size, size], seed=[1, 2]), dtype)
    b = tf.cast(tf.random.stateless_uniform([size, size], seed=[3, 4]), dtype)

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


def _load_row(when: str) -> Measurement:
    one, five, fifteen = os.getloadavg()
    return Measurement(f"load average, 1 min, {when}", one, "",
                       f"5 min {five:.1f}, 15 min {fifteen:.1f}; {os.cpu_count()} cores")


@dataclasses.dataclass
class StepTiming:
    """Wall time of repeated calls of one training step, and its FLOPs.

    Attributes:
      seconds: Wall time of each timed call.
      flops: FLOPs of one call, from ``forward_flops`` and the step's
        structure (``leed_step_flops`` and the like).
      traced_flops: ``graph_flops`` of the traced step functions: what the
        graphs really run, a check of ``flops``.
    """

    seconds: list[float]
    flops: int
    traced_flops: int

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def gflops_per_second(self) -> float:
        return self.flops / self.median / 1e9


def time_calls(function: Callable[[], object], steps: int, warmup: int) -> list[float]:
    """Wall time of each of ``steps`` calls of ``function`` after ``warmup`` calls.

    The first warm-up call traces the ``tf.function``s; results are fetched
    to the host inside the timing.
    """
    for _ in range(warmup):
        _fetch(function())
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        _fetch(function())
        seconds.append(time.perf_counter() - start)
    return seconds


def _median_seconds(function: Callable[[], object], calls: int, warmup: int) -> list[float]:
    """Sorted wall times of ``calls`` calls after ``warmup`` untimed ones."""
    return sorted(time_calls(function, calls, warmup))
