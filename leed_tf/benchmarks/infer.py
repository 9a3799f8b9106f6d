"""Inference benchmark: the exported SavedModel's latency and throughput."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from leed_tf.benchmarks.data import _write_portraits
from leed_tf.benchmarks.flops import function_flops
from leed_tf.benchmarks.timing import Measurement, _load_row, _median_seconds, measure_matmul_gflops


# A full-width edit takes seconds on a 2-core CPU and a batch of 32 about a
# minute, so the command line's default of 200 timed calls is capped.
_INFER_MAX_CALLS = {0.125: 30, 1.0: 5}
_INFER_MAX_BATCH_CALLS = {0.125: 5, 1.0: 2}


def benchmark_infer(steps: int = 30, warmup: int = 2, widths: tuple = (0.125, 1.0), batch: int = 32,
                    seed: int = 0, **unused) -> list[Measurement]:
    """Inference cost of the exported SavedModel (``leed_tf.inference.export``).

    For each width, networks with random weights (the cost does not depend on
    them) are exported with ``export_networks`` to a temporary folder and
    loaded back with ``tf.saved_model.load``, as TF Serving would. Measured:
    one edit through ``edit_tensor`` (float images; G_neu twice, E three
    times, X, I, Dec once), one edit through ``serving_default`` from a
    681 x 1024 JPEG pair to PNG bytes (decoding, crop and resize in the
    graph), and a batch of ``batch`` edits through ``edit_tensor``.

    Args:
      steps: Timed calls per row (capped: 30 single edits and 5 batches at
        width 0.125, 5 and 2 at width 1).
      warmup: Untimed calls first (at most 2; at least 1).
      widths: Network widths.
      batch: Edits per batch.
      seed: Seed of the weights and pictures.
      **unused: Settings of other benchmarks, ignored.

    Returns:
      The table's rows.
    """
    del unused
    import gc
    import io

    import keras
    from PIL import Image

    from leed_tf.config import ModelConfig
    from leed_tf.inference.export import LeedServingModule, export_networks
    from leed_tf.model import LeedNetworks

    rows = [_load_row("at start"), Measurement("matmul 2048x2048 float32 (machine peak, for context)",
                                               measure_matmul_gflops(), "GFLOP/s")]
    rng = np.random.default_rng(seed)
    faces = tf.constant(rng.uniform(0.0, 1.0, (batch, 128, 128, 3)).astype(np.float32))
    with tempfile.TemporaryDirectory() as directory:
        jpegs = [open(p, "rb").read() for p in _write_portraits(directory, 2, seed)]
    warmup = max(1, min(warmup, 2))
    for width in widths:
        keras.utils.set_random_seed(seed)
        nets = LeedNetworks(ModelConfig(width=width))
        calls = max(1, min(steps, _INFER_MAX_CALLS.get(width, 5)))
        batch_calls = max(1, min(steps, _INFER_MAX_BATCH_CALLS.get(width, 2)))
        module = LeedServingModule(nets)
        spec = tf.TensorSpec([1, 128, 128, 3], tf.float32)
        try:
            flops = function_flops(lambda a, b, i: module._edit_tensor(a, b, i), spec, spec,
                                   tf.TensorSpec([1], tf.float32))
        except ValueError:  # A graph whose FLOPs cannot be counted.
            flops = None
        with tempfile.TemporaryDirectory() as directory:
            start = time.perf_counter()
            path = export_networks(nets, directory, source=f"random weights, width {width}")
            exported = time.perf_counter() - start
            start = time.perf_counter()
            model = tf.saved_model.load(path)
            loaded = time.perf_counter() - start
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
        edit = model.signatures["edit_tensor"]
        one = _median_seconds(lambda: edit(input_image=faces[:1], reference_image=faces[1:2],
                                           intensity=tf.constant([1.0])), calls, warmup)
        serve = model.signatures["serving_default"]
        served = _median_seconds(lambda: serve(input_image=tf.constant(jpegs[:1]),
                                               reference_image=tf.constant(jpegs[1:]),
                                               intensity=tf.constant([1.0])), calls, warmup)
        many = _median_seconds(lambda: edit(input_image=faces, reference_image=faces[::-1],
                                            intensity=tf.ones([batch])), batch_calls, 1)
        png = serve(input_image=tf.constant(jpegs[:1]), reference_image=tf.constant(jpegs[1:]),
                    intensity=tf.constant([1.0]))["output_png_bytes"].numpy()[0]
        assert Image.open(io.BytesIO(png)).size == (128, 128)
        median, batch_median = one[len(one) // 2], many[len(many) // 2]
        rows += [
            Measurement(f"width {width}: export + tf.saved_model.load", exported + loaded, "s",
                        f"export {exported:.1f} s, load {loaded:.1f} s, {size / 2**20:.1f} MB on disk"),
            Measurement(f"width {width}: edit_tensor, 1 edit, latency", median * 1000, "ms",
                        f"median of {calls}, range {one[0] * 1000:.0f}-{one[-1] * 1000:.0f} ms"
                        + (f"; {flops / 1e9:.2f} GFLOP = {flops / median / 1e9:.0f} GFLOP/s"
                           if flops else "")),
            Measurement(f"width {width}: serving_default, 681x1024 JPEGs -> PNG, latency",
                        served[len(served) // 2] * 1000, "ms",
                        f"median of {calls}, range {served[0] * 1000:.0f}-{served[-1] * 1000:.0f} ms"),
            Measurement(f"width {width}: edit_tensor, batch of {batch}, throughput", batch / batch_median,
                        "images/s", f"{batch_median:.2f} s per batch, median of {batch_calls}"),
        ]
        model = module = nets = None  # Free the full-width networks before the next width.
        gc.collect()
    rows.append(_load_row("at end"))
    return rows
