"""Evaluates a trained run: every method side by side, tables, charts, figures.

  python scripts/evaluate.py --run_dir=runs/synthetic          # ground truth: PSNR, SSIM, L1, classifiers
  python scripts/evaluate.py --run_dir=runs/rafd --fid_weights=inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5
  python scripts/evaluate.py --run_dir=runs/ablation_no_q --classifier_dir=runs/classifiers   # reuse classifiers

Writes <run_dir>/eval/metrics.json, results.md and PNG charts and figures,
and prints the overall table (on synthetic runs also the table of the
pairs whose target is not neutral, where the neutral-anchored forms are
compared). Missing classifiers are trained first (1-2 minutes on
a 2-core CPU at the synthetic default) and kept in --classifier_dir.
"""

import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf.evaluation import classifiers, evaluate, fid  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", "runs/synthetic", "Run folder to evaluate.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where results go (default: <run_dir>/eval).")
_CLASSIFIER_DIR = flags.DEFINE_string("classifier_dir", None, "Folder of the expression/ and identity/ "
                                      "classifiers; missing ones are trained there (default: "
                                      "<out_dir>/classifiers).")
_PROTOCOL = flags.DEFINE_enum("protocol", "auto", list(evaluate.PROTOCOLS),
                              "synthetic (ground truth), real (FID, dlib) or auto (by the run's data set).")
_MAX_PAIRS = flags.DEFINE_integer("max_pairs", None, "Evaluate a seeded subsample of this many pairs at "
                                  "most (default: all on synthetic data, 2000 on real data).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Pairs per batch.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of references and subsamples.")
_CLASSIFIER_EPOCHS = flags.DEFINE_integer("classifier_epochs", classifiers.ClassifierSettings.epochs,
                                          "Epochs of classifiers trained now.")
_CLASSIFIER_INPUT = flags.DEFINE_integer("classifier_input_size", classifiers.ClassifierSettings.input_size,
                                         "Side the classifiers trained now resize faces to.")
_FID = flags.DEFINE_boolean("fid", True, "Compute FID (real protocol).")
_FID_WEIGHTS = flags.DEFINE_string("fid_weights", "", f"{fid.INCEPTION_NOTOP_FILE}; empty: the Keras cache "
                                   f"($KERAS_HOME/models, ~/.keras/models). Never downloaded.")
_FID_SIZE = flags.DEFINE_integer("fid_input_size", fid.INCEPTION_INPUT_SIZE, "Inception's input side (>= 75).")
_IDENTITY = flags.DEFINE_enum("identity_embedding", "auto", list(evaluate.IDENTITY_EMBEDDINGS),
                              "dlib face embedding for identity similarity on real data (auto: if installed, "
                              "pip install -e '.[eval]').")
_IDENTITY_PAIRS = flags.DEFINE_integer("identity_pairs", 200, "Pairs measured with dlib, at most.")
_FIGURES = flags.DEFINE_boolean("figures", True, "Write figures and charts.")


def main(argv):
    del argv
    settings = classifiers.ClassifierSettings(epochs=_CLASSIFIER_EPOCHS.value,
                                              input_size=_CLASSIFIER_INPUT.value)
    evaluate.evaluate_run(
        _RUN_DIR.value, out_dir=_OUT_DIR.value, classifier_dir=_CLASSIFIER_DIR.value, protocol=_PROTOCOL.value,
        classifier_settings=settings, max_pairs=_MAX_PAIRS.value, batch_size=_BATCH_SIZE.value,
        seed=_SEED.value, fid=_FID.value, fid_weights=_FID_WEIGHTS.value, fid_input_size=_FID_SIZE.value,
        identity_embedding=_IDENTITY.value, identity_pairs=_IDENTITY_PAIRS.value, figures=_FIGURES.value,
        command="python " + " ".join(shlex.quote(a) for a in sys.argv))


if __name__ == "__main__":
    cli.run(main)
