"""Trains the expression or identity classifier that judges edits.

  python scripts/train_classifier.py --kind=expression --out=runs/classifiers/expression   # synthetic
  python scripts/train_classifier.py --kind=identity --run_dir=runs/synthetic --out=runs/classifiers/identity
  python scripts/train_classifier.py --kind=expression --dataset=rafd --data_dir=/data/RaFD --out=clf/rafd

Any labelled data set: expression classifiers train on the training subjects
and are checked on the held-out ones; identity classifiers train on every
subject (synthetic: every identity of the population) and are checked on
other faces of the same subjects. With --run_dir the run's data settings are
used, so scripts/evaluate.py accepts the classifier for that run.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf import config as config_lib  # noqa: E402
from leed_tf.evaluation import classifiers  # noqa: E402
from leed_tf.run_folder import RunFolder  # noqa: E402

_KIND = flags.DEFINE_enum("kind", "expression", list(classifiers.KINDS), "What the classifier recognises.")
_OUT = flags.DEFINE_string("out", None, "Folder to write the classifier to.", required=True)
_RUN_DIR = flags.DEFINE_string("run_dir", None, "Take the data settings of this run.")
_DATASET = flags.DEFINE_string("dataset", None, "synthetic | rafd | cfee (alias cfeed) | folder | manifest "
                               "(default: the run's, else synthetic).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data set root (or the manifest CSV).")
_SUBJECTS = flags.DEFINE_integer("synthetic_subjects", None, "Synthetic identities (10% held out).")
_POSES = flags.DEFINE_list("synthetic_poses", None, "Yaw angles of the synthetic faces, e.g. -45,0,45.")
_EPOCHS = flags.DEFINE_integer("epochs", classifiers.ClassifierSettings.epochs, "Training epochs.")
_INPUT_SIZE = flags.DEFINE_integer("input_size", classifiers.ClassifierSettings.input_size,
                                   "Side faces are resized to inside the classifier.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", classifiers.ClassifierSettings.batch_size, "Faces per step.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", classifiers.ClassifierSettings.learning_rate,
                                    "Initial Adam learning rate (cosine decay to 0).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of initialisation and data order.")


def main(argv):
    del argv
    overrides = {"data.data_dir": _DATA_DIR.value, "data.synthetic_subjects": _SUBJECTS.value,
                 "data.synthetic_poses": _POSES.value and [float(p) for p in _POSES.value]}
    if _RUN_DIR.value:
        if not RunFolder(_RUN_DIR.value).has_config():
            raise app.UsageError(f"{_RUN_DIR.value} is not a run folder (no config.json).")
        config = config_lib.resolve_config(_RUN_DIR.value, _DATASET.value, overrides)
    else:
        dataset = config_lib.canonical_dataset(_DATASET.value or "synthetic")
        config = (config_lib.synthetic_defaults() if dataset == "synthetic"
                  else config_lib.Config(data=config_lib.DataConfig(dataset=dataset)))
        config = config_lib.apply_overrides(config, overrides)
    settings = classifiers.ClassifierSettings(input_size=_INPUT_SIZE.value, epochs=_EPOCHS.value,
                                              batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
                                              seed=_SEED.value)
    classifier = classifiers.train_and_save(_KIND.value, config.data, _OUT.value, config.model.image_size,
                                            settings, verbose=1)
    info = classifier.info
    print(f"{_KIND.value} classifier of {len(classifier.class_names)} classes written to {_OUT.value}: "
          f"{info['validation_accuracy']:.1%} on {info['checked_on']} (trained on {info['trained_on']}, "
          f"{info['seconds']:.0f} s).")


if __name__ == "__main__":
    cli.run(main)
