"""The web demo (``scripts/demo.py``): a Gradio app over an ``Editor``.

One page: the input photo (upload, webcam where the browser allows, or
paste), a reference photo or an expression of the bank, an intensity
slider, and the edited photo beside the original. Models without a
neutralizer (``--neutral_source=dataset``, like the synthetic default) take
the real neutral faces too: those uploads are shown only for them. With
dlib installed, faces are aligned and pasted back into the whole photo
(``Editor.edit_photo``); an image that already is a face crop (S x S) is
edited as it is. A gallery of held-out synthetic faces with their neutral
faces fills the form with one click.

A bad input (an unreadable or huge image, no face, a neutral photo of
another size, ...) is shown as one message in the page, in the words the
command line uses (``leed_tf.cli.message``); the server carries on.

The app is served on 127.0.0.1 only; it sends nothing anywhere else (no
analytics, no web fonts).
"""

from __future__ import annotations

import copy
import math
import os
import tempfile

# Set before Gradio is imported: it would report usage otherwise.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf.data.images import uint8_from_01  # noqa: E402
from leed_tf.inference.editor import Editor  # noqa: E402
from leed_tf.inference.inputs import load_photo  # noqa: E402

REFERENCE = "the reference photo"
MAX_INTENSITY = 2.0
# Largest upload accepted (Gradio refuses larger ones before they reach us).
MAX_FILE_SIZE = "25mb"
_GALLERY = (("happy", "surprised"), ("sad", "happy"), ("angry", "disgusted"))


def photo_upload(**options) -> gr.Image:
    """Gradio's image upload, handing the uploaded file's path over unread:
    the editor decodes it, with the command line's checks and messages
    (``gr.Image`` would open it with PIL first, and a file that is no image
    would fail there with Gradio's own message). Not a subclass: Gradio
    writes a ``.pyi`` file beside every module that defines a component."""
    upload = gr.Image(**options)
    read = upload.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return payload.path
        return read(payload)

    upload.preprocess = preprocess
    return upload


def example_faces(editor: Editor, folder: str, seed: int = 0, first_subject: int = 10_000) -> list[list]:
    """Gallery rows written to ``folder`` as PNGs: synthetic identities no
    run trains on (from ``first_subject``), each ``[input, input neutral,
    reference, reference neutral, expression, intensity]`` (without the
    neutral faces for a model with a neutralizer)."""
    from leed_tf.data import synthetic
    from leed_tf.data.synthetic.identity import EXPRESSIONS, NEUTRAL_INDEX

    faces = synthetic.render_face_set(2 * len(_GALLERY), seed=seed, poses=(0.0,), size=editor.image_size,
                                      first_subject=first_subject)

    def face(subject: int, expression: str) -> str:
        row = np.flatnonzero((faces.subjects == subject) & (faces.expressions == EXPRESSIONS.index(expression)))[0]
        path = os.path.join(folder, f"{faces.subject_names[subject]}_{expression}.png")
        Image.fromarray(faces.images[row]).save(path)
        return path

    rows = []
    for k, (shown, copied) in enumerate(_GALLERY):
        person, other = 2 * k, 2 * k + 1
        neutral = EXPRESSIONS[NEUTRAL_INDEX]
        photos = [face(person, shown), face(person, neutral), face(other, copied), face(other, neutral)]
        if editor.has_neutralizer:
            photos = [photos[0], photos[2]]
        choice = REFERENCE if k != 1 or copied not in editor.expression_names else copied
        rows.append(photos + [choice, 1.0])
    return rows


def add_synthetic_bank(editor: Editor, seed: int = 0) -> None:
    """Gives an editor of a synthetic model without expression bank one
    built from synthetic renders now (kept in memory), so that the
    expression list is not empty."""
    if len(editor.bank) or (editor.config is not None and editor.config.data.dataset != "synthetic"):
        return
    from leed_tf.inference.expression_bank import build_expression_bank, labelled_faces

    faces = labelled_faces("synthetic", image_size=editor.image_size, real_neutrals=not editor.has_neutralizer,
                           synthetic_subjects=4, synthetic_seed=seed)
    editor.bank = build_expression_bank(editor.expression_codes, faces)


def edit_function(editor: Editor):
    """The app's edit: ``(photo, input neutral, reference, reference
    neutral, expression, intensity, paste_back) -> (original, edited)``,
    paths in and ``uint8`` arrays out; bad input raises ``gradio.Error``
    with one line. Without ``paste_back`` faces are cropped as the training
    faces were, not aligned."""
    unaligned = copy.copy(editor)  # The same model, cropping faces like the training faces.
    unaligned.aligner = None

    def edit(photo, photo_neutral, reference, reference_neutral, expression, intensity, paste_back):
        try:
            return _edit(editor if paste_back else unaligned, photo, photo_neutral, reference,
                         reference_neutral, expression, intensity)
        except cli.input_errors() as e:
            raise gr.Error(cli.message(e), print_exception=False) from None

    return edit


def _edit(editor, photo, photo_neutral, reference, reference_neutral, expression, intensity):
    if photo is None:
        raise ValueError("Upload an input photo first (or take one with the webcam).")
    intensity = float(intensity)
    if not math.isfinite(intensity) or not 0.0 <= intensity <= MAX_INTENSITY:
        raise ValueError(f"intensity: must be a number from 0 to {MAX_INTENSITY}, got {intensity}.")
    if not editor.has_neutralizer and photo_neutral is None:
        raise ValueError("This model has no neutralizer: upload the input's neutral photo too.")
    by_bank = expression not in (None, REFERENCE)
    if not by_bank:
        if reference is None:
            raise ValueError("Upload a reference photo, or choose an expression of the bank.")
        if not editor.has_neutralizer and reference_neutral is None:
            raise ValueError("This model has no neutralizer: upload the reference's neutral photo too.")
    arguments = dict(reference=None if by_bank else reference, expression=expression if by_bank else None,
                     intensity=intensity, input_neutral=None if editor.has_neutralizer else photo_neutral,
                     reference_neutral=None if editor.has_neutralizer or by_bank else reference_neutral)
    if editor.aligner is not None:
        original = load_photo(photo)[0]
        return original, editor.edit_photo(photo, **arguments)
    original = uint8_from_01(editor.load_images(photo)[0][0])
    return original, editor.edit(photo, **arguments)


def build_app(editor: Editor, examples_dir: str | None = None, title: str = "LEED expression editing"):
    """The Gradio app (``gradio.Blocks``) over ``editor``.

    Args:
      editor: The editor; ``align=True`` offers paste-back.
      examples_dir: Where the gallery's faces are written (default: a new
        temporary folder).
      title: The page's title.
    """
    examples_dir = examples_dir or tempfile.mkdtemp(prefix="leed-demo-")
    seed = editor.config.data.synthetic_seed if editor.config is not None else 0
    add_synthetic_bank(editor, seed)
    examples = example_faces(editor, examples_dir, seed=seed)
    needs_neutrals = not editor.has_neutralizer
    upload = dict(type="filepath", image_mode=None, format="png", height=260)
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"## {title}\nUpload a face (or use the webcam), pick a reference photo or an "
                    "expression, and set the intensity."
                    + (" This model has no neutralizer: give the neutral face of each photo too."
                       if needs_neutrals else ""))
        with gr.Row():
            photo = photo_upload(label="Input photo", sources=["upload", "webcam", "clipboard"],
                             elem_id="input_photo", **upload)
            photo_neutral = photo_upload(label="Input's neutral face", sources=["upload", "clipboard"],
                                     visible=needs_neutrals, elem_id="input_neutral", **upload)
            reference = photo_upload(label="Reference photo", sources=["upload", "clipboard"],
                                 elem_id="reference_photo", **upload)
            reference_neutral = photo_upload(label="Reference's neutral face", sources=["upload", "clipboard"],
                                         visible=needs_neutrals, elem_id="reference_neutral", **upload)
        with gr.Row():
            expression = gr.Dropdown([REFERENCE, *editor.expression_names], value=REFERENCE,
                                     label="Expression", elem_id="expression")
            intensity = gr.Slider(0.0, MAX_INTENSITY, value=1.0, step=0.05, label="Intensity",
                                  elem_id="intensity")
            paste_back = gr.Checkbox(value=editor.aligner is not None, interactive=editor.aligner is not None,
                                     label="Align the face and paste it back into the photo"
                                     + ("" if editor.aligner is not None else " (needs dlib)"),
                                     elem_id="paste_back")
            button = gr.Button("Edit", variant="primary", elem_id="edit")
        with gr.Row():
            original = gr.Image(label="Original", format="png", interactive=False, elem_id="original")
            edited = gr.Image(label="Edited", format="png", interactive=False, elem_id="edited")
        inputs = [photo, photo_neutral, reference, reference_neutral, expression, intensity, paste_back]
        example_inputs = ([photo, photo_neutral, reference, reference_neutral] if needs_neutrals
                          else [photo, reference]) + [expression, intensity]
        gr.Examples(examples, example_inputs, label="Examples: held-out synthetic faces"
                    + (" with their neutral faces" if needs_neutrals else ""))
        edit = edit_function(editor)
        for event in (button.click, intensity.release, expression.input):
            event(edit, inputs, [original, edited], concurrency_limit=1)
    app.examples_dir = examples_dir
    return app


def launch(app, port: int = 7860, block: bool = True):
    """Serves ``app`` on 127.0.0.1:``port`` (only there: no share link).

    Returns what ``gradio.Blocks.launch`` returns (``block=False`` returns at
    once; ``app.close()`` stops the server).
    """
    # System fonts: the default theme would have the browser fetch web fonts.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])
    return app.launch(server_name="127.0.0.1", server_port=port, share=False, show_error=True, theme=theme,
                      max_file_size=MAX_FILE_SIZE, allowed_paths=[app.examples_dir], footer_links=[],
                      prevent_thread_lock=not block, quiet=True)
