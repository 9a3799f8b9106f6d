"""scripts/evaluate.py end to end on a tiny trained run (every stage, 2 steps):
metrics.json with every method and the breakdowns, results.md, the figures,
classifiers trained on first use and reused; the evaluation's numbers equal
a direct computation; the real-data protocol; scripts/train_classifier.py."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from leed_tf.config import previous_synthetic_defaults
from leed_tf.data.images import to_uint8
from leed_tf.data.records import RAFD_EXPRESSIONS
from leed_tf.evaluation import evaluate, fid, identity, methods, metrics
from leed_tf.evaluation.classifiers import ImageClassifier
from leed_tf.evaluation.pairs import edit_pairs
from leed_tf.evaluation.synthetic_eval import evaluate_synthetic, ground_truths, held_out_faces
from leed_tf.model import LeedNetworks, restore_stage
from leed_tf.training import run

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT = 300
POSES = (-45.0, 45.0)


def tiny_config():
    config = previous_synthetic_defaults()
    config.model.width = 0.0625
    config.data.synthetic_subjects = 4
    config.data.test_fraction = 0.5              # 2 training, 2 held-out identities
    config.data.synthetic_poses = POSES
    config.data.neutral_source = "stargan"       # a neutralizer, so the StarGAN method runs too
    for stage in (config.neutralizer, config.autoencoder, config.leed):
        stage.epochs, stage.batch_size = 1, 8
    config.leed.decay_epochs = 1
    config.neutralizer.n_critic = 1
    config.log_every = 1                         # losses in TensorBoard for the loss curves
    return config


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny run evaluated once by the script; returns (run_dir, metrics, stdout)."""
    run_dir = str(tmp_path_factory.mktemp("evaluation") / "run")
    run.train(tiny_config(), run_dir, max_steps=2)
    process = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"--run_dir={run_dir}", "--classifier_epochs=1",
         "--batch_size=64"], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, cwd=str(ROOT))
    assert process.returncode == 0, process.stderr[-3000:]
    with open(os.path.join(run_dir, "eval", "metrics.json")) as f:
        return run_dir, json.load(f), process.stdout


def test_script_writes_every_method_with_breakdowns(evaluated):
    run_dir, result, stdout = evaluated
    assert result["protocol"] == "synthetic"
    assert list(result["methods"]) == list(methods.METHODS)
    assert result["pairs"]["count"] == 2 * len(RAFD_EXPRESSIONS) * len(POSES) * (len(RAFD_EXPRESSIONS) - 1)
    # Every face but the neutral ones has one pair towards neutral.
    kinds = len(RAFD_EXPRESSIONS)
    assert result["pairs"]["expressive"] == result["pairs"]["count"] * (kinds - 1) // kinds
    for name, entry in result["methods"].items():
        assert entry["available"], (name, entry)
        assert set(entry["overall"]) == {"psnr", "identical", "ssim", "l1", "expression_accuracy",
                                         "identity_retention"}
        targets = set(RAFD_EXPRESSIONS) - ({"neutral"} if name in methods.NEUTRAL_ANCHORED else set())
        assert set(entry["per_expression"]) == targets
        assert set(entry["per_pose"]) == {"-45", "45"}
        assert all(np.isfinite(v) for v in entry["overall"].values())
        # Neutral-anchored methods are averaged over the expressive targets only.
        same = entry["expressive_targets"] == entry["overall"]
        assert same == (name in methods.NEUTRAL_ANCHORED), name
        assert entry["expressive_targets"]["identical"] == 0, name
    psnr = {name: entry["overall"]["psnr"] for name, entry in result["methods"].items()}
    # The input differs from the truth only in its expression; the reference in everything.
    assert psnr["copy_input"] > psnr["copy_reference"]
    assert result["methods"]["copy_input"]["overall"]["identical"] == 0
    assert set(result["ground_truth"]["overall"]) == {"expression_accuracy", "identity_retention"}
    assert result["classifiers"]["expression"]["trained_now"] and result["classifiers"]["identity"]["trained_now"]
    assert "No expression classifier" in stdout and "| method | PSNR (dB)" in stdout

    out = os.path.join(run_dir, "eval")
    text = open(os.path.join(out, "results.md")).read()
    assert "| **LEED** `Dec(z_out)` |" in text and "PSNR (dB) by input yaw" in text
    neutralizer = result["neutralizer"]
    assert {"psnr", "ssim", "classified_neutral", "identity_retention"} <= set(neutralizer["neutralizer"])
    assert 0 <= neutralizer["neutralizer"]["classified_neutral"] <= 1 and neutralizer["faces"] > 0
    assert f"## Neutralizer ({neutralizer['faces']} held-out expressive faces)" in text
    assert f"## Edits towards an expression other than neutral ({result['pairs']['expressive']} pairs)" in text
    assert ("| **LEED, neutral-anchored** `N_in + Dec(z_out) − Dec(z_nn)` (`Dec(n_in)` with "
            "residual_base=code) ² |") in text
    per_expression, per_pose = text.split("## Per target expression")[1].split("## Per input pose")
    # Per pose, only methods measured on the same (all) pairs sit side by side.
    assert "LEED neutral-anch." in per_expression and "LEED neutral-anch." not in per_pose
    for name in ("fig2_triplets.png", "comparison.png", "fig3_expressions.png", "loss_curves.png",
                 "chart_overall.png", "chart_expressive_targets.png", "chart_psnr_per_expression.png",
                 "chart_expression_accuracy_per_pose.png"):
        assert name in result["files"] and os.path.getsize(os.path.join(out, name)) > 1000, name
    for kind in ("expression", "identity"):
        assert ImageClassifier.load(os.path.join(out, "classifiers", kind)).kind == kind


def test_numbers_equal_a_direct_computation_and_stargan_can_be_unavailable(evaluated):
    run_dir, _, _ = evaluated
    restored = methods.restore_run(run_dir)
    without_stargan = dataclasses.replace(restored, stargan_unavailable="not trained in this test")
    folder = os.path.join(run_dir, "eval", "classifiers")
    expression, identity_classifier = (ImageClassifier.load(os.path.join(folder, k)) for k in ("expression",
                                                                                               "identity"))
    evaluation = evaluate_synthetic(without_stargan, expression, identity_classifier, seed=3, max_pairs=16,
                                    log=lambda *_: None)
    result = evaluation.metrics
    assert result["methods"]["stargan"] == {"available": False, "reason": "not trained in this test",
                                            "description": methods.DESCRIPTIONS["stargan"]}

    # The same pairs, computed from networks restored here stage by stage:
    # LEED's decoder for LEED, the auto-encoder's for feature arithmetic.
    faces = held_out_faces(restored)
    pairs = edit_pairs(faces, seed=3, max_pairs=16)
    nets = LeedNetworks(restored.config.model)
    restore_stage(nets, run_dir, "neutralizer", ["neutralizer"])
    # The neutralizer's block: its faces of the held-out expressive faces against their real neutral renders.
    rows = np.flatnonzero(faces.expressions != faces.expression_names.index("neutral"))
    real_neutral = faces.images[faces.neutral_indices()[rows]]
    own = to_uint8(nets.neutralize(metrics.as_unit_images(faces.images[rows])).numpy())
    for name, images in (("neutralizer", own), ("copy_input", faces.images[rows])):
        expected = metrics.mean_psnr(metrics.psnr(images, real_neutral))
        assert result["neutralizer"][name]["psnr"] == pytest.approx(expected, abs=1e-2), name
    restore_stage(nets, run_dir, "autoencoder", ["encoder", "decoder"])
    unit = [metrics.as_unit_images(x) for x in (faces.images[pairs.inputs], faces.images[pairs.references])]
    # Neutral faces pass through uint8, as training's neutral cache stores them.
    neutral = [metrics.as_unit_images(to_uint8(nets.neutralize(x).numpy())) for x in unit]
    truth = ground_truths(faces, pairs)
    arithmetic = np.clip(nets.feature_arithmetic(unit[0], neutral[0], unit[1], neutral[1]), -1, 1)
    restore_stage(nets, run_dir, "leed", ["code_scale", "extractor", "interpolator", "decoder"])
    leed = np.clip(nets.edit(unit[0], neutral[0], unit[1], neutral[1]), -1, 1)
    restore_stage(nets, run_dir, "autoencoder", ["decoder"])
    ceiling = np.clip(nets.truth_code_edit(unit[0], metrics.as_unit_images(truth), output="residual"), -1, 1)
    for name, images in (("leed", leed), ("feature_arithmetic", arithmetic), ("truth_code_residual", ceiling)):
        expected = metrics.mean_psnr(metrics.psnr(images, truth))
        assert result["methods"][name]["overall"]["psnr"] == pytest.approx(expected, abs=1e-3), name
        assert result["methods"][name]["overall"]["l1"] == pytest.approx(float(metrics.l1(images, truth).mean()),
                                                                       abs=1e-5), name


def test_real_data_protocol_fid_and_dlib(evaluated, tmp_path):
    run_dir, _, _ = evaluated
    keras.utils.set_random_seed(0)
    inception = fid.build_inception(weights=None, input_size=75)  # random weights: no file in tests
    result = evaluate.evaluate_run(
        run_dir, out_dir=str(tmp_path / "real"), classifier_dir=os.path.join(run_dir, "eval", "classifiers"),
        protocol="real", max_pairs=24, inception=inception, identity_pairs=4, log=lambda *_: None)
    assert result["protocol"] == "real" and result["pairs"]["count"] == 24
    assert not result["classifiers"]["expression"]["trained_now"]  # reused from the script's run
    assert "identity" not in result["classifiers"]
    assert 0 <= result["real_faces"]["overall"]["expression_accuracy"] <= 1
    entries = result["methods"]
    # Every method but the ceilings, which need a ground truth that real faces
    # do not have, and the neutral-anchored forms (synthetic protocol only).
    assert list(entries) == [m for m in methods.METHODS
                             if m not in methods.NEEDS_TRUTH + methods.NEUTRAL_ANCHORED]
    assert all(entry["available"] for entry in entries.values())
    for entry in entries.values():
        assert set(entry["per_expression"]) <= set(RAFD_EXPRESSIONS) and entry["overall"]["fid"] >= 0
    # Copying a held-out face scores nearer the held-out faces than LEED's 2-step decoder does.
    assert entries["copy_input"]["overall"]["fid"] < entries["leed"]["overall"]["fid"]
    if identity.available() is None:
        assert entries["copy_input"]["overall"]["identity_distance"] == 0.0
        assert entries["copy_input"]["overall"]["same_person"] == 1.0
        assert entries["copy_reference"]["overall"]["identity_distance"] > 0.0
    else:
        assert result["identity"] == {"available": False, "reason": identity.available(),
                                      "threshold": identity.SAME_PERSON_DISTANCE}
    text = open(tmp_path / "real" / "results.md").read()
    assert "| FID |" in text and "chart_overall.png" in result["files"]


def test_train_classifier_script(tmp_path):
    out = tmp_path / "identity"
    process = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_classifier.py"), "--kind=identity", f"--out={out}",
         "--synthetic_subjects=3", "--synthetic_poses=0", "--epochs=1"],
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, cwd=str(ROOT))
    assert process.returncode == 0, process.stderr[-3000:]
    classifier = ImageClassifier.load(str(out))
    assert classifier.kind == "identity" and classifier.class_names == ("s000", "s001", "s002")
    assert "identity classifier of 3 classes" in process.stdout
    assert classifier.info["checked_on"].endswith("(intensity 0.5, yaw -15, 15)")
