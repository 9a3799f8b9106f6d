"""Editing image files and folders with an ``Editor`` (what scripts/edit.py
runs), whole photos with their faces pasted back, and sheets of edits."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image

from leed_tf.data.images import IMAGE_EXTENSIONS, uint8_from_01
from leed_tf.inference.editor import NO_NEUTRALIZER, Editor, is_single


def list_images(path: str) -> list[str]:
    """``path`` if it is a file, else the image files in the folder, sorted.

    Raises:
      FileNotFoundError: neither, or a folder without images.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No image file or folder at {path}.")
    files = sorted(os.path.join(path, n) for n in os.listdir(path)
                   if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(path, n)))
    if not files:
        raise FileNotFoundError(f"{path} holds no image ({', '.join(IMAGE_EXTENSIONS)}).")
    return files


def save_image(image, path: str) -> str:
    """Writes a ``uint8`` or [0, 1] float image (or PIL image); returns the path."""
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        image = Image.fromarray(array if array.dtype == np.uint8 else uint8_from_01(array))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    image.save(path)
    return path


def _sheet(columns: list[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    from leed_tf.data.sheets import contact_sheet

    rows = len(columns[0])
    tiles = np.stack(columns, axis=1).reshape((-1,) + columns[0].shape[1:])
    return contact_sheet(tiles, rows, len(columns), column_labels=list(labels))


def expression_sheet(editor: Editor, inputs, expressions: Sequence[str] | None = None,
                     intensity: float = 1.0, input_neutral=None) -> np.ndarray:
    """The seed's Fig. 3: one row per input, its crop leftmost, then one
    column per expression of the bank (``uint8`` image)."""
    expressions = list(expressions or editor.expression_names)
    if not expressions:
        raise ValueError("The expression bank is empty; build one with scripts/build_expression_bank.py.")
    images, _ = editor.load_images(inputs if not is_single(inputs) else [inputs])
    columns = [uint8_from_01(images)]
    for name in expressions:
        columns.append(editor.edit(images, expression=name, intensity=intensity, input_neutral=input_neutral))
    return _sheet(columns, ["input"] + expressions)


def triplet_sheet(inputs, references, results) -> np.ndarray:
    """The seed's Fig. 2: rows of input | reference | result (``uint8``)."""
    return _sheet([uint8_from_01(inputs) if np.asarray(inputs).dtype != np.uint8 else np.asarray(inputs),
                   uint8_from_01(references) if np.asarray(references).dtype != np.uint8 else np.asarray(references),
                   np.asarray(results)], ["input", "reference", "result"])


def edit_paths(editor: Editor, inputs: str, output: str, *, references: str | None = None,
               expression: str | None = None, expressions: Sequence[str] | None = None,
               intensity: float = 1.0, sheet: str | None = None, input_neutrals: str | None = None,
               reference_neutrals: str | None = None, paste_back: bool = False,
               faces: str = "largest") -> list[str]:
    """What ``scripts/edit.py`` does, on files and folders.

    Args:
      editor: The editor.
      inputs: An image file or a folder of them.
      output: A file (one result, or an expression sheet) or a folder (one
        ``<input>__<reference>.png`` per pair, or ``<input>__<expression>.png``).
      references: A reference image or folder: every input is edited with
        every reference.
      expression: A bank name to edit every input to.
      expressions: Bank names (or ``["all"]``): write an expression sheet
        (Fig. 3) to ``output``.
      intensity: Expression intensity.
      sheet: Also write a triplet sheet (Fig. 2) of every edit here.
      input_neutrals: For models without neutralizer: the inputs' real
        neutral faces, a file (for every input) or a folder (one per input,
        in the same sorted order).
      reference_neutrals: Likewise for the references.
      paste_back: Write each input photo whole, at its size, its face(s)
        edited and pasted back (``Editor.edit_photo``; needs an editor with
        ``align=True``).
      faces: With ``paste_back``: ``largest`` or ``all``.

    Returns:
      The files written.

    Raises:
      ValueError: conflicting arguments, a neutral face of another size than
        its image (without alignment), unknown expressions, before any edit.
    """
    chosen = sum(x is not None for x in (references, expression, expressions))
    if chosen != 1:
        raise ValueError("Give exactly one of a reference, an expression, or a list of expressions.")
    if not editor.has_neutralizer and (input_neutrals is None or (references is not None
                                                                  and reference_neutrals is None)):
        raise ValueError(f"{NO_NEUTRALIZER} Give the real neutral faces of the inputs "
                         f"(--input_neutral) and of the references (--reference_neutral).")
    if paste_back and (expressions is not None or sheet):
        raise ValueError("paste_back writes one whole photo per edit; it does not make sheets "
                         "(--expressions, --sheet).")
    input_files = list_images(inputs)
    neutral_of = _aligned(input_files, input_neutrals, "input neutrals")
    _check_sizes(editor, neutral_of, "input neutral")
    if expressions is not None:
        names = list(editor.expression_names) if list(expressions) == ["all"] else list(expressions)
        for name in names:
            editor.bank.code(name)  # Unknown names fail before any work.
        neutrals = [neutral_of[f] for f in input_files] if neutral_of else None
        return [save_image(expression_sheet(editor, input_files, names, intensity, neutrals), output)]
    reference_neutral_of = None
    if expression is not None:
        editor.bank.code(expression)
        pairs = [(i, None) for i in input_files]
    else:
        reference_files = list_images(references)
        reference_neutral_of = _aligned(reference_files, reference_neutrals, "reference neutrals")
        _check_sizes(editor, reference_neutral_of, "reference neutral")
        pairs = [(i, r) for i in input_files for r in reference_files]
    one_file = os.path.splitext(output)[1].lower() in IMAGE_EXTENSIONS
    if one_file and len(pairs) > 1:
        raise ValueError(f"{len(pairs)} edits need an output folder, not the file {output}.")

    def path_of(input_file, reference_file):
        if one_file:
            return output
        tail = expression if expression is not None else _stem(reference_file)
        return os.path.join(output, f"{_stem(input_file)}__{tail}.png")

    if paste_back:
        return [save_image(editor.edit_photo(i, r, expression=expression, intensity=intensity,
                                             input_neutral=neutral_of[i] if neutral_of else None,
                                             reference_neutral=reference_neutral_of[r]
                                             if reference_neutral_of else None, faces=faces),
                           path_of(i, r)) for i, r in pairs]
    written, crops, refs, results = [], [], [], []
    for start in range(0, len(pairs), editor.batch_size):
        chunk = pairs[start:start + editor.batch_size]
        images, _ = editor.load_images([i for i, _ in chunk])
        neutrals = editor.load_images([neutral_of[i] for i, _ in chunk])[0] if neutral_of else None
        if expression is not None:
            edited = editor.edit(images, expression=expression, intensity=intensity, input_neutral=neutrals)
        else:
            reference_images, _ = editor.load_images([r for _, r in chunk])
            reference_neutral_images = editor.load_images(
                [reference_neutral_of[r] for _, r in chunk])[0] if reference_neutral_of else None
            edited = uint8_from_01(editor.edit_batch(images, reference_images, intensity, input_neutrals=neutrals,
                                                     reference_neutrals=reference_neutral_images))
            refs.append(uint8_from_01(reference_images))
        crops.append(uint8_from_01(images))
        results.append(edited)
        for (input_file, reference_file), result in zip(chunk, edited):
            written.append(save_image(result, path_of(input_file, reference_file)))
    if sheet:
        if expression is not None:
            raise ValueError("A triplet sheet needs reference images.")
        written.append(save_image(triplet_sheet(np.concatenate(crops), np.concatenate(refs),
                                                np.concatenate(results)), sheet))
    return written


def _aligned(files: list[str], neutrals: str | None, what: str) -> dict | None:
    """Each file's neutral face: one file for all, or a folder in the same order."""
    if neutrals is None:
        return None
    neutral_files = list_images(neutrals)
    if len(neutral_files) == 1:
        return {f: neutral_files[0] for f in files}
    if len(neutral_files) != len(files):
        raise ValueError(f"Got {len(neutral_files)} {what} for {len(files)} images; give one file, or a "
                         f"folder with one per image (matched in sorted order).")
    return dict(zip(files, neutral_files))


def _check_sizes(editor: Editor, neutral_of: dict | None, what: str) -> None:
    """Every neutral face against its image's size (``Editor.check_neutral_sizes``)."""
    for image, neutral in (neutral_of or {}).items():
        editor.check_neutral_sizes(image, neutral, what)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]
