"""LeedNetworks' edit math and the checkpoint helpers, at tiny width."""

import numpy as np
import pytest
import tensorflow as tf

from leed_tf.config import ModelConfig
from leed_tf.model import LeedNetworks, restore_stage, variables_by_path


@pytest.fixture(scope="module")
def nets():
    return LeedNetworks(ModelConfig(width=0.125))


def faces(n=2, seed=0):
    return tf.random.stateless_uniform([n, 128, 128, 3], [seed, 1], -1.0, 1.0)


def test_intensity_zero_decodes_the_neutral_code(nets):
    image, neutral, reference, reference_neutral = faces(seed=1), faces(seed=2), faces(seed=3), faces(seed=4)
    edit = nets.edit(image, neutral, reference, reference_neutral, intensity=0.0)
    expected = nets.decoder(nets.encoder(neutral), training=False)
    np.testing.assert_allclose(edit.numpy(), expected.numpy(), atol=1e-5)
    per_example = nets.edit(image, neutral, reference, reference_neutral, intensity=tf.constant([0.0, 1.0]))
    np.testing.assert_allclose(per_example[0].numpy(), expected[0].numpy(), atol=1e-5)
    assert not np.allclose(per_example[1].numpy(), expected[1].numpy(), atol=1e-3)


def test_residual_self_edit_returns_the_input(nets):
    image, neutral, other = faces(seed=5), faces(seed=6), faces(seed=7)
    same = nets.edit(image, neutral, image, neutral, output="residual")
    np.testing.assert_allclose(same.numpy(), image.numpy(), atol=1e-5)
    arithmetic = nets.feature_arithmetic(image, neutral, image, neutral, output="residual")
    np.testing.assert_allclose(arithmetic.numpy(), image.numpy(), atol=1e-5)
    # Another reference adds exactly the decoded change to the input.
    other_neutral = faces(seed=8)
    changed = nets.edit(image, neutral, other, other_neutral, output="residual")
    decoded_change = (nets.edit(image, neutral, other, other_neutral)
                      - nets.edit(image, neutral, image, neutral))
    np.testing.assert_allclose((changed - image).numpy(), decoded_change.numpy(), atol=1e-5)
    assert np.abs(decoded_change.numpy()).max() > 1e-4
    with pytest.raises(ValueError, match="output"):
        nets.edit(image, neutral, image, neutral, output="blend")


def test_neutral_residual_adds_the_change_to_the_neutral_face(nets):
    image, neutral, other, other_neutral = faces(seed=11), faces(seed=12), faces(seed=13), faces(seed=14)
    # A reference that is its own neutral face has no displacement: the edit
    # is the neutral face itself, exactly, for LEED and feature arithmetic.
    for method in (nets.edit, nets.feature_arithmetic):
        towards_neutral = method(image, neutral, other_neutral, other_neutral, output="neutral_residual")
        np.testing.assert_allclose(towards_neutral.numpy(), neutral.numpy(), atol=1e-5)
    # Another reference adds exactly its decoded change to the neutral face,
    # and the input's own expression plays no part.
    changed = nets.edit(image, neutral, other, other_neutral, output="neutral_residual")
    decoded_change = (nets.edit(image, neutral, other, other_neutral)
                      - nets.edit(image, neutral, other_neutral, other_neutral))
    np.testing.assert_allclose((changed - neutral).numpy(), decoded_change.numpy(), atol=1e-5)
    assert np.abs(decoded_change.numpy()).max() > 1e-4
    other_input = nets.edit(faces(seed=15), neutral, other, other_neutral, output="neutral_residual")
    np.testing.assert_allclose(other_input.numpy(), changed.numpy(), atol=1e-5)
    # Feature arithmetic: N + Dec(n + z_ref - n_ref) - Dec(n).
    n, z_ref, n_ref = (nets.encoder(x) for x in (neutral, other, other_neutral))
    expected = neutral + nets.decoder(n + z_ref - n_ref) - nets.decoder(n)
    np.testing.assert_allclose(nets.feature_arithmetic(image, neutral, other, other_neutral,
                                                       output="neutral_residual").numpy(),
                               expected.numpy(), atol=1e-5)


def test_residual_base_code_subtracts_the_anchors_own_decoding():
    # Table 1's X and I: the self-edit's code is not the input's, so the two
    # bases differ; with base "code" the change is measured from Dec(E(anchor)).
    coded = LeedNetworks(ModelConfig(width=0.125, residual_base="code"))
    image, neutral, other, other_neutral = faces(seed=21), faces(seed=22), faces(seed=23), faces(seed=24)
    z, n = coded.encoder(image), coded.encoder(neutral)
    decoded = coded.edit(image, neutral, other, other_neutral)
    for output, anchor, code in (("residual", image, z), ("neutral_residual", neutral, n)):
        expected = anchor + decoded - coded.decoder(code, training=False)
        np.testing.assert_allclose(coded.edit(image, neutral, other, other_neutral, output=output).numpy(),
                                   expected.numpy(), atol=1e-5)
    self_base = coded.edit_with_code(image, neutral, coded.expression_code(z, n), output="residual")
    assert np.abs(self_base.numpy() - image.numpy()).max() > 1e-4  # not the self-edit's base
    with pytest.raises(ValueError, match="residual_base"):
        ModelConfig(residual_base="input")


def test_truth_code_ceiling_decodes_the_truths_own_code(nets):
    image, truth = faces(seed=9), faces(seed=10)
    decoded = nets.truth_code_edit(image, truth)
    np.testing.assert_allclose(decoded.numpy(), nets.decoder(nets.encoder(truth), training=False).numpy(), atol=1e-5)
    residual = nets.truth_code_edit(image, truth, output="residual")
    expected = image + decoded - nets.decoder(nets.encoder(image), training=False)
    np.testing.assert_allclose(residual.numpy(), expected.numpy(), atol=1e-5)
    # The input as its own truth: the residual form gives it back exactly.
    np.testing.assert_allclose(nets.truth_code_edit(image, image, output="residual").numpy(), image.numpy(),
                               atol=1e-5)
    neutral = faces(seed=16)
    anchored = nets.truth_code_edit(image, truth, output="neutral_residual", neutral=neutral)
    expected = neutral + decoded - nets.decoder(nets.encoder(neutral), training=False)
    np.testing.assert_allclose(anchored.numpy(), expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="neutral face"):
        nets.truth_code_edit(image, truth, output="neutral_residual")


def test_checkpoints_hold_non_trainable_state_and_restore(nets, tmp_path):
    variables = variables_by_path(nets.decoder)
    assert any("moving_mean" in key for key in variables)
    assert len(variables) == len(nets.decoder.weights)
    folder = tmp_path / "autoencoder" / "checkpoints"
    tf.train.Checkpoint(encoder=variables_by_path(nets.encoder), decoder=variables).save(str(folder / "ckpt"))
    fresh = LeedNetworks(ModelConfig(width=0.125))
    restore_stage(fresh, str(tmp_path), "autoencoder")
    for a, b in zip(nets.decoder.weights, fresh.decoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(FileNotFoundError, match="'leed'.*--stages=leed"):
        restore_stage(fresh, str(tmp_path), "leed")
