"""Distribution, mixed precision and crash safety of the training stages
(issue 7), at tiny width.

Logical CPU devices and ``MultiWorkerMirroredStrategy`` must be set up before
TensorFlow initialises, so those tests run ``tests/distributed_worker.py`` in
fresh processes; everything runs on 127.0.0.1 and never touches the network.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from leed_tf.config import Config, previous_synthetic_defaults
from leed_tf.model import LeedNetworks
from leed_tf.training import distribute, run
from leed_tf.training.stages import AutoencoderTrainer, LeedTrainer, ValidationBatch
from test_training import tiny_faces

TESTS = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(TESTS, "distributed_worker.py")
REPO = os.path.dirname(TESTS)


def worker_env(**extra):
    """The test process's environment, this checkout first on the path."""
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)


def run_worker(*args, timeout=600, **env):
    process = subprocess.run([sys.executable, WORKER, *args], env=worker_env(**env), capture_output=True,
                             text=True, timeout=timeout)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return process


# -- MirroredStrategy on two logical CPU devices ------------------------------------

# In float32, rounding differences of 1e-6 at the first step (the per-device
# batch differs, so do the convolution kernels and the order of the batch-norm
# sums) grow under the stages' real learning rates to 1e-2 within 3 steps:
# Adam moves every weight by about lr whatever the gradient's size, and the
# tiny networks' ReLUs and batch norms amplify it. The float32 comparison
# therefore runs at 1/5000 of the learning rates (at 1/1000, LEED's 1e-3
# already parted the replicas' mutual-information loss by 1.5e-4 at the
# second step), so it compares the forward passes and gradients at nearly
# the same weights; the float64 one, where rounding stays far below Adam's
# epsilon, runs LEED at the real rates and compares the updates and Adam's
# moments too (with its frozen encoder run in the step, cache_codes=False,
# the other path).
FLOAT32_SPEC = "float32:neutralizer,autoencoder,leed:0.0002"
FLOAT64_SPEC = "float64:leed_uncached:1"


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("equivalence") / "out.json")
    run_worker("equivalence", out, FLOAT32_SPEC, FLOAT64_SPEC)
    with open(out) as f:
        return json.load(f)


def assert_steps_match(result, rtol, grad_rtol):
    default, mirrored = result["default"], result["mirrored"]
    assert len(default) == len(mirrored) == 3
    for step, (a, b) in enumerate(zip(default, mirrored)):
        assert a.keys() == b.keys()
        for key in a:
            # Gradient norms sum squares over every weight, near-constant
            # batch-norm channels included: they carry the rounding further.
            tolerance = grad_rtol if key.startswith("grad_norm") else rtol
            assert b[key] == pytest.approx(a[key], rel=tolerance, abs=1e-6), (step, key, a[key], b[key])


@pytest.mark.parametrize("stage", ["neutralizer", "autoencoder", "leed"])
def test_mirrored_strategy_matches_default_strategy_in_float32(equivalence, stage):
    assert equivalence["replicas"] == 2
    result = equivalence["float32"][stage]
    assert_steps_match(result, rtol=1e-4, grad_rtol=1e-3)


def test_mirrored_strategy_matches_default_strategy_for_leed_in_float64(equivalence):
    result = equivalence["float64"]["leed_uncached"]
    # Losses are float32 scalars (training.losses) even under float64.
    assert_steps_match(result, rtol=1e-5, grad_rtol=1e-5)
    # The weight updates and Adam's moments too, relative to the largest.
    # (Not compared in float32: a weight whose gradient is zero up to
    # rounding, e.g. a bias before a normalisation, gets an update of about
    # lr from Adam, of a sign set by the rounding.)
    assert result["updates"] < 1e-5 and result["optimizer"] < 1e-5, result


def test_gradients_are_summed_over_replicas_once(equivalence):
    # Each of 2 replicas applies gradient 1; beta_1 = 0.5. Keras' Adam sums the
    # already-summed gradients again (first moment 0.5 * 2); ours does not.
    assert equivalence["optimizer_summation"] == {"keras_adam": 1.0, "summed_gradients_adam": 0.5}


# -- MultiWorkerMirroredStrategy: two processes on 127.0.0.1 ----------------------

def tiny_run_config(strategy="default"):
    config = previous_synthetic_defaults()
    config.model.width = 0.0625
    config.model.stargan_residual_blocks = 0
    config.data.synthetic_subjects = 4          # 3 for training (24 faces), 1 held out
    config.data.synthetic_poses = (0.0,)
    config.data.neutral_source = "dataset"
    for stage in (config.neutralizer, config.autoencoder, config.leed):
        stage.epochs, stage.batch_size = 1, 8
    config.leed.decay_epochs = 1
    config.strategy = strategy
    return config


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_finish_a_run_and_agree_on_the_weights(tmp_path):
    run_dir = str(tmp_path / "run")
    # An untrained auto-encoder checkpoint, so the workers train LEED only.
    run.train(tiny_run_config(), run_dir, stages=["autoencoder"], max_steps=0)
    tiny_run_config("multi_worker").save(os.path.join(run_dir, "config.json"))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes, scratch = [], []
    for index in range(2):
        scratch.append(str(tmp_path / f"tmp{index}"))
        os.makedirs(scratch[-1])
        env = worker_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                         TMPDIR=scratch[-1])
        processes.append(subprocess.Popen(
            [sys.executable, WORKER, "train", run_dir, str(tmp_path / f"weights{index}.npz"), "leed"], env=env,
            stdout=open(tmp_path / f"log{index}", "w"), stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=600) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    logs = [open(tmp_path / f"log{index}").read() for index in range(2)]
    assert codes == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert "2 replicas, chief" in logs[0] and "2 replicas, worker" in logs[1]

    chief, worker = (np.load(tmp_path / f"weights{index}.npz") for index in range(2))
    assert sorted(chief.files) == sorted(worker.files) and len(chief.files) > 50
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], worker[key], err_msg=key)

    # The chief alone wrote the run folder (its checkpoints, summaries and
    # markers); the worker's checkpoints went to a temporary folder, deleted.
    finished = json.load(open(os.path.join(run_dir, "leed", "finished.json")))
    assert finished["step"] == 3 and all(np.isfinite(v) for v in finished["losses"].values())
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "leed", "checkpoints")).endswith("ckpt-3")
    events = [name for split in ("train", "validation") for name in os.listdir(os.path.join(run_dir, split))]
    # Event file names end in .<pid>.<n>.v2.
    assert [name for name in events if name.split(".")[-3] == str(processes[0].pid)], events
    assert not [name for name in events if name.split(".")[-3] == str(processes[1].pid)], events
    assert not [name for name in os.listdir(scratch[1]) if name.startswith("leed_")]


def test_multi_worker_needs_a_tf_config():
    with pytest.raises(ValueError, match="TF_CONFIG environment variable"):
        distribute.check_tf_config("")
    with pytest.raises(ValueError, match="not valid JSON"):
        distribute.check_tf_config("{cluster")
    with pytest.raises(ValueError, match="not in its cluster"):
        distribute.check_tf_config(json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker",
                                                                                        "index": 1}}))


# -- Mixed precision ------------------------------------------------------------

@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_leed_step_is_finite(precision, tmp_path):
    config = tiny_run_config()
    config.precision = precision
    config.leed.batch_size = 4
    images, neutrals = tiny_faces(), tiny_faces(seed=1)
    validation = ValidationBatch(images[:4], neutrals[:4], images[4:8], neutrals[4:8])
    with distribute.precision_policy(precision):
        nets = LeedNetworks(config.model)
        trainer = LeedTrainer(config, str(tmp_path), nets, images, neutrals, validation,
                              groups=np.arange(len(images)) // 4)
    assert nets.decoder.compute_dtype == precision.split("_")[1]
    assert all(v.dtype == "float32" for v in nets.decoder.weights)
    assert (precision == "mixed_float16") == hasattr(trainer.g_opt, "dynamic_scale")
    before = [w.copy() for w in nets.interpolator.get_weights()]
    batch = next(iter(trainer.epoch_dataset(0)))
    for _ in range(20):
        values = {key: float(value) for key, value in trainer.train_step(batch).items()}
        assert {"gradient_penalty", "mutual_information", "siamese", "generator_total"} <= set(values)
        losses = {k: v for k, v in values.items() if not k.startswith("grad_norm")}
        assert all(np.isfinite(v) for v in losses.values()), losses
        if all(np.isfinite(v) for v in values.values()):
            break
        # float16 gradients overflowed at the initial loss scale (2^15): the
        # step was skipped and the scale halved.
        assert precision == "mixed_float16"
        optimizers = {"critic": trainer.d_opt, "generator": trainer.g_opt, "siamese": trainer.s_opt}
        for name, optimizer in optimizers.items():
            if not np.isfinite(values[f"grad_norm_{name}"]):
                assert float(optimizer.dynamic_scale) < 2 ** 15, name
    assert all(np.isfinite(v) for v in values.values()), values
    assert any(not np.array_equal(a, b) for a, b in zip(before, nets.interpolator.get_weights()))
    edits = nets.edit(*(tf.constant(x[:2], tf.float32) / 127.5 - 1 for x in (images, neutrals, images, neutrals)))
    assert edits.dtype == tf.float32 and np.isfinite(edits.numpy()).all()


# -- Crash safety -------------------------------------------------------------------

def autoencoder_trainer(run_dir, config=None):
    config = config or tiny_run_config()
    images, neutrals = tiny_faces(), tiny_faces(seed=1)
    validation = ValidationBatch(images[:4], neutrals[:4], images[4:8], neutrals[4:8])
    return AutoencoderTrainer(config, run_dir, LeedNetworks(config.model), images, neutrals, validation,
                              train_encoder=True)


def test_damaged_latest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, caplog):
    trainer = autoencoder_trainer(str(tmp_path))
    for step in (1, 2):
        trainer.step.assign(step)
        trainer.save()
    directory = os.path.join(str(tmp_path), "autoencoder", "checkpoints")
    with open(os.path.join(directory, "ckpt-2.data-00000-of-00001"), "r+b") as f:
        f.truncate(100)  # A copy cut short.

    resumed = autoencoder_trainer(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert resumed.restore()
    assert int(resumed.step) == 1
    assert any("ckpt-2" in r.getMessage() and "cannot be read" in r.getMessage()
               and "previous one" in r.getMessage() for r in caplog.records), caplog.text

    with open(os.path.join(directory, "ckpt-1.index"), "wb") as f:
        f.write(b"not an index")
    with pytest.raises(RuntimeError, match="no checkpoint .* can be restored.*ckpt-2.*ckpt-1"):
        autoencoder_trainer(str(tmp_path)).restore()


def test_changed_architecture_is_refused_on_resume_and_training_settings_are_not(tmp_path):
    run_dir = str(tmp_path)
    run.prepare_run_dir(tiny_run_config(), run_dir)
    longer = tiny_run_config("mirrored")
    longer.leed.epochs, longer.precision, longer.jit_compile = 5, "mixed_bfloat16", True
    run.prepare_run_dir(longer, run_dir)
    assert Config.load(os.path.join(run_dir, "config.json")).leed.epochs == 5
    wider = tiny_run_config()
    wider.model.width = 0.125
    with pytest.raises(ValueError, match=r"model\.width: 0\.0625 -> 0\.125"):
        run.prepare_run_dir(wider, run_dir)
    assert Config.load(os.path.join(run_dir, "config.json")).model.width == 0.0625


def test_editor_only_settings_may_change_until_leed_has_a_checkpoint(tmp_path):
    run_dir = str(tmp_path)
    run.prepare_run_dir(tiny_run_config(), run_dir)
    skips = tiny_run_config()
    skips.model.code_skips = True
    run.prepare_run_dir(skips, run_dir)  # the auto-encoder does not depend on it
    assert Config.load(os.path.join(run_dir, "config.json")).model.code_skips
    os.makedirs(os.path.join(run_dir, "leed", "checkpoints"))
    with pytest.raises(ValueError, match=r"model\.code_skips: True -> False"):
        run.prepare_run_dir(tiny_run_config(), run_dir)


def test_sigkill_mid_run_then_resume_ends_at_the_uninterrupted_step_count(tmp_path, capsys):
    config = tiny_run_config()
    config.autoencoder.epochs = 4            # 3 steps per epoch: 12 steps
    config.checkpoint_every = 1
    config.log_every = config.image_every = 1000
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    config.save(os.path.join(run_dir, "config.json"))
    state = os.path.join(run_dir, "autoencoder", "checkpoints", "checkpoint")
    process = subprocess.Popen([sys.executable, WORKER, "train", run_dir, str(tmp_path / "w.npz"), "autoencoder"],
                               env=worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            if tf.train.get_checkpoint_state(os.path.dirname(state)) and _latest_step(state) >= 3:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    killed_at = _latest_step(state)
    assert 3 <= killed_at < 12
    assert not os.path.exists(os.path.join(run_dir, "autoencoder", "finished.json"))

    summary = run.train(Config.load(os.path.join(run_dir, "config.json")), run_dir, stages=["autoencoder"])
    assert f"from step {killed_at}" in capsys.readouterr().out  # Resumed, not restarted.
    trained = summary["stages"]["autoencoder"]
    assert trained["step"] == trained["total_steps"] == 12
    assert json.load(open(os.path.join(run_dir, "autoencoder", "finished.json")))["step"] == 12
    assert not [name for name in os.listdir(os.path.dirname(state)) if name.endswith("_temp")]


def _latest_step(state_file):
    latest = tf.train.get_checkpoint_state(os.path.dirname(state_file)).model_checkpoint_path
    return int(latest.rsplit("-", 1)[1])


# -- XLA ----------------------------------------------------------------------------

def test_jit_compile_compiles_the_replica_steps_with_the_same_losses(tmp_path):
    losses = []
    for jit_compile in (False, True):
        config = tiny_run_config()
        config.jit_compile = jit_compile
        keras.utils.set_random_seed(3)
        trainer = autoencoder_trainer(str(tmp_path / str(jit_compile)), config)
        batch = next(iter(trainer.epoch_dataset(0)))
        losses.append({k: float(v) for k, v in trainer.train_step(batch).items()})
        assert list(trainer._xla_steps) == (["_autoencoder_replica_step"] if jit_compile else [])
    for key in losses[0]:
        # XLA fuses and orders the sums its own way (see assert_steps_match).
        tolerance = 1e-3 if key.startswith("grad_norm") else 1e-4
        assert losses[1][key] == pytest.approx(losses[0][key], rel=tolerance), key
