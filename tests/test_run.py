"""The whole pipeline end to end on a tiny synthetic run: every stage, the
neutral cache, metrics, resume of a finished run, refusal of a changed run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from leed_tf.config import previous_synthetic_defaults
from leed_tf.training import run


def tiny_config():
    config = previous_synthetic_defaults()
    config.data.synthetic_subjects = 4          # 3 for training, 1 held out
    config.data.synthetic_poses = (0.0,)
    config.data.neutral_source = "stargan"     # exercise all three stages
    for stage in (config.neutralizer, config.autoencoder, config.leed):
        stage.epochs, stage.batch_size = 1, 8
    config.leed.decay_epochs = 1
    config.neutralizer.n_critic = 1
    return config


def test_full_tiny_run_then_resume_and_refusal(tmp_path):
    run_dir = str(tmp_path / "run")
    summary = run.train(tiny_config(), run_dir)

    assert set(summary["stages"]) == {"neutralizer", "autoencoder", "leed"}
    for stage in ("neutralizer", "autoencoder", "leed"):
        assert os.path.exists(os.path.join(run_dir, stage, "finished.json")), stage
        assert os.path.exists(os.path.join(run_dir, "samples", f"{stage}.png")), stage
    neutrals = np.load(os.path.join(run_dir, "cache", "neutrals_train.npy"))
    assert neutrals.shape == (24, 128, 128, 3) and neutrals.dtype == np.uint8
    results = summary["validation"]
    assert set(results) == {"copy_input", "feature_arithmetic", "leed", "feature_arithmetic_residual",
                            "leed_residual"}
    assert all(np.isfinite(v["psnr"]) and v["psnr"] < 100 for v in results.values())
    assert json.load(open(os.path.join(run_dir, "metrics.json")))["validation"] == results

    # A finished run trains nothing more and reproduces its metrics.
    again = run.train(tiny_config(), run_dir)
    assert again["stages"] == {}
    assert again["validation"]["leed"]["psnr"] == pytest.approx(results["leed"]["psnr"], abs=1e-4)

    changed = tiny_config()
    changed.model.width = 0.25
    with pytest.raises(ValueError, match="model.width"):
        run.train(changed, run_dir)


def test_dataset_neutrals_skip_the_neutralizer(tmp_path):
    config = tiny_config()
    config.data.neutral_source = "dataset"
    assert run.default_stages(config, str(tmp_path)) == ["autoencoder", "leed"]
    with pytest.raises(FileNotFoundError, match="autoencoder"):
        run.train(config, str(tmp_path), stages=["leed"])
    # Nothing to train, and the missing auto-encoder is not restored.
    assert run.train(config, str(tmp_path), stages=["neutralizer"])["stages"] == {}


def test_each_stage_alone_ends_with_a_summary(tmp_path, capsys):
    """``--stages`` with one stage trains it, restores only the earlier
    stages and ends with a summary; the later ones need not exist yet."""
    run_dir = str(tmp_path / "run")
    alone = run.train(tiny_config(), run_dir, stages=["neutralizer"])
    assert set(alone["stages"]) == {"neutralizer"} and "validation" not in alone
    assert os.path.exists(os.path.join(run_dir, "neutralizer", "finished.json"))
    assert not os.path.exists(os.path.join(run_dir, "autoencoder"))
    assert "Finished in" in capsys.readouterr().out

    alone = run.train(tiny_config(), run_dir, stages=["autoencoder"])
    assert set(alone["stages"]) == {"autoencoder"} and "validation" not in alone
    assert not os.path.exists(os.path.join(run_dir, "leed"))

    alone = run.train(tiny_config(), run_dir, stages=["leed"])
    assert set(alone["stages"]) == {"leed"} and np.isfinite(alone["validation"]["leed"]["psnr"])
    assert json.load(open(os.path.join(run_dir, "metrics.json")))["stages"].keys() == {"leed"}


_DETERMINISTIC_RUN = """
import hashlib, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_run import tiny_config
from leed_tf.training import run
config = tiny_config()
config.data.neutral_source = "dataset"
config.deterministic = True
# 6 auto-encoder steps of 24 faces: where unflagged runs were seen to differ.
config.autoencoder.batch_size = config.leed.batch_size = 24
config.autoencoder.epochs, config.leed.epochs = 6, 2
_, nets = run.train_networks(config, sys.argv[1])
weights = [v.numpy() for n in (nets.encoder, nets.decoder, nets.extractor, nets.interpolator) for v in n.variables]
print("digest", hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest())
"""


def test_deterministic_runs_agree_bit_for_bit(tmp_path):
    # Without the option this very run came out with two different sets of
    # weights in three tries (rounding differences that Adam amplifies).
    code = _DETERMINISTIC_RUN.format(tests=os.path.dirname(__file__))
    digests = []
    for name in ("a", "b", "c"):
        process = subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], capture_output=True,
                                 text=True, timeout=600)
        assert process.returncode == 0, process.stderr[-3000:]
        digests.append([line for line in process.stdout.splitlines() if line.startswith("digest")])
    assert digests[0] and digests[0] == digests[1] == digests[2]


def test_deterministic_refuses_other_strategies(tmp_path):
    config = tiny_config()
    config.deterministic, config.strategy = True, "mirrored"
    with pytest.raises(ValueError, match="default strategy only"):
        run.train(config, str(tmp_path))


def test_deterministic_needs_a_fresh_process():
    code = ("import tensorflow as tf\nfrom leed_tf.training import distribute\n"
            "tf.constant(1.0) + 1.0\ndistribute.make_deterministic()\n")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert process.returncode != 0
    assert "before TensorFlow runs anything" in process.stderr
