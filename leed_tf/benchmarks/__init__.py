"""Throughput benchmarks, run by ``scripts/benchmark.py <name>``.

Each benchmark is a function returning a list of ``Measurement`` rows;
``BENCHMARKS`` maps the command-line name to it, and ``run`` formats the rows
as a table under a line describing the machine. Figures measured with these
are recorded in ``docs/benchmarks.md``.

Modules:
  timing: ``Measurement``, ``StepTiming``, the machine's description, its
    peak matmul rate and the timers.
  flops: FLOPs of TF graphs (``graph_flops``, ``function_flops``) and of the
    training steps (``leed_step_flops`` and the like).
  data: input pipeline benchmark (``benchmark_data``).
  train: training step benchmark (``benchmark_train``).
  infer: inference benchmark of the exported SavedModel (``benchmark_infer``).
"""

from __future__ import annotations

import time
from typing import Callable

from leed_tf.benchmarks.data import benchmark_data, benchmark_jpeg_decoding
from leed_tf.benchmarks.flops import (autoencoder_step_flops, forward_flops, function_flops,
                                      graph_flops, leed_step_flops, neutralizer_step_flops, op_flops)
from leed_tf.benchmarks.infer import benchmark_infer
from leed_tf.benchmarks.timing import (Measurement, StepTiming, machine_description,
                                       measure_matmul_gflops, time_calls, time_dataset,
                                       time_function)
from leed_tf.benchmarks.train import (benchmark_train, measure_autoencoder_step,
                                      measure_leed_step, measure_neutralizer_steps)


__all__ = [
    "BENCHMARKS", "Measurement", "StepTiming", "autoencoder_step_flops", "benchmark_data",
    "benchmark_infer", "benchmark_jpeg_decoding", "benchmark_train", "format_table",
    "forward_flops", "function_flops", "get_benchmark", "graph_flops", "leed_step_flops",
    "machine_description", "measure_autoencoder_step", "measure_leed_step",
    "measure_matmul_gflops", "measure_neutralizer_steps", "neutralizer_step_flops", "op_flops",
    "run", "time_calls", "time_dataset", "time_function",
]


BENCHMARKS: dict[str, Callable[..., list[Measurement]]] = {
    "data": benchmark_data,
    "train": benchmark_train,
    "infer": benchmark_infer,
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
