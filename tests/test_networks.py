"""Shapes at width 0.125 and full-width parameter counts against the tables.

The expected counts are computed here from the seed's tables, row by row
(kernel x in x out + bias + normalisation parameters), not read off a model.
"""

import keras
import numpy as np
import pytest
from keras import ops

from leed_tf import networks

SMALL = 0.125


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def dense(cin, cout):
    return cin * cout + cout


def inorm(c):  # affine instance norm: gamma and beta
    return 2 * c


def bnorm(c):  # batch norm: gamma, beta, moving mean and variance
    return 4 * c


def build(model, *shapes):
    inputs = [ops.zeros((1,) + s) for s in shapes]
    model(inputs[0] if len(inputs) == 1 else tuple(inputs))
    return model


# --- Table 1 ---------------------------------------------------------------
def table1(cin):
    return conv(3, cin, 512) + conv(3, 512, 512) + conv(3, 512, 512)


def test_extractor_and_interpolator_full_width_match_table_1():
    assert build(networks.Extractor(1.0), (8, 8, 512)).count_params() == table1(512)
    assert build(networks.Interpolator(1.0), (8, 8, 1024)).count_params() == table1(1024)


def test_extractor_and_interpolator_shapes():
    e = networks.Extractor(SMALL)(np.zeros((2, 8, 8, 64), "float32"))
    assert e.shape == (2, 8, 8, 64)
    out = networks.Interpolator(SMALL)(np.zeros((2, 8, 8, 128), "float32"))
    assert out.shape == (2, 8, 8, 64)


def test_code_skips_start_x_and_i_as_feature_arithmetic_with_table_1s_convs():
    """model.code_skips (a deviation): X starts as e = d and I as I([n, e]) = e,
    with Table 1's parameters; the convs still act once they move."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(2, 8, 8, 64)).astype("float32")
    n_and_e = rng.normal(size=(2, 8, 8, 128)).astype("float32")
    extractor, interpolator = networks.Extractor(SMALL, skip=True), networks.Interpolator(SMALL, skip=True)
    np.testing.assert_array_equal(np.array(extractor(d)), d)
    np.testing.assert_array_equal(np.array(interpolator(n_and_e)), n_and_e[..., 64:])
    assert extractor.count_params() == build(networks.Extractor(SMALL), (8, 8, 64)).count_params()
    last = interpolator.blocks[-1].conv
    last.kernel.assign(rng.normal(size=last.kernel.shape).astype("float32") * 0.1)
    assert not np.allclose(np.array(interpolator(n_and_e)), n_and_e[..., 64:])


# --- Table 2 ---------------------------------------------------------------
def test_code_critic_full_width_matches_table_2():
    expected = (conv(1, 512, 256) + inorm(256) + conv(4, 256, 512) + inorm(512)
                + conv(4, 512, 1024) + inorm(1024) + conv(2, 1024, 1024))
    assert build(networks.CodeCritic(1.0), (8, 8, 512)).count_params() == expected


def test_code_critic_gives_one_score_per_code():
    assert networks.CodeCritic(SMALL)(np.zeros((2, 8, 8, 64), "float32")).shape == (2,)


# --- Table 3 ---------------------------------------------------------------
def test_encoder_full_width_matches_table_3():
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512]
    expected = sum(conv(3, a, b) for a, b in zip(channels[:-1], channels[1:]))
    assert build(networks.Encoder(1.0), (128, 128, 3)).count_params() == expected


def test_encoder_shape():
    assert networks.Encoder(SMALL)(np.zeros((2, 128, 128, 3), "float32")).shape == (2, 8, 8, 64)


def test_batch_norm_encoder_keeps_table_3_convs_and_normalises_in_training():
    plain, normed = networks.Encoder(SMALL), networks.Encoder(SMALL, "batch")
    images = np.random.default_rng(0).uniform(-1, 1, (4, 128, 128, 3)).astype("float32")
    plain(images), normed(images)
    assert [layer.kernel.shape for layer in plain.conv_layers] == [layer.kernel.shape for layer in normed.conv_layers]
    norms = [layer for layer in normed.body if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == len(normed.conv_layers) - 1  # Every conv but conv5_1, which has no ReLU.
    before = [np.array(v) for v in norms[0].non_trainable_weights]
    normed(images, training=False)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, norms[0].non_trainable_weights))
    normed(images, training=True)  # Batch statistics: the moving averages move.
    assert not all(np.array_equal(a, np.array(b)) for a, b in zip(before, norms[0].non_trainable_weights))
    with pytest.raises(ValueError, match="norm"):
        networks.Encoder(SMALL, "group")


# --- Table 4 ---------------------------------------------------------------
def test_decoder_full_width_matches_table_4():
    channels = [512, 512, 256, 256, 256, 256, 128, 128, 128, 128, 64, 64, 64]
    expected = sum(conv(3, a, b) + bnorm(b) for a, b in zip(channels[:-1], channels[1:]))
    expected += conv(3, 64, 3)
    assert build(networks.Decoder(1.0), (8, 8, 512)).count_params() == expected


def test_decoder_shape():
    assert networks.Decoder(SMALL)(np.zeros((2, 8, 8, 64), "float32")).shape == (2, 128, 128, 3)


def test_code_stride_8_gives_16x16_codes_with_the_tables_convs():
    """model.code_stride=8 (a deviation): one pool and one upsample fewer, the
    same convs and parameter counts, every code network running on 16x16 codes."""
    images = np.random.default_rng(0).uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    encoder, decoder = networks.Encoder(SMALL, code_stride=8), networks.Decoder(SMALL, code_stride=8)
    code = encoder(images)
    assert code.shape == (2, 16, 16, 64)
    assert decoder(code).shape == (2, 128, 128, 3)
    assert encoder.count_params() == build(networks.Encoder(SMALL), (128, 128, 3)).count_params()
    assert decoder.count_params() == build(networks.Decoder(SMALL), (8, 8, 64)).count_params()
    pools = [layer.name for layer in encoder.body if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == ["block1_pool", "block2_pool", "block3_pool"]
    assert sum(isinstance(layer, keras.layers.UpSampling2D) for layer in decoder.body) == 3
    assert networks.Regularizer(SMALL)(code).shape == (2, 16)
    assert networks.CodeCritic(SMALL)(code).shape == (2,)
    assert networks.Extractor(SMALL)(code).shape == code.shape
    with pytest.raises(ValueError, match="Encoder code_stride"):
        networks.Encoder(SMALL, code_stride=4)
    with pytest.raises(ValueError, match="Decoder code_stride"):
        networks.Decoder(SMALL, code_stride=4)


@pytest.mark.parametrize("stride", [16, 8])
def test_patch_path_adds_a_linear_patch_code_beside_the_tables_convs(stride):
    """model.patch_path (a deviation): the tables' convs plus one 1x1 conv each
    way between image patches and code cells, whose contribution is linear."""
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    side, channels, patch = 128 // stride, 64, stride * stride * 3
    encoder = networks.Encoder(SMALL, code_stride=stride, patch_path=True)
    decoder = networks.Decoder(SMALL, code_stride=stride, patch_path=True)
    code = encoder(images)
    assert code.shape == (2, side, side, channels)
    assert decoder(code).shape == (2, 128, 128, 3)
    plain_encoder = build(networks.Encoder(SMALL, code_stride=stride), (128, 128, 3))
    plain_decoder = build(networks.Decoder(SMALL, code_stride=stride), (side, side, channels))
    assert encoder.count_params() == plain_encoder.count_params() + dense(patch, channels)
    assert decoder.count_params() == plain_decoder.count_params() + dense(channels, patch)
    # With the tables' convs silenced, the encoder is the patch path alone:
    # the 1x1 conv of each flattened stride x stride patch.
    for layer in encoder.conv_layers:
        layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
        layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
    project = encoder.patches.project
    patches = images.reshape(2, side, stride, side, stride, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, side, side, patch)
    expected = patches @ np.array(project.kernel)[0, 0] + np.array(project.bias)
    np.testing.assert_allclose(np.array(encoder(images)), expected, atol=1e-4)
    # The decoder's patch path lays each cell's numbers out as its patch.
    head = decoder.patches(code)
    cells = np.array(code) @ np.array(decoder.patches.project.kernel)[0, 0] + np.array(decoder.patches.project.bias)
    laid_out = cells.reshape(2, side, side, stride, stride, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 128, 128, 3)
    np.testing.assert_allclose(np.array(head), laid_out, atol=1e-4)


# --- Table 5 ---------------------------------------------------------------
def test_regularizer_full_width_matches_table_5():
    expected = conv(8, 512, 512) + bnorm(512) + dense(512, 128) + bnorm(128) + dense(128, 16)
    assert build(networks.Regularizer(1.0), (8, 8, 512)).count_params() == expected


def test_regularizer_shape():
    assert networks.Regularizer(SMALL)(np.zeros((2, 8, 8, 64), "float32")).shape == (2, 16)


# --- Table 6 ---------------------------------------------------------------
def test_siamese_full_width_matches_table_6():
    channels = [3, 64, 128, 256, 512, 1024, 1024]
    expected = sum(conv(4, a, b) + inorm(b) for a, b in zip(channels[:-1], channels[1:]))
    expected += dense(2 * 2 * 1024, 1024)
    assert build(networks.Siamese(1.0), (128, 128, 3)).count_params() == expected


def test_siamese_shape():
    assert networks.Siamese(SMALL)(np.zeros((2, 128, 128, 3), "float32")).shape == (2, 1024)


# --- StarGAN neutralizer (official model.py) -------------------------------
def test_stargan_generator_full_width_matches_official_layout():
    c = 8
    expected = conv(7, 3 + c, 64, bias=False) + inorm(64)
    expected += conv(4, 64, 128, bias=False) + inorm(128) + conv(4, 128, 256, bias=False) + inorm(256)
    expected += 6 * 2 * (conv(3, 256, 256, bias=False) + inorm(256))
    expected += conv(4, 256, 128, bias=False) + inorm(128) + conv(4, 128, 64, bias=False) + inorm(64)
    expected += conv(7, 64, 3, bias=False)
    g = build(networks.StarGANGenerator(1.0, num_domains=c), (128, 128, 3), (c,))
    assert g.count_params() == expected


def test_stargan_critic_full_width_matches_official_layout():
    c = 8
    channels = [3, 64, 128, 256, 512, 1024, 2048]
    expected = sum(conv(4, a, b) for a, b in zip(channels[:-1], channels[1:]))
    expected += conv(3, 2048, 1, bias=False) + conv(2, 2048, c, bias=False)
    assert build(networks.StarGANCritic(1.0, num_domains=c), (128, 128, 3)).count_params() == expected


def test_stargan_shapes():
    images = np.zeros((2, 128, 128, 3), "float32")
    labels = np.eye(8, dtype="float32")[[0, 5]]
    assert networks.StarGANGenerator(SMALL)((images, labels)).shape == (2, 128, 128, 3)
    source, domain = networks.StarGANCritic(SMALL)(images)
    assert source.shape == (2, 2, 2, 1) and domain.shape == (2, 8)


def test_width_scales_channels_not_space():
    small = networks.Decoder(0.25)(np.zeros((1, 8, 8, 128), "float32"))
    assert small.shape == (1, 128, 128, 3)
    with pytest.raises(ValueError, match="normalization"):
        networks.layers.normalization("LN")


def test_instance_norm_uses_per_image_statistics():
    norm = networks.layers.instance_norm()
    x = np.random.RandomState(0).normal(3.0, 2.0, (2, 4, 4, 3)).astype("float32")
    y = ops.convert_to_numpy(norm(x))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-3)
