"""Evaluation building blocks on known inputs: PSNR / SSIM / L1, FID (with a
random-initialised InceptionV3), the weights file's search and message,
dlib identity embeddings (when installed), evaluation pairs and their
ground truth, TensorBoard scalars, charts and the Markdown report."""

import importlib.util
import logging
import sys
import time

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from leed_tf.data import sources, synthetic
from leed_tf.evaluation import charts, events, fid, figures, identity, metrics, report
from leed_tf.evaluation.pairs import edit_pairs
from leed_tf.evaluation.synthetic_eval import ground_truths, truth_indices

FID_SIZE = 75  # InceptionV3's smallest input keeps the FID tests to seconds.


def random_faces(n=4, size=32, seed=0):
    return np.random.default_rng(seed).uniform(-0.8, 0.8, (n, size, size, 3)).astype(np.float32)


# ---------------------------------------------------------------- metrics


def test_identical_images_psnr_inf_ssim_one_l1_zero():
    faces = random_faces()
    np.testing.assert_array_equal(metrics.psnr(faces, faces), np.inf)
    np.testing.assert_allclose(metrics.ssim(faces, faces), 1.0, atol=1e-6)
    np.testing.assert_array_equal(metrics.l1(faces, faces), 0.0)
    uint8 = synthetic.render_face_set(1, poses=(0.0,), expressions=("happy",), size=32).images
    assert np.isinf(metrics.psnr(uint8, uint8)).all()


def test_constant_shift_gives_known_l1_and_psnr():
    faces = random_faces()
    shifted = faces + 0.1
    np.testing.assert_allclose(metrics.l1(shifted, faces), 0.1, rtol=1e-5)
    # MSE 0.01 over the range 2 of [-1, 1]: 10 log10(4 / 0.01) dB.
    np.testing.assert_allclose(metrics.psnr(shifted, faces), 10 * np.log10(4 / 0.01), rtol=1e-4)
    # The same shift on [0, 1] images, range 1: 10 log10(1 / 0.01) = 20 dB.
    unit = (faces + 1) / 2
    np.testing.assert_allclose(metrics.psnr(unit + 0.1, unit, data_range=1.0), 20.0, rtol=1e-4)


def test_psnr_matches_its_formula_and_ssim_falls_with_noise():
    faces = random_faces()
    rng = np.random.default_rng(1)
    noisy = faces + rng.normal(0, 0.05, faces.shape).astype(np.float32)
    mse = ((noisy.astype(np.float64) - faces) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.psnr(noisy, faces), 10 * np.log10(4 / mse), rtol=1e-4)
    noisier = faces + rng.normal(0, 0.3, faces.shape).astype(np.float32)
    assert np.all(metrics.ssim(noisier, faces) < metrics.ssim(noisy, faces))
    assert np.all(metrics.ssim(noisy, faces) < 1.0)


def test_means_keep_identical_pairs_finite_and_counted():
    summary = metrics.summarize({"psnr": np.array([np.inf, 20.0]), "l1": np.array([0.0, 0.2]),
                                 "expression_accuracy": np.array([1.0, 0.0])})
    assert summary == pytest.approx({"psnr": (metrics.PSNR_CAP_DB + 20.0) / 2, "identical": 1,
                                     "l1": 0.1, "expression_accuracy": 0.5})


def test_metrics_reject_mismatched_batches():
    with pytest.raises(ValueError, match="one shape"):
        metrics.psnr(random_faces(2), random_faces(3))
    with pytest.raises(ValueError, match="uint8"):
        metrics.l1(np.zeros((1, 4, 4, 3), np.int32), np.zeros((1, 4, 4, 3), np.int32))


# ---------------------------------------------------------------- FID


def test_frechet_distance_of_known_sets_in_both_forms():
    rng = np.random.default_rng(0)
    for n, d in ((20, 64), (300, 4)):  # n*n <= d*d takes the SVD form, otherwise eigh.
        a = rng.normal(size=(n, d))
        assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
        # A constant shift moves only the means: d * 0.5^2.
        assert fid.frechet_distance(a, a + 0.5) == pytest.approx(d * 0.25, rel=1e-9)
        # Doubling the spread: S_b = 4 S_a, so the trace term is tr(S_a + 4 S_a - 4 S_a) = tr(S_a).
        centred = a - a.mean(0)
        expected = np.trace(np.cov(a, rowvar=False)) + np.sum(a.mean(0) ** 2)
        assert fid.frechet_distance(a, 2 * centred + 2 * a.mean(0)) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        fid.frechet_distance(a[:1], a)


@pytest.fixture(scope="module")
def random_inception():
    keras.utils.set_random_seed(0)
    return fid.build_inception(weights=None, input_size=FID_SIZE)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(random_inception):
    faces = synthetic.render_face_set(3, poses=(0.0,), size=FID_SIZE).images  # 24 faces
    features = fid.InceptionFeatures(random_inception, batch_size=24)
    clean = features(faces)
    rng = np.random.default_rng(0)
    unit = metrics.as_unit_images(faces)
    distances = [fid.frechet_distance(clean, features(np.clip(unit + rng.normal(0, s, unit.shape), -1, 1)
                                                      .astype(np.float32)))
                 for s in (0.05, 0.2, 0.5)]
    assert abs(fid.frechet_distance(clean, clean)) < 1e-3 * distances[0]
    assert 0 < distances[0] < distances[1] < distances[2]


def test_missing_inception_weights_name_the_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as info:
        fid.build_inception()
    message = str(info.value)
    assert fid.INCEPTION_NOTOP_FILE in message and "Nothing is downloaded" in message
    for place in (tmp_path / "keras_home" / "models", tmp_path / "home" / ".keras" / "models"):
        assert str(place / fid.INCEPTION_NOTOP_FILE) in message
    with pytest.raises(FileNotFoundError, match="elsewhere.h5"):
        fid.build_inception(str(tmp_path / "elsewhere.h5"))
    with pytest.raises(ValueError, match="at least 75"):
        fid.build_inception(None, input_size=64)


def write_legacy_h5(model, path):
    """Writes ``model``'s weights in the layout of Keras' ``*_notop.h5``
    files: a group per layer, its ``weight_names`` in order."""
    with h5py.File(path, "w") as f:
        layers = [layer for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}_{i}:0" for i, w in enumerate(layer.weights)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)


def test_inception_weights_are_read_from_the_keras_cache(tmp_path, monkeypatch, random_inception):
    models = tmp_path / "keras_home" / "models"
    models.mkdir(parents=True)
    write_legacy_h5(random_inception, models / fid.INCEPTION_NOTOP_FILE)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    loaded = fid.build_inception(input_size=FID_SIZE)  # Initialised at random, then loaded.
    assert len(loaded.weights) == len(random_inception.weights)
    for mine, original in zip(loaded.weights, random_inception.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(original))


# ---------------------------------------------------------------- dlib


def test_identity_reports_how_to_install_when_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "dlib" else real(name, *a))
    assert "pip install" in identity.available() and "dlib" in identity.available()
    with pytest.raises(ImportError, match=r"\.\[eval\]"):
        identity.FaceEmbedder()


@pytest.mark.skipif(identity.available() is not None, reason=f"{identity.available()}")
def test_dlib_embeddings_tell_identities_apart():
    sys.modules.pop("face_recognition_models", None)
    embedder = identity.FaceEmbedder()
    # The model files are read without running face_recognition_models' __init__ (pkg_resources).
    assert "face_recognition_models" not in sys.modules
    faces = synthetic.render_face_set(3, poses=(0.0,), expressions=("neutral", "happy", "sad", "surprised"))
    descriptors, detected = embedder.embed(faces.images)
    assert descriptors.shape == (12, 128) and detected.dtype == bool
    same_image = identity.identity_distances(descriptors, descriptors)
    np.testing.assert_array_equal(same_image["identity_distance"], 0.0)
    np.testing.assert_array_equal(same_image["same_person"], 1.0)
    distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=-1)
    same = faces.subjects[:, None] == faces.subjects[None]
    off_diagonal = ~np.eye(len(faces), dtype=bool)
    # On these drawn faces dlib is weak, but still closer within an identity than across.
    assert distances[same & off_diagonal].mean() < distances[~same].mean()


# ---------------------------------------------------------------- pairs


def test_pairs_ask_for_real_edits_and_ground_truth_is_the_render():
    faces = synthetic.render_face_set(3, poses=(-45.0, 45.0), size=64, first_subject=10)
    pairs = edit_pairs(faces, seed=0)
    assert len(pairs) == len(faces) * 7  # every face to every other expression
    assert np.all(faces.subjects[pairs.references] != faces.subjects[pairs.inputs])
    assert np.all(faces.expressions[pairs.references] == pairs.targets)
    assert np.all(pairs.targets != faces.expressions[pairs.inputs])
    assert np.all(truth_indices(faces, pairs) >= 0)
    some = pairs.subset(np.arange(0, len(pairs), 37))
    np.testing.assert_array_equal(ground_truths(faces, some),
                                  sources.ground_truth(faces, some.inputs, some.references))
    assert len(edit_pairs(faces, seed=0, max_pairs=10)) == 10
    with pytest.raises(ValueError, match="at least 2 held-out subjects"):
        edit_pairs(faces.subset(np.flatnonzero(faces.subjects == 0)))


# ---------------------------------------------------------------- logs, charts, report


def write_scalars(log_dir, values_by_step, tag="losses/leed/reconstruction"):
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for step, value in values_by_step.items():
            tf.summary.scalar(tag, value, step=step)
        tf.summary.image("images/leed", np.zeros((1, 4, 4, 3), np.float32), step=0)
    writer.close()


def test_scalars_from_event_files_later_files_win(tmp_path):
    write_scalars(tmp_path / "train", {1: 3.0, 2: 2.0, 3: 1.5})
    time.sleep(1.1)  # Event file names carry the creation time in seconds.
    write_scalars(tmp_path / "train", {3: 1.0, 4: 0.5})  # a resumed run writes step 3 again
    write_scalars(tmp_path / "validation", {4: 20.0}, tag="metrics/leed/edit_psnr")
    scalars = events.run_scalars(str(tmp_path))
    steps, values = scalars["train"]["losses/leed/reconstruction"]
    np.testing.assert_array_equal(steps, [1, 2, 3, 4])
    np.testing.assert_allclose(values, [3.0, 2.0, 1.0, 0.5])
    assert "images/leed" not in scalars["train"]
    assert events.read_scalars(str(tmp_path / "missing")) == {}
    figure = figures.loss_curve_figure(str(tmp_path))
    assert figure.dtype == np.uint8 and figure.shape[2] == 3
    assert figures.loss_curve_figure(str(tmp_path / "empty")) is None


def test_event_file_cut_short_is_read_up_to_the_cut(tmp_path, caplog):
    write_scalars(tmp_path, {1: 3.0, 2: 2.0, 3: 1.0})
    (path,) = tmp_path.glob("events.out.tfevents.*")
    path.write_bytes(path.read_bytes()[:-5])  # a training still writing its last record (the image)
    with caplog.at_level(logging.WARNING):
        steps, _ = events.read_scalars(str(tmp_path))["losses/leed/reconstruction"]
    np.testing.assert_array_equal(steps, [1, 2, 3])
    assert "is cut short" in caplog.text


def test_bar_lengths_follow_the_values_and_missing_is_na():
    image = charts.bar_chart("t", ["a", "b", "c"], [1.0, 2.0, None])
    bar_colour = np.all(image == charts.PALETTE[0], axis=-1)
    rows = [bar_colour[30 + 22 * i + 11].sum() for i in range(3)]  # middle line of each row
    assert rows[1] == pytest.approx(2 * rows[0], abs=2) and rows[2] == 0
    grouped = charts.grouped_bar_chart("t", ["x", "y"], {"m": [0.5, None], "n": [1.0, 0.2]})
    assert grouped.ndim == 3


def small_metrics():
    entry = {"available": True, "description": "copy the input",
             "overall": {"psnr": 25.0, "identical": 0, "ssim": 0.9, "l1": 0.02, "expression_accuracy": 0.1,
                         "identity_retention": 1.0},
             "per_expression": {"happy": {"psnr": 24.0, "expression_accuracy": 0.0, "identity_retention": 1.0}},
             "per_pose": {"0": {"psnr": 25.0, "expression_accuracy": 0.1, "identity_retention": 1.0}}}
    return {"protocol": "synthetic",
            "run": {"run_dir": "/r", "dataset": "synthetic", "width": 0.125, "neutral_source": "dataset",
                    "unfinished_stages": []},
            "pairs": {"count": 7, "description": "d", "held_out_subjects": ["s9"], "expressions": ["happy"]},
            "methods": {"copy_input": entry,
                        "stargan": {"available": False, "description": "StarGAN", "reason": "not trained"}},
            "ground_truth": {"overall": {"expression_accuracy": 0.97, "identity_retention": 0.99},
                             "per_expression": {"happy": {"expression_accuracy": 0.95}}}}


def test_report_tables_hold_every_method_and_why_one_is_missing():
    text = report.markdown_report(small_metrics())
    assert "| copy the input | 25.00 | 0.900 | 0.020 | 10.0 % | 100.0 % |" in text
    assert "| StarGAN (unavailable¹) | n/a | n/a | n/a | n/a | n/a |" in text
    assert "¹ stargan: not trained." in text
    assert "| happy | 24.00 |" in text and "| happy | 0.0 % | 95.0 % |" in text
    charts_by_name = figures.metric_charts(small_metrics())
    assert {"chart_overall.png", "chart_psnr_per_expression.png"} <= set(charts_by_name)
