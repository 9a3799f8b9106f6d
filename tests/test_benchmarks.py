"""The training-step benchmark: FLOP counts against hand computations, and a
smoke run of its internals at tiny batch and width."""

import math

import keras
import pytest
import tensorflow as tf

from leed_tf import benchmarks
from leed_tf.benchmarks.train import _step_rows
from leed_tf.config import synthetic_defaults
from leed_tf.networks import CodeCritic


def test_code_critic_flops_match_table_2_by_hand():
    # Table 2 at width 0.125 on an 8x8x64 code; 2 * H_out * W_out * k^2 * C_in * C_out per conv.
    critic = CodeCritic(width=0.125)
    by_hand = (2 * 8 * 8 * 1 * 64 * 32        # 1x1, 64 -> 32, 8x8
               + 2 * 4 * 4 * 16 * 32 * 64     # 4x4/2, 32 -> 64, 4x4
               + 2 * 2 * 2 * 16 * 64 * 128    # 4x4/2, 64 -> 128, 2x2
               + 2 * 1 * 1 * 4 * 128 * 128)   # 2x2/2 valid, 128 -> 128, 1x1
    assert by_hand == 2_490_368
    assert benchmarks.function_flops(critic, tf.TensorSpec([1, 8, 8, 64])) == by_hand


def test_transposed_conv_and_dense_flops_by_hand():
    model = keras.Sequential([
        keras.Input((4, 4, 3)),
        keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same"),  # -> 8x8x5
        keras.layers.Flatten(),
        keras.layers.Dense(7),
    ])
    # Each of the 4*4 input pixels scatters a 4x4x5 patch of 3-channel products.
    by_hand = 2 * 4 * 4 * 3 * 4 * 4 * 5 + 2 * (8 * 8 * 5) * 7
    assert benchmarks.function_flops(model, tf.TensorSpec([2, 4, 4, 3])) == 2 * by_hand


@pytest.mark.parametrize("cache_codes, train_decoder, paper_terms", [
    (True, False, True), (False, True, True), (True, False, False)],
    ids=["decoder kept", "codes per step, decoder trained", "matched-pair term alone"])
def test_leed_step_smoke_at_tiny_batch_and_width(cache_codes, train_decoder, paper_terms):
    config = synthetic_defaults()
    config.leed.batch_size = 2
    config.leed.cache_codes, config.leed.train_decoder = cache_codes, train_decoder
    paper = type(config.leed)()
    for name in ("lambda_recon", "lambda_adv", "lambda_q", "lambda_s"):
        setattr(config.leed, name, getattr(paper, name) if paper_terms else 0.0)
    config.leed.lambda_pair = config.leed.lambda_pair if cache_codes else 0.0  # it needs the cache
    config.model.stargan_residual_blocks = 0  # Built by LeedNetworks, unused by LEED's step.
    timing = benchmarks.measure_leed_step(config, steps=1, warmup=1)
    assert len(timing.seconds) == 1 and timing.seconds[0] > 0
    assert timing.flops > 0
    assert math.isfinite(timing.gflops_per_second) and timing.gflops_per_second > 0
    # The factors of leed_step_flops agree with what the traced graphs run
    # (X and I alone: their first layers' missing input gradients weigh more).
    assert abs(timing.flops / timing.traced_flops - 1) < (0.05 if paper_terms else 0.1)
    rows = _step_rows("LEED", timing, peak=100.0, warmup=1)
    assert [r.unit for r in rows] == ["ms/step", "GFLOP", "GFLOP/s"]
    assert all(math.isfinite(r.value) and r.value > 0 for r in rows)
    assert "train" in benchmarks.BENCHMARKS
