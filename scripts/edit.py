"""Edits facial expressions with a trained run or an exported SavedModel.

  # one input, one reference -> one edited image
  python scripts/edit.py --run_dir=runs/synthetic --input=me.jpg --reference=smile.jpg --output=out.png
  # folders: every input with every reference, plus a triplet sheet (input | reference | result)
  python scripts/edit.py --saved_model=saved_models/leed --input=faces/ --reference=refs/ \
      --output=edited/ --sheet=triplets.png
  # one row per input, one column per expression of the bank (the paper's Fig. 3)
  python scripts/edit.py --run_dir=runs/synthetic --input=faces/ --expressions=all --output=sheet.png
  # a named expression, half strength
  python scripts/edit.py --run_dir=runs/synthetic --input=me.jpg --expression=happy --intensity=0.5 \
      --output=out.png
  # photos of any framing: align the face (dlib), edit it, paste it back into the whole photo
  python scripts/edit.py --run_dir=runs/synthetic --input=photo.jpg --expression=happy --paste_back \
      --output=photo_happy.png
  # a model trained with --neutral_source=dataset (no neutralizer) needs the real neutral faces
  python scripts/edit.py --run_dir=runs/x --input=me.jpg --input_neutral=me_neutral.jpg \
      --reference=smile.jpg --reference_neutral=smile_neutral.jpg --output=out.png
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import math  # noqa: E402

from absl import app, flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf.config import OUTPUT_FORMS  # noqa: E402
from leed_tf.inference import align  # noqa: E402
from leed_tf.inference import editor as editor_lib  # noqa: E402
from leed_tf.inference.files import edit_paths  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Run folder of the model.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Or an exported SavedModel (a version folder, or "
                                   "the model folder: its highest version).")
_INPUT = flags.DEFINE_string("input", None, "Input image, or a folder of them.", required=True)
_REFERENCE = flags.DEFINE_string("reference", None, "Reference image (or folder) whose expression is copied.")
_EXPRESSION = flags.DEFINE_string("expression", None, "Or an expression name of the bank.")
_EXPRESSIONS = flags.DEFINE_list("expressions", None, "Or several names ('all': the whole bank): writes "
                                 "one sheet, a row per input and a column per expression.")
_INTENSITY = flags.DEFINE_float("intensity", 1.0, "Expression intensity: 1 = the reference's, 0 = neutral.")
_OUTPUT = flags.DEFINE_string("output", "edited", "Output image file, or folder for many results.")
_SHEET = flags.DEFINE_string("sheet", None, "Also write an input | reference | result sheet here.")
_BANK = flags.DEFINE_string("expression_bank", None, "Expression bank .npz (default: the model's).")
_CROP = flags.DEFINE_enum("crop", "dataset", list(editor_lib.CROPS),
                          "Face crop: the data set's face box, or the centred square.")
_DETECT_FACE = flags.DEFINE_boolean("detect_face", False, "Crop around the face OpenCV's Haar cascade "
                                    "finds (pip install 'opencv-python-headless<5').")
_ALIGN = flags.DEFINE_boolean("align", False, "Frame each face like the training faces with dlib's landmarks "
                               "(pip install -e '.[eval]'); images that already are S x S crops are used "
                               "as they are.")
_PASTE_BACK = flags.DEFINE_boolean("paste_back", False, "Write each input photo whole, at its size, with its "
                                   "edited face pasted back (implies --align).")
_FACES = flags.DEFINE_enum("faces", "largest", list(align.FACES), "With --paste_back: edit the largest face "
                           "or all of them.")
_LANDMARKS = flags.DEFINE_enum("landmarks", "5", [str(n) for n in align.LANDMARKS],
                               "dlib's landmark model used to align: 5 or 68 points.")

_INPUT_NEUTRAL = flags.DEFINE_string("input_neutral", None, "Models trained with --neutral_source=dataset "
                                     "(no neutralizer): the inputs' real neutral faces, a file or a folder "
                                     "with one per input in sorted order.")
_REFERENCE_NEUTRAL = flags.DEFINE_string("reference_neutral", None, "Likewise for the references.")
_OUTPUT_FORM = flags.DEFINE_enum("output_form", None, list(OUTPUT_FORMS),
                                 "With --run_dir: decoded (the paper's Dec(z_out)), residual (input + "
                                 "Dec(z_out) - Dec(z_self)) or neutral_residual (the input's neutral face + "
                                 "Dec(z_out) - Dec(z_nn)). Default: the run's setting (residual for the "
                                 "synthetic default). An export keeps the form it was exported with.")


def _check_flags():
    """Bad flags fail here, before the model loads."""
    if not math.isfinite(_INTENSITY.value) or _INTENSITY.value < 0:
        raise ValueError(f"--intensity: must be a finite number >= 0 (0 = neutral, 1 = the reference's), "
                         f"got {_INTENSITY.value}.")
    for flag, path in (("--saved_model", _SAVED_MODEL.value),
                       ("--input", _INPUT.value), ("--reference", _REFERENCE.value),
                       ("--input_neutral", _INPUT_NEUTRAL.value),
                       ("--reference_neutral", _REFERENCE_NEUTRAL.value), ("--expression_bank", _BANK.value)):
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file or folder (given as {flag}).")
    if (_ALIGN.value or _PASTE_BACK.value) and (_DETECT_FACE.value or _CROP.present):
        raise app.UsageError("--align and --paste_back frame faces by their landmarks; they do not "
                             "combine with --detect_face or --crop.")
    if _PASTE_BACK.value and (_EXPRESSIONS.value or _SHEET.value):
        raise app.UsageError("--paste_back writes one whole photo per edit; it does not combine with "
                             "--expressions or --sheet.")


def main(argv):
    del argv
    if (_RUN_DIR.value is None) == (_SAVED_MODEL.value is None):
        raise app.UsageError("Give exactly one of --run_dir or --saved_model.")
    _check_flags()
    options = dict(expression_bank=_BANK.value, crop=_CROP.value, detect_face=_DETECT_FACE.value,
                   align=_ALIGN.value or _PASTE_BACK.value, landmarks=int(_LANDMARKS.value))
    editor = (editor_lib.Editor.from_run_dir(_RUN_DIR.value, output_form=_OUTPUT_FORM.value, **options)
              if _RUN_DIR.value
              else editor_lib.Editor.from_saved_model(_SAVED_MODEL.value, **options))
    written = edit_paths(editor, _INPUT.value, _OUTPUT.value, references=_REFERENCE.value,
                         expression=_EXPRESSION.value, expressions=_EXPRESSIONS.value,
                         intensity=_INTENSITY.value, sheet=_SHEET.value,
                         input_neutrals=_INPUT_NEUTRAL.value, reference_neutrals=_REFERENCE_NEUTRAL.value,
                         paste_back=_PASTE_BACK.value, faces=_FACES.value)
    print(f"Wrote {len(written)} file(s): {', '.join(written[:5])}{' ...' if len(written) > 5 else ''}")


if __name__ == "__main__":
    cli.run(main)
