"""Builds an expression bank: the mean expression code of each named expression.

  python scripts/build_expression_bank.py --run_dir=runs/synthetic              # synthetic renders
  python scripts/build_expression_bank.py --run_dir=runs/rafd --data_dir=/data/RaFD
  # faces/<expression>/*.jpg
  python scripts/build_expression_bank.py --run_dir=runs/x --source=folder --data_dir=faces/

Writes <run_dir>/expression_bank.npz (or --output), which
``Editor.from_run_dir`` and ``scripts/export.py`` pick up.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf.inference import expression_bank  # noqa: E402
from leed_tf.inference.editor import Editor  # noqa: E402
from leed_tf.run_folder import RunFolder  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Run folder of the model.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Or an exported SavedModel.")
_SOURCE = flags.DEFINE_enum("source", None, list(expression_bank.SOURCES) + ["cfeed"],
                            "Where the labelled faces come from (default: the run's data set).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Root (or manifest) of a real source "
                                "(default: the run's data_dir).")
_OUTPUT = flags.DEFINE_string("output", None, "Bank file (default: <run_dir>/expression_bank.npz).")
_SUBJECTS = flags.DEFINE_integer("synthetic_subjects", 8, "Identities rendered for --source=synthetic.")


def main(argv):
    del argv
    if (_RUN_DIR.value is None) == (_SAVED_MODEL.value is None):
        raise app.UsageError("Give exactly one of --run_dir or --saved_model.")
    editor = (Editor.from_run_dir(_RUN_DIR.value) if _RUN_DIR.value
              else Editor.from_saved_model(_SAVED_MODEL.value))
    data = editor.config.data if editor.config else None
    source = _SOURCE.value or (data.dataset if data else "synthetic")
    output = _OUTPUT.value or (RunFolder(_RUN_DIR.value).bank_path if _RUN_DIR.value
                               else None)
    if output is None:
        raise app.UsageError("Give --output for a bank built from a SavedModel.")
    faces = expression_bank.labelled_faces(
        source, _DATA_DIR.value or (data.data_dir if data else ""), image_size=editor.image_size,
        real_neutrals=not editor.has_neutralizer, synthetic_subjects=_SUBJECTS.value)
    bank = expression_bank.build_expression_bank(editor.expression_codes, faces)
    bank.save(output)
    print(f"Expression bank of {len(bank)} expressions ({', '.join(bank.names)}) from {faces.source} "
          f"written to {output}")


if __name__ == "__main__":
    cli.run(main)
