"""Code standardisation (networks.CodeScale): statistics measured when the
LEED stage starts, used by X, I and the critic, kept in its checkpoint."""

import numpy as np
import pytest
import tensorflow as tf

from leed_tf.config import ModelConfig
from leed_tf.model import LeedNetworks, restore_stage
from leed_tf.networks import CodeScale
from leed_tf.training.stages import LeedTrainer

from tests.test_training import GROUPS, setup, tiny_faces  # noqa: F401 (fixture)

WIDTH = 0.0625


def test_measured_statistics_standardise_the_codes():
    rng = np.random.default_rng(0)
    channels = 6
    codes = rng.normal(40.0, 1.0, (50, 2, 2, channels)) * np.arange(1, channels + 1) * 10
    neutrals = codes - rng.normal(0.0, 3.0, codes.shape)
    scale = CodeScale(channels)
    scale.measure(codes, neutrals)
    standard = scale.standardize(tf.constant(codes, tf.float32)).numpy()
    np.testing.assert_allclose(standard.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(standard.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    units = scale.to_units(tf.constant(codes - neutrals, tf.float32)).numpy()
    np.testing.assert_allclose(units.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    np.testing.assert_allclose(scale.from_units(units).numpy(), codes - neutrals, rtol=1e-5, atol=1e-3)
    scale.reset()
    np.testing.assert_array_equal(scale.standardize(tf.constant(codes, tf.float32)).numpy(),
                                  codes.astype(np.float32))


def test_standardised_networks_edit_in_code_units():
    """z_out = n + s_d * I([(n - m) / s, X(d / s_d)]): with measured
    statistics, each network sees standardised inputs and I's output is
    scaled back to displacements."""
    nets = LeedNetworks(ModelConfig(width=WIDTH))
    shape = (3, 8, 8, 32)
    rng = np.random.default_rng(1)
    code, neutral = rng.normal(50, 30, shape).astype(np.float32), rng.normal(50, 30, shape).astype(np.float32)
    stats = nets.code_scale.measure(code, neutral)
    m, s, sd = (stats[k].astype(np.float32) for k in ("mean", "std", "displacement_std"))
    expression = nets.expression_code(code, neutral).numpy()
    np.testing.assert_allclose(expression, nets.extractor((code - neutral) / sd).numpy(), rtol=1e-5, atol=1e-5)
    residual = nets.interpolator(np.concatenate([(neutral - m) / s, expression], -1)).numpy()
    np.testing.assert_allclose(nets.edited_code(neutral, expression).numpy(), neutral + sd * residual,
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(nets.critic_input(code).numpy(), (code - m) / s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("standardize", [True, False])
def test_leed_stage_measures_statistics_once_and_checkpoints_them(setup, tmp_path, standardize):  # noqa: F811
    config, images, neutrals, _, validation = setup
    config.leed.standardize_codes = standardize
    nets = LeedNetworks(config.model)
    LeedTrainer(config, str(tmp_path), nets, images, neutrals, validation, groups=GROUPS).fit(max_steps=1)
    std = nets.code_scale.std.numpy()
    if standardize:
        codes = nets.encoder(tf.constant(images, tf.float32) / 127.5 - 1.0).numpy()
        assert not np.allclose(std, 1.0)
        # Measured on the faces and their mirror images: the mean of both.
        mirrored = nets.encoder(tf.constant(images[:, :, ::-1], tf.float32) / 127.5 - 1.0).numpy()
        np.testing.assert_allclose(nets.code_scale.mean.numpy(),
                                   np.concatenate([codes, mirrored]).mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_array_equal(std, 1.0)
    # Resumed, the stage restores them instead of measuring again.
    restored = LeedNetworks(config.model)
    trainer = LeedTrainer(config, str(tmp_path), restored, tiny_faces(seed=5), neutrals, validation,
                          groups=GROUPS)
    trainer.fit(max_steps=2)
    np.testing.assert_array_equal(restored.code_scale.std.numpy(), std)
    # And inference restores them from the stage's checkpoint.
    other = LeedNetworks(config.model)
    restore_stage(other, str(tmp_path), "leed")
    np.testing.assert_array_equal(other.code_scale.std.numpy(), std)


def test_checkpoint_from_before_code_statistics_restores_identity(setup, tmp_path):  # noqa: F811
    """A LEED checkpoint without CodeScale (written before it existed) was
    trained on raw codes: it restores with the identity statistics."""
    config, images, neutrals, _, validation = setup
    nets = LeedNetworks(config.model)
    trainer = LeedTrainer(config, str(tmp_path), nets, images, neutrals, validation, groups=GROUPS)
    objects = trainer.checkpoint_objects()
    del objects["code_scale"]
    tf.train.Checkpoint(**objects).save(str(tmp_path / "leed" / "checkpoints" / "ckpt"))
    restored = LeedNetworks(config.model)
    restored.code_scale.std.assign(np.full(restored.code_scale.channels, 5.0, np.float32))
    restore_stage(restored, str(tmp_path), "leed")
    np.testing.assert_array_equal(restored.code_scale.std.numpy(), 1.0)
    np.testing.assert_array_equal(restored.interpolator.get_weights()[0], nets.interpolator.get_weights()[0])
