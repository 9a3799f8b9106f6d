"""Runs one throughput benchmark and prints its table.

Usage:
  python scripts/benchmark.py data [--batch_size=24 --num_images=2000 --steps=200 --warmup=20]
  python scripts/benchmark.py train [--precision=mixed_bfloat16 --jit_compile --leed_only]

The benchmarks live in ``leed_tf/benchmarks/`` (``BENCHMARKS``); recorded
figures are in ``docs/benchmarks.md``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf import benchmarks  # noqa: E402
from leed_tf.config import PRECISIONS  # noqa: E402

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 24, "Images (or input/reference pairs) per batch.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 2000, "Faces held in memory.")
_STEPS = flags.DEFINE_integer("steps", 200, "Timed steps per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed steps before each measurement.")
_PRECISION = flags.DEFINE_enum("precision", "float32", list(PRECISIONS),
                               "train: Keras mixed-precision policy of the timed steps.")
_JIT_COMPILE = flags.DEFINE_boolean("jit_compile", False, "train: compile the timed steps with XLA.")
_LEED_ONLY = flags.DEFINE_boolean("leed_only", False,
                                  "train: time the LEED step only (full width, or the synthetic default "
                                  "with --nofull_width).")
_FULL_WIDTH = flags.DEFINE_boolean("full_width", True, "train: time the full-width LEED step.")
_CACHE_CODES = flags.DEFINE_boolean("cache_codes", True,
                                    "train: the frozen encoder's codes of the real faces come with the "
                                    "batch (the default); false encodes them in every step (the "
                                    "'before' of docs/benchmarks.md).")


def main(argv):
    names = ", ".join(sorted(benchmarks.BENCHMARKS))
    if len(argv) != 2:
        raise app.UsageError(f"Give exactly one benchmark name, one of: {names}.")
    try:
        benchmarks.get_benchmark(argv[1])
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    settings = dict(batch_size=_BATCH_SIZE.value, num_images=_NUM_IMAGES.value, steps=_STEPS.value,
                    warmup=_WARMUP.value)
    if argv[1] == "train":
        settings.update(precision=_PRECISION.value, jit_compile=_JIT_COMPILE.value,
                        leed_only=_LEED_ONLY.value, full_width=_FULL_WIDTH.value,
                        cache_codes=_CACHE_CODES.value)
    print(benchmarks.run(argv[1], **settings))


if __name__ == "__main__":
    cli.run(main)
