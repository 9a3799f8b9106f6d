"""Subprocess side of tests/test_distribute.py (run as a script, not collected).

Logical CPU devices and ``MultiWorkerMirroredStrategy`` must be set up before
TensorFlow initialises, so these runs need fresh processes:

  python tests/distributed_worker.py equivalence OUT.json PRECISION:STAGES:LR_SCALE ...
      Two logical CPU devices; each stage of STAGES (comma-separated)
      trains 3 steps under the default strategy and under MirroredStrategy
      from the same initial weights, at the same global batch, under the
      Keras policy PRECISION, at LR_SCALE times its learning rates. Writes
      every step's losses and gradient norms, the largest differences of the
      weight updates and optimizer states, and how Keras' Adam and
      SummedGradientsAdam apply one gradient per replica.

  TF_CONFIG=... python tests/distributed_worker.py train RUN_DIR OUT.npz [STAGES]
      Trains the run whose config.json is in RUN_DIR (its ``strategy``
      setting applies; STAGES: comma-separated, default: the missing ones)
      and writes the trained networks' final weights.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def tiny_config(learning_rate_scale=1.0):
    from leed_tf.config import previous_synthetic_defaults

    config = previous_synthetic_defaults()
    config.model.width = 0.0625
    config.model.stargan_residual_blocks = 0
    for stage in (config.neutralizer, config.autoencoder, config.leed):
        stage.batch_size = 4  # two rows per replica
        stage.learning_rate *= learning_rate_scale
    config.neutralizer.n_critic = 1
    config.autoencoder.lambda_feature = 1.0  # its scale is a global-batch statistic
    # The difference term subtracts two decoded images, which carries float32
    # rounding into the gradients; at the synthetic default's weight 5 two
    # replicas' gradient norm differs from one device's by 0.19 % after a step
    # (losses still agree to 1e-4). Weight 1 keeps the comparison at 1e-3.
    config.autoencoder.lambda_difference = 1.0
    config.leed.train_decoder = True  # the paper's setting: the decoder's batch norm trains, synchronised
    config.data.max_shift = 2
    return config


def stage_runs(strategy, stages, learning_rate_scale=1.0):
    """3 steps of each stage of ``stages`` under ``strategy``, in order, on
    fresh networks with the same initial weights for each stage.

    Returns:
      Per stage: every step's named values, the stage's network weight
      updates (after - before) and its optimizers' variables after the steps.
    """
    import keras

    from leed_tf.model import LeedNetworks
    from leed_tf.run_folder import STAGE_NETWORKS
    from leed_tf.training.stages import (AutoencoderTrainer, LeedTrainer, NeutralizerTrainer,
                                         ValidationBatch)
    from test_training import tiny_faces

    config = tiny_config(learning_rate_scale)
    images, neutrals = tiny_faces(), tiny_faces(seed=1)
    labels = np.arange(len(images)) % config.model.num_expressions
    validation = ValidationBatch(images[:4], neutrals[:4], images[4:8], neutrals[4:8], images[:4], labels[:4])
    results = {}
    for stage in stages:
        # Fresh networks per stage: chained stages would compare LEED runs
        # that start from auto-encoders already apart by rounding.
        keras.utils.set_random_seed(5)
        with strategy.scope():
            nets = LeedNetworks(config.model)
        run_dir = tempfile.mkdtemp()
        if stage == "neutralizer":
            trainer = NeutralizerTrainer(config, run_dir, nets, images, labels, validation, strategy)
        elif stage == "autoencoder":
            trainer = AutoencoderTrainer(config, run_dir, nets, images, neutrals, validation, True, strategy)
        else:
            config.leed.cache_codes = stage == "leed"
            config.leed.lambda_pair = 10.0 if config.leed.cache_codes else 0.0  # it needs the cache
            trainer = LeedTrainer(config, run_dir, nets, images, neutrals, validation, strategy,
                                  groups=np.arange(len(images)) // 4)
        names = STAGE_NETWORKS[stage.split("_")[0]]
        before = {f"{name}/{i}": w for name in names for i, w in enumerate(getattr(nets, name).get_weights())}
        steps = []
        for batch in trainer.distribute(trainer.epoch_dataset(0).take(3)):
            steps.append({key: float(value) for key, value in trainer.train_step(batch).items()})
            trainer.step.assign_add(1)
        updates = {f"{name}/{i}": w - before[f"{name}/{i}"] for name in names
                   for i, w in enumerate(getattr(nets, name).get_weights())}
        optimizers = {k: v for k, v in trainer.checkpoint_objects().items() if k.endswith("optimizer")}
        slots = {f"{key}/{i}": v.numpy() for key, opt in optimizers.items() for i, v in enumerate(opt.variables)}
        results[stage] = (steps, updates, slots)
    return results


def largest_difference(a: dict, b: dict) -> float:
    """max |a - b| over every array, over max |a| over every array.

    One scale for the whole set: a bias followed by a normalisation has a
    zero gradient up to rounding, which Adam turns into a tiny update of
    either sign; its own relative difference means nothing.
    """
    return float(max(np.max(np.abs(a[key] - b[key])) for key in a) / (max(np.max(np.abs(a[key])) for key in a)
                                                                          + 1e-30))


def optimizer_summation(strategy):
    """First moments after one step in which each replica applies gradient 1."""
    import keras

    from leed_tf.training.distribute import SummedGradientsAdam

    with strategy.scope():
        variables = [keras.Variable(0.0), keras.Variable(0.0)]
        plain = keras.optimizers.Adam(0.1, beta_1=0.5)
        summed = SummedGradientsAdam(0.1, beta_1=0.5)
        plain.build(variables[:1])
        summed.build(variables[1:])

    @tf.function
    def step():
        def replica():
            plain.apply([tf.constant(1.0)], variables[:1])
            summed.apply([tf.constant(1.0)], variables[1:])
        strategy.run(replica)

    step()
    first_moment = lambda opt: float([v for v in opt.variables if "momentum" in v.path][0].numpy())  # noqa: E731
    return {"keras_adam": first_moment(plain), "summed_gradients_adam": first_moment(summed)}


def equivalence(out_path, *specs):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from leed_tf.training import distribute

    strategies = {"default": distribute.make_strategy("default"),
                  "mirrored": distribute.make_strategy("mirrored")}
    result = {"replicas": strategies["mirrored"].num_replicas_in_sync}
    for spec in specs:
        precision, stages, scale = spec.split(":")
        stages = stages.split(",")
        with distribute.precision_policy(precision):
            runs = {name: stage_runs(strategy, stages, float(scale)) for name, strategy in strategies.items()}
        result[precision] = {}
        for stage in stages:
            (steps_0, updates_0, slots_0), (steps_1, updates_1, slots_1) = (runs[name][stage] for name in strategies)
            result[precision][stage] = {"default": steps_0, "mirrored": steps_1,
                                        "updates": largest_difference(updates_0, updates_1),
                                        "optimizer": largest_difference(slots_0, slots_1)}
    result["optimizer_summation"] = optimizer_summation(strategies["mirrored"])
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


def train(run_dir, out_path, stages=None):
    from leed_tf.config import Config
    from leed_tf.run_folder import STAGE_NETWORKS
    from leed_tf.training import run

    config = Config.load(os.path.join(run_dir, "config.json"))
    summary, nets = run.train_networks(config, run_dir, stages=stages and stages.split(","))
    weights = {f"{name}/{i}": w for stage in summary["stages"] for name in STAGE_NETWORKS[stage]
               for i, w in enumerate(getattr(nets, name).get_weights())}
    np.savez(out_path, **weights)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    mode, *args = sys.argv[1:]
    {"equivalence": equivalence, "train": train}[mode](*args)
