"""The encoder equals Keras' VGG19 up to block5_conv1 (pre-ReLU) when it loads
VGG19's weights from a local legacy-HDF5 file; a missing file is named."""

import h5py
import keras
import numpy as np
import pytest

from leed_tf.networks import encoder as encoder_lib


def write_legacy_h5(model, path):
    """Writes ``model``'s weights in the layout of Keras' ``*_notop.h5`` files."""
    with h5py.File(path, "w") as f:
        layers = [layer for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}_{'W' if i == 0 else 'b'}_1:0" for i in range(len(layer.weights))]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)


def test_encoder_reproduces_vgg19_block5_conv1(tmp_path):
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(128, 128, 3))
    # Random init has tiny biases; make them matter so a mis-ordered load fails.
    for layer in vgg.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.random.RandomState(0).normal(0, 0.1, bias.shape)])
    path = tmp_path / encoder_lib.VGG19_NOTOP_FILE
    write_legacy_h5(vgg, path)

    encoder = encoder_lib.Encoder(1.0)
    assert encoder_lib.load_vgg19_weights(encoder, str(path)) == str(path)

    images = np.random.RandomState(1).uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    pre_relu = keras.Model(vgg.input, vgg.get_layer("block5_conv1").output)
    # VGG's block5_conv1 applies ReLU; read its pre-activation by recomputing
    # the conv from block4_pool's output.
    block4 = keras.Model(vgg.input, vgg.get_layer("block4_pool").output)
    conv = vgg.get_layer("block5_conv1")
    caffe = keras.applications.vgg19.preprocess_input((images + 1.0) * 127.5)
    expected = keras.ops.convert_to_numpy(
        keras.ops.conv(block4(caffe), conv.kernel, padding="same") + conv.bias)
    actual = keras.ops.convert_to_numpy(encoder(images))
    assert actual.shape == (2, 8, 8, 512)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    # And the post-ReLU output of VGG19 agrees with ReLU of ours.
    np.testing.assert_allclose(np.maximum(actual, 0), keras.ops.convert_to_numpy(pre_relu(caffe)),
                               rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_missing_weights_file_names_the_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as info:
        encoder_lib.find_vgg19_weights()
    message = str(info.value)
    assert encoder_lib.VGG19_NOTOP_FILE in message
    assert str(tmp_path / "keras_home" / "models") in message
    assert "--encoder_weights" in message


def test_weights_found_in_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    cached = tmp_path / "models" / encoder_lib.VGG19_NOTOP_FILE
    cached.write_bytes(b"")
    assert encoder_lib.find_vgg19_weights() == str(cached)


def test_explicit_missing_path_and_wrong_width_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        encoder_lib.load_vgg19_weights(encoder_lib.Encoder(1.0), str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError, match="width=1.0"):
        encoder_lib.load_vgg19_weights(encoder_lib.Encoder(0.5), str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError, match="norm='none'"):
        encoder_lib.load_vgg19_weights(encoder_lib.Encoder(1.0, "batch"), str(tmp_path / "nope.h5"))


def test_file_without_vgg_layers_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_group("dense")
    with pytest.raises(ValueError, match="block1_conv1"):
        encoder_lib.load_vgg19_weights(encoder_lib.Encoder(1.0), str(path))
