"""Exports a trained run as a SavedModel for TensorFlow Serving.

  python scripts/export.py --run_dir=runs/synthetic                 # -> saved_models/leed/<next version>/
  python scripts/export.py --run_dir=runs/rafd --export_dir=saved_models/leed --version=3
  python scripts/export.py --run_dir=runs/rafd --expression_bank=rafd_bank.npz
  python scripts/export.py --run_dir=runs/synthetic --face_template   # + the face template (dlib)

Serve it with ``docker run -p 8501:8501 -p 8500:8500 --mount
type=bind,source=$PWD/saved_models/leed,target=/models/leed -e MODEL_NAME=leed
tensorflow/serving`` (docs/serving.md).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf.inference import export  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", "runs/synthetic", "Run folder to export.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", export.DEFAULT_EXPORT_BASE,
                                  "TF Serving's model folder; the export goes to <export_dir>/<version>/.")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: the next free one). An "
                                "existing version is never overwritten.")
_BANK = flags.DEFINE_string("expression_bank", None, "Expression bank .npz to embed (default: "
                            "<run_dir>/expression_bank.npz; built from synthetic renders for "
                            "synthetic runs).")

_OUTPUT_FORM = flags.DEFINE_enum("output_form", None, list(export.OUTPUT_FORMS),
                                 "decoded: the paper's Dec(z_out); residual: input + Dec(z_out) - "
                                 "Dec(z_self), which keeps the detail the decoder cannot reproduce. "
                                 "Default: the run's setting (residual for the synthetic default).")

_FACE_TEMPLATE = flags.DEFINE_boolean("face_template", False, "Measure the run's face template (the training "
                                      "faces' landmarks, for aligning photos; needs dlib) if it has none, "
                                      "and export it. A template the run has is always exported.")


def main(argv):
    del argv
    path = export.export_run(_RUN_DIR.value, _EXPORT_DIR.value, version=_VERSION.value,
                             expression_bank=_BANK.value, output_form=_OUTPUT_FORM.value,
                             face_template=_FACE_TEMPLATE.value)
    print(f"Exported {_RUN_DIR.value} to {path}")


if __name__ == "__main__":
    cli.run(main)
