"""Training step benchmarks: wall time, FLOPs and achieved GFLOP/s of the
LEED, neutralizer and auto-encoder steps."""

from __future__ import annotations

import tempfile

import numpy as np
import tensorflow as tf

from leed_tf.benchmarks.flops import (autoencoder_step_flops, forward_flops, graph_flops,
                                      leed_step_flops, neutralizer_step_flops)
from leed_tf.benchmarks.timing import (Measurement, StepTiming, _load_row, measure_matmul_gflops,
                                       time_calls)
from leed_tf.data.images import scale_to_unit


# A full-width LEED step takes tens of seconds on a 2-core CPU, so the
# command line's default of 200 timed steps (and 20 warm-up steps) is capped.
_FULL_WIDTH_MAX_STEPS, _FULL_WIDTH_MAX_WARMUP = 3, 1
_SYNTHETIC_MAX_STEPS, _SYNTHETIC_MAX_WARMUP = 20, 3


def _random_faces(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def measure_leed_step(config, steps: int, warmup: int, seed: int = 0) -> StepTiming:
    """Times ``LeedTrainer.train_step`` on one fixed batch of random faces.

    Args:
      config: A ``Config``; its ``leed`` settings give the batch size and
        the step's structure, its ``model`` the networks' width, its
        ``precision`` and ``jit_compile`` how the step runs.
      steps: Timed steps.
      warmup: Untimed steps first (at least 1: the first call traces).
      seed: Seed of the faces.

    Returns:
      The timing; nothing is written (no checkpoint, no summaries).
    """
    from leed_tf.model import LeedNetworks
    from leed_tf.training.distribute import precision_policy
    from leed_tf.training.stages import LeedTrainer, ValidationBatch

    c = config.leed
    rng = np.random.default_rng(seed)
    size = config.model.image_size
    faces = [_random_faces(rng, c.batch_size, size) for _ in range(4)]
    batch = {key: scale_to_unit(tf.constant(images)) for key, images in
             zip(("input", "input_neutral", "reference", "reference_neutral"), faces)}
    with precision_policy(config.precision):
        nets = LeedNetworks(config.model)
    with tempfile.TemporaryDirectory() as run_dir:
        # The trainer needs groups for the matched-pair term; the timed step
        # takes its targets from the batch below.
        groups = np.arange(c.batch_size) % 2
        trainer = LeedTrainer(config, run_dir, nets, faces[0], faces[1], ValidationBatch(*faces),
                              groups=groups)
        codes = trainer.encode_real(batch)
        traced = []
        if c.cache_codes:
            # The codes arrive with the batch, computed once per run.
            batch.update({"input_code": codes["code"], "input_neutral_code": codes["neutral_code"],
                          "reference_code": codes["reference_code"],
                          "reference_neutral_code": codes["reference_neutral_code"]})
            if c.lambda_pair > 0:
                targets = {"target_code": codes["code"], "target_index": tf.zeros([c.batch_size], tf.int32)}
                batch.update(targets)
                codes = {**codes, **targets}
        else:
            traced.append(trainer.encode_real.get_concrete_function(batch))
        seconds = time_calls(lambda: trainer.train_step(batch), steps, max(1, warmup))
        # The graphs train_step ran, in its order (with jit_compile they call
        # XLA-compiled functions, whose ops graph_flops does not see).
        traced += [trainer.critic_step.get_concrete_function(codes)] * (c.n_critic if c.lambda_adv > 0 else 0)
        traced.append(trainer.generator_step.get_concrete_function(batch, codes))
        if c.lambda_s > 0:
            traced.append(trainer.siamese_step.get_concrete_function(batch))
        traced_flops = 0 if config.jit_compile else sum(graph_flops(f.graph) for f in traced)
    return StepTiming(seconds, leed_step_flops(forward_flops(nets), c), traced_flops)


def measure_neutralizer_steps(config, steps: int, warmup: int, seed: int = 0
                              ) -> tuple[StepTiming, StepTiming]:
    """Times ``NeutralizerTrainer``'s critic step and generator step apart.

    Returns:
      (critic step, generator step) timings at ``config.neutralizer.batch_size``.
    """
    from leed_tf.model import LeedNetworks
    from leed_tf.training.stages import NeutralizerTrainer, ValidationBatch

    rng = np.random.default_rng(seed)
    batch_size = config.neutralizer.batch_size
    faces = _random_faces(rng, batch_size, config.model.image_size)
    labels = rng.integers(0, config.model.num_expressions, batch_size).astype(np.int32)
    images, label_tensor = scale_to_unit(tf.constant(faces)), tf.constant(labels)
    nets = LeedNetworks(config.model)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = NeutralizerTrainer(config, run_dir, nets, faces, labels,
                                     ValidationBatch(faces, faces, faces, faces))
        timed = []
        for step in (trainer.critic_step, trainer.generator_step):
            seconds = time_calls(lambda step=step: step(images, label_tensor), steps,
                                 max(1, warmup))
            traced = step.get_concrete_function(images, label_tensor)
            timed.append((seconds, graph_flops(traced.graph)))
    (critic_seconds, critic_traced), (generator_seconds, generator_traced) = timed
    critic_flops, generator_flops = neutralizer_step_flops(forward_flops(nets), batch_size)
    return (StepTiming(critic_seconds, critic_flops, critic_traced),
            StepTiming(generator_seconds, generator_flops, generator_traced))


def measure_autoencoder_step(config, steps: int, warmup: int, train_encoder: bool = True,
                             seed: int = 0) -> StepTiming:
    """Times ``AutoencoderTrainer.autoencoder_step`` at ``config.autoencoder.batch_size``.

    Args:
      train_encoder: Whether the encoder trains (it does unless ImageNet
        weights were loaded, which needs width 1).
    """
    from leed_tf.model import LeedNetworks
    from leed_tf.training.stages import AutoencoderTrainer, ValidationBatch

    rng = np.random.default_rng(seed)
    batch_size = config.autoencoder.batch_size
    faces = _random_faces(rng, batch_size, config.model.image_size)
    images = scale_to_unit(tf.constant(faces))
    nets = LeedNetworks(config.model)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = AutoencoderTrainer(config, run_dir, nets, faces, faces,
                                     ValidationBatch(faces, faces, faces, faces), train_encoder)
        seconds = time_calls(lambda: trainer.autoencoder_step(images, images), steps, max(1, warmup))
        traced = graph_flops(trainer.autoencoder_step.get_concrete_function(images, images).graph)
    counted = autoencoder_step_flops(forward_flops(nets), batch_size, train_encoder,
                                     feature_loss=config.autoencoder.lambda_feature > 0)
    return StepTiming(seconds, counted, traced)


def _step_rows(what: str, timing: StepTiming, peak: float, warmup: int) -> list[Measurement]:
    """Time, GFLOP, GFLOP/s and % of the matmul peak of one step."""
    seconds = sorted(timing.seconds)
    scale, unit = (1, "s/step") if timing.median >= 10 else (1000, "ms/step")
    return [
        Measurement(f"{what}: time", timing.median * scale, unit,
                    f"median of {len(seconds)} after {warmup} warm-up; "
                    f"range {seconds[0]:.3g}-{seconds[-1]:.3g} s"),
        Measurement(f"{what}: work", timing.flops / 1e9, "GFLOP",
                    "conv + matmul; traced graphs: "
                    + (f"{timing.traced_flops / 1e9:.1f} GFLOP" if timing.traced_flops else "n/a (XLA)")),
        Measurement(f"{what}: achieved", timing.gflops_per_second, "GFLOP/s",
                    f"{100 * timing.gflops_per_second / peak:.1f}% of matmul peak"),
    ]


def benchmark_train(batch_size: int = 24, steps: int = _SYNTHETIC_MAX_STEPS,
                    warmup: int = _SYNTHETIC_MAX_WARMUP, full_width: bool = True, seed: int = 0,
                    precision: str = "float32", jit_compile: bool = False, leed_only: bool = False,
                    cache_codes: bool = True, **unused) -> list[Measurement]:
    """Training step cost: seconds, FLOPs and achieved GFLOP/s.

    Times ``LeedTrainer.train_step`` (encode + critic + generator + siamese)
    on a fixed batch of random ``uint8`` faces at full width (the paper's
    tables and LEED settings, decoder trained) and at ``synthetic_defaults()``, and, as context, the
    neutralizer's critic and generator steps and the auto-encoder step at
    ``synthetic_defaults()`` (their own batch sizes). FLOPs are counted by
    ``leed_step_flops`` and the like, and checked against the traced graphs.

    Args:
      batch_size: Pairs per LEED step.
      steps: Timed steps per row, at most 3 at full width and 20 otherwise.
      warmup: Untimed steps first, at most 1 at full width and 3 otherwise.
      full_width: Also measure the full-width LEED step (the slow part).
      seed: Seed of the faces.
      precision: ``Config.precision`` of every measured step: ``float32``,
        ``mixed_float16`` or ``mixed_bfloat16``. Under a mixed policy the
        matmul peak of its 16-bit type is measured too.
      jit_compile: ``Config.jit_compile`` of every measured step (XLA).
      leed_only: Measure the LEED steps only (no neutralizer and
        auto-encoder context rows).
      cache_codes: ``LeedConfig.cache_codes`` of the LEED steps: False
        encodes the four real faces of every pair in every step.
      **unused: Settings of other benchmarks, ignored.

    Returns:
      The table's rows.
    """
    del unused
    import gc

    from leed_tf.config import PRECISIONS, LeedConfig, ModelConfig, synthetic_defaults

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    half = {"mixed_float16": tf.float16, "mixed_bfloat16": tf.bfloat16}.get(precision)
    settings = (f", {precision}" + (", XLA" if jit_compile else "")
                + ("" if cache_codes else ", codes encoded per step"))

    start_load, start_peak = _load_row("at start"), measure_matmul_gflops()
    synthetic = synthetic_defaults()
    synthetic.leed.batch_size, synthetic.leed.cache_codes = batch_size, cache_codes
    if not cache_codes:
        synthetic.leed.lambda_pair = 0.0  # the matched-pair term needs the cached codes
    synthetic.precision, synthetic.jit_compile = precision, jit_compile
    small_steps, small_warmup = min(steps, _SYNTHETIC_MAX_STEPS), min(warmup, _SYNTHETIC_MAX_WARMUP)
    leed = []
    if full_width:
        config = synthetic_defaults()
        config.model = ModelConfig(width=1.0)
        # The paper's LEED settings (decoder trained).
        config.leed = LeedConfig(batch_size=batch_size, cache_codes=cache_codes)
        config.precision, config.jit_compile = precision, jit_compile
        big_steps = min(steps, _FULL_WIDTH_MAX_STEPS)
        big_warmup = max(1, min(warmup, _FULL_WIDTH_MAX_WARMUP))
        leed.append((1.0, measure_leed_step(config, big_steps, big_warmup, seed), big_warmup))
        gc.collect()  # The full-width networks' memory, before the next measurement.
    if not (leed_only and full_width):
        timing = measure_leed_step(synthetic, small_steps, small_warmup, seed)
        leed.append((synthetic.model.width, timing, small_warmup))
    if not leed_only:
        critic, generator = measure_neutralizer_steps(synthetic, small_steps, small_warmup, seed)
        autoencoder = measure_autoencoder_step(synthetic, small_steps, small_warmup, seed=seed)
    end_peak, end_load = measure_matmul_gflops(), _load_row("at end")
    peak = max(start_peak, end_peak)

    rows = [start_load, end_load,
            Measurement("matmul 2048x2048 float32 (machine peak)", peak, "GFLOP/s",
                        f"higher of {start_peak:.1f} before and {end_peak:.1f} after the steps")]
    if half is not None:
        half_peak = measure_matmul_gflops(dtype=half)
        rows.append(Measurement(f"matmul 2048x2048 {half.name}", half_peak, "GFLOP/s",
                                f"{half_peak / peak:.2f} x the float32 peak"))
    for width, timing, warmup_steps in leed:
        rows += _step_rows(f"LEED train_step, width {width}, batch {batch_size}{settings}", timing, peak,
                           warmup_steps)
    if leed_only:
        return rows
    n_critic = synthetic.neutralizer.n_critic
    both = critic.median + generator.median
    rate = (critic.flops + generator.flops) / both / 1e9
    rows.append(Measurement(
        f"neutralizer critic_step + generator_step, width {synthetic.model.width}, "
        f"batch {synthetic.neutralizer.batch_size}", both * 1000, "ms/step",
        f"critic {critic.median * 1000:.0f} + generator {generator.median * 1000:.0f} ms, "
        f"{(critic.flops + generator.flops) / 1e9:.1f} GFLOP (traced "
        f"{(critic.traced_flops + generator.traced_flops) / 1e9:.1f}), {rate:.1f} GFLOP/s = "
        f"{100 * rate / peak:.0f}% of peak; mean train_step "
        f"{(critic.median + generator.median / n_critic) * 1000:.0f} ms (generator every "
        f"{n_critic}th)"))
    rows.append(Measurement(
        f"autoencoder_step (encoder trained), width {synthetic.model.width}, "
        f"batch {synthetic.autoencoder.batch_size}", autoencoder.median * 1000, "ms/step",
        f"{autoencoder.flops / 1e9:.1f} GFLOP (traced {autoencoder.traced_flops / 1e9:.1f}), "
        f"{autoencoder.gflops_per_second:.1f} GFLOP/s = "
        f"{100 * autoencoder.gflops_per_second / peak:.0f}% of peak"))
    return rows
