"""A web demo of a trained run or an export: a Gradio app on 127.0.0.1.

  pip install -e '.[demo]'
  python scripts/demo.py --run_dir=runs/synthetic                  # then open http://127.0.0.1:7860
  python scripts/demo.py --saved_model=saved_models/leed --port=8080

Upload a face (or take one with the webcam), pick a reference photo or an
expression of the bank, move the intensity slider; the edited photo shows
beside the original. With dlib (in the demo extra) faces are aligned and
pasted back into the whole photo. The gallery of held-out synthetic faces
works at once after the README's main job (docs/usage.md, "Web demo").
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from leed_tf import cli  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Run folder of the model.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Or an exported SavedModel (a version folder, or the "
                                   "model folder: its highest version).")
_PORT = flags.DEFINE_integer("port", 7860, "Port on 127.0.0.1.")
_BANK = flags.DEFINE_string("expression_bank", None, "Expression bank .npz (default: the model's).")
_ALIGN = flags.DEFINE_boolean("align", True, "Align faces and paste them back (needs dlib and the run's or "
                              "export's face template); without, faces are cropped like the training faces.")


def _editor():
    from leed_tf.inference.editor import Editor

    def make(align):
        options = dict(expression_bank=_BANK.value, align=align)
        return (Editor.from_run_dir(_RUN_DIR.value, **options) if _RUN_DIR.value
                else Editor.from_saved_model(_SAVED_MODEL.value, **options))

    if not _ALIGN.value:
        return make(False)
    try:
        return make(True)
    except (ImportError, ValueError) as e:  # No dlib, or no template: the demo works without.
        logging.warning("Faces will not be aligned or pasted back: %s", cli.message(e))
        return make(False)


def main(argv):
    del argv
    if (_RUN_DIR.value is None) == (_SAVED_MODEL.value is None):
        raise app.UsageError("Give exactly one of --run_dir or --saved_model.")
    for flag, path in (("--run_dir", _RUN_DIR.value), ("--saved_model", _SAVED_MODEL.value),
                       ("--expression_bank", _BANK.value)):
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file or folder (given as {flag}).")
    try:
        from leed_tf.inference import demo
    except ImportError as e:
        raise app.UsageError(f"The demo needs Gradio: pip install -e '.[demo]' ({e}).") from None
    editor = _editor()
    print(f"Serving on http://127.0.0.1:{_PORT.value} (Ctrl-C stops).", flush=True)
    demo.launch(demo.build_app(editor), port=_PORT.value)


if __name__ == "__main__":
    cli.run(main)
