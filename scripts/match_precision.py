"""How often the matched-pair term's label-free matches share the expression.

A diagnostic of ``leed_tf/training/pairs.py`` (docs/results.md): matches the
training faces of a run's data set as LEED's matched-pair term does, with
every ``--pair_matching`` on every ``--pair_features``, and scores each
table against the expression labels (``pairs.match_precision``; training
never reads them). Code displacements come from the run's frozen encoder.

Usage:
  python scripts/match_precision.py --run_dir=runs/synthetic
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf.data import sources  # noqa: E402
from leed_tf.evaluation import methods  # noqa: E402
from leed_tf.training import pairs  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", "runs/synthetic", "Run folder with a trained auto-encoder.")


def main(argv):
    del argv
    run = methods.restore_run(_RUN_DIR.value)
    train, _ = sources.load_splits(run.config.data, run.config.model.image_size)
    neutrals = sources.real_neutrals(train)
    encode = tf.function(lambda x: run.nets.encoder(x, training=False))

    def codes(images):
        return np.concatenate([encode(tf.constant(images[i:i + 64], tf.float32) / 127.5 - 1).numpy()
                               for i in range(0, len(images), 64)])

    groups = pairs.group_ids(train.subjects, train.poses, train.gazes)
    features = {"codes": codes(train.images) - codes(neutrals),
                "pixels": pairs.image_displacements(train.images, neutrals)}
    matchings = {"pairwise": pairs.match_expressions, "slots": pairs.match_slots}
    print(f"{len(train)} training faces in {len(np.unique(groups))} groups; share of cross-group "
          "matches with the same expression label:")
    for feature, displacements in features.items():
        for matching, match in matchings.items():
            precision = pairs.match_precision(match(displacements, groups), groups, train.expressions)
            print(f"  --pair_matching={matching:8s} --pair_features={feature:6s} {100 * precision:5.1f} %")


if __name__ == "__main__":
    cli.run(main)
