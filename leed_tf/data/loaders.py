"""Record loaders for the real data sets, and their decoded in-memory face sets.

Each loader turns a data set's own naming convention into ``Record``s
(docs/design.md section 4):

* ``rafd_records``: ``Rafd{angle}_{subject}_{ethnicity}_{gender}_{expression}_{gaze}.jpg``.
* ``cfee_records``: ``CFEE_Database_230/<group>/Images*/<EE>_<SSS>_<NNNN>.jpg``.
* ``folder_records``: ``root/<expression>/<file>``.
* ``manifest_records``: a CSV ``path,subject,expression[,pose,gaze]``.

``load_face_set`` ties them together: records, a deterministic
subject-disjoint split, parallel decoding with the data set's face box, name
tables, and an optional ``.npz`` cache so a second run skips decoding.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
from absl import logging

from leed_tf.config import canonical_dataset
from leed_tf.data import images as images_lib
from leed_tf.data.images import center_square_box  # noqa: F401 (re-exported)
from leed_tf.data.images import is_image_name, walk_files
from leed_tf.data.records import NEUTRAL, RAFD_BOX, RAFD_EXPRESSIONS, Box, FaceSet, Record, split_by_subject
from leed_tf.run_folder import write_atomically

# ---------------------------------------------------------------- RaFD

# Camera angle in the file name -> head yaw in degrees (090 is frontal).
RAFD_ANGLES = {"000": -90.0, "045": -45.0, "090": 0.0, "135": 45.0, "180": 90.0}
RAFD_DEFAULT_ANGLES = ("045", "090", "135")
RAFD_GAZES = ("frontal", "left", "right")
_RAFD_NAME = re.compile(
    r"^Rafd(?P<angle>\d{3})_(?P<subject>\d+)_(?P<ethnicity>[A-Za-z]+)_(?P<gender>[A-Za-z]+)_"
    r"(?P<expression>[A-Za-z]+)_(?P<gaze>[A-Za-z]+)\.(?:jpe?g|png)$", re.IGNORECASE)

# ---------------------------------------------------------------- CFEE

CFEE_ROOT_NAME = "CFEE_Database_230"
# Du, Tao & Martinez, "Compound facial expressions of emotion", PNAS 2014:
# neutral, the six basic expressions, then the fifteen compound ones in the
# order of the paper's figures. This order is our best reading of the paper,
# not of the archive's AU_annotation_all_subjects.xls; pass ``code_table`` to
# ``cfee_records`` to override it.
CFEE_DEFAULT_CODES = {
    1: "neutral", 2: "happy", 3: "sad", 4: "fearful", 5: "angry", 6: "surprised",
    7: "disgusted", 8: "happily surprised", 9: "happily disgusted", 10: "sadly fearful",
    11: "sadly angry", 12: "sadly surprised", 13: "sadly disgusted", 14: "fearfully angry",
    15: "fearfully surprised", 16: "fearfully disgusted", 17: "angrily surprised",
    18: "angrily disgusted", 19: "disgustedly surprised", 20: "appalled", 21: "hatred",
    22: "awed",
}
_CFEE_NAME = re.compile(r"^(?P<code>\d{2})_(?P<subject>\d{3})_(?P<index>\d{4})\.(?:jpe?g|png)$",
                        re.IGNORECASE)

# What each layout expects, for the error raised when a folder matches none.
LAYOUTS = {
    "rafd": "RaFD file names Rafd{angle}_{subject}_{ethnicity}_{gender}_{expression}_{gaze}.jpg "
            "(e.g. Rafd090_01_Caucasian_female_happy_frontal.jpg), in any subfolder",
    "cfee": f"CFEE's archive {CFEE_ROOT_NAME}/<group>/Images*/<EE>_<SSS>_<NNNN>.jpg "
            "(EE category code, SSS subject, e.g. 01_001_0001.jpg)",
    "folder": "one subfolder per expression holding that expression's images "
              "(root/<expression>/<subject>_<anything>.jpg)",
    "manifest": "a CSV file with the header path,subject,expression[,pose,gaze]",
}

# Bumped whenever decoding changes, so stale caches are not reused.
_CACHE_VERSION = 1


def _require_dir(data_dir: str, what: str) -> str:
    data_dir = os.fspath(data_dir)
    if not data_dir:
        raise ValueError(f"No data directory given for {what}.")
    if not os.path.exists(data_dir):
        raise FileNotFoundError(f"{what} data directory {data_dir!r} does not exist.")
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"{what} data directory {data_dir!r} is not a directory.")
    return data_dir


def _log_ignored(what: str, ignored: list[str], reason: str) -> None:
    if ignored:
        examples = ", ".join(os.path.basename(p) for p in ignored[:3])
        logging.info("%s: ignored %d files %s (e.g. %s).", what, len(ignored), reason, examples)


def _normalise_angle(angle) -> str:
    text = f"{int(angle):03d}" if not isinstance(angle, str) else angle.strip().zfill(3)
    if text not in RAFD_ANGLES:
        raise ValueError(f"Unknown RaFD angle {angle!r}; expected one of {', '.join(RAFD_ANGLES)}.")
    return text


def rafd_records(data_dir: str, angles: Iterable | None = RAFD_DEFAULT_ANGLES) -> list[Record]:
    """Records of the Radboud Faces Database, searched recursively.

    File names are ``Rafd{angle}_{subject}_{ethnicity}_{gender}_{expression}_{gaze}.jpg``;
    files that do not follow the pattern are ignored (counted and logged once).

    Args:
      data_dir: Folder holding the RaFD images (at any depth).
      angles: Camera angles to keep, as in the file names (``"000"``,
        ``"045"``, ``"090"``, ``"135"``, ``"180"``; ints such as 45 work too);
        ``None`` keeps all five. The default keeps the three StarGAN uses.

    Returns:
      The records, sorted by path; ``pose`` is the yaw in degrees (angle - 90),
      ``subject`` the zero-padded number of the file name.
    """
    data_dir = _require_dir(data_dir, "RaFD")
    if isinstance(angles, (str, int)):
        angles = (angles,)
    wanted = set(RAFD_ANGLES) if angles is None else {_normalise_angle(a) for a in angles}
    records, ignored = [], []
    for path in walk_files(data_dir):
        match = _RAFD_NAME.match(os.path.basename(path))
        fields = match.groupdict() if match else {}
        expression = fields.get("expression", "").lower()
        gaze = fields.get("gaze", "").lower()
        if (not match or fields["angle"] not in RAFD_ANGLES or expression not in RAFD_EXPRESSIONS
                or gaze not in RAFD_GAZES):
            ignored.append(path)
            continue
        if fields["angle"] in wanted:
            records.append(Record(path, fields["subject"], expression,
                                  RAFD_ANGLES[fields["angle"]], gaze))
    _log_ignored("RaFD", ignored, "not named like RaFD images")
    return records


# ---------------------------------------------------------------- CFEE


def _read_code_table(code_table) -> dict[int, str]:
    """A code -> name table from a dict or a CSV ``code,name`` file."""
    if code_table is None:
        return dict(CFEE_DEFAULT_CODES)
    if isinstance(code_table, Mapping):
        items, where = code_table.items(), "code_table"
    else:
        path = os.fspath(code_table)
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"code", "name"} <= {
                    n.strip().lower() for n in reader.fieldnames}:
                raise ValueError(f"CFEE code table {path} needs the header 'code,name', "
                                 f"found {reader.fieldnames}.")
            rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                    for row in reader]
        items, where = [(row["code"], row["name"]) for row in rows if any(row.values())], path
    table = {}
    for code, name in items:
        try:
            code = int(code)
        except (TypeError, ValueError):
            raise ValueError(f"CFEE code table {where}: code {code!r} is not an integer.") from None
        if not str(name).strip():
            raise ValueError(f"CFEE code table {where}: code {code} has no name.")
        table[code] = str(name).strip()
    if not table:
        raise ValueError(f"CFEE code table {where} is empty.")
    return table


def _cfee_root(data_dir: str) -> str:
    """The ``CFEE_Database_230`` folder if ``data_dir`` holds one, else ``data_dir``."""
    if os.path.basename(os.path.normpath(data_dir)).lower() == CFEE_ROOT_NAME.lower():
        return data_dir
    for name in sorted(os.listdir(data_dir)):
        if name.lower() == CFEE_ROOT_NAME.lower() and os.path.isdir(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    return data_dir


def cfee_expression_names(code_table=None) -> tuple[str, ...]:
    """CFEE expression names in code order (``code_table`` as in ``cfee_records``)."""
    table = _read_code_table(code_table)
    return tuple(dict.fromkeys(table[code] for code in sorted(table)))


def cfee_records(data_dir: str, code_table=None) -> list[Record]:
    """Records of the Compound Facial Expressions of Emotion database.

    The archive holds ``CFEE_Database_230/<group>/Images*/<EE>_<SSS>_<NNNN>.jpg``
    with ``EE`` the two-digit category code (01 = neutral) and ``SSS`` the
    subject. Any file named ``EE_SSS_NNNN`` (.jpg/.jpeg/.png, any case) below
    the root counts, whatever the folders in between are called.

    Args:
      data_dir: The ``CFEE_Database_230`` folder or the folder containing it.
      code_table: Category code -> expression name, as a dict or the path of
        a CSV ``code,name`` file; ``None`` uses ``CFEE_DEFAULT_CODES`` (our
        reading of Du, Tao & Martinez 2014). Files whose code is not in the
        table are ignored and logged.

    Returns:
      The records, sorted by path (all frontal, pose 0).
    """
    root = _cfee_root(_require_dir(data_dir, "CFEE"))
    table = _read_code_table(code_table)
    records, unknown_codes, ignored = [], {}, []
    for path in walk_files(root):
        match = _CFEE_NAME.match(os.path.basename(path))
        if not match:
            ignored.append(path)
            continue
        code = int(match["code"])
        if code not in table:
            unknown_codes[code] = unknown_codes.get(code, 0) + 1
            continue
        records.append(Record(path, match["subject"], table[code]))
    _log_ignored("CFEE", ignored, "not named <EE>_<SSS>_<NNNN>.jpg")
    if unknown_codes:
        logging.warning("CFEE: ignored %d images whose category code is not in the code table: %s.",
                        sum(unknown_codes.values()),
                        ", ".join(f"{c:02d} ({n})" for c, n in sorted(unknown_codes.items())))
    return records


# ---------------------------------------------------------------- folder and manifest


def folder_records(data_dir: str) -> list[Record]:
    """Records of a generic ``root/<expression>/<file>`` layout.

    The expression is the lower-cased name of the first-level folder (so
    ``Neutral/`` is the neutral domain); images may sit at any depth below
    it. The subject is the file name's prefix before the first ``_``
    (``s01_happy.jpg`` -> ``s01``), or the whole stem when there is no ``_``.
    Files directly in ``root`` and non-image files are ignored.

    Args:
      data_dir: The root folder.

    Returns:
      The records, sorted by path (pose 0, gaze frontal).
    """
    data_dir = _require_dir(data_dir, "Folder")
    records, ignored = [], []
    for path in walk_files(data_dir):
        parts = os.path.relpath(path, data_dir).split(os.sep)
        name = parts[-1]
        if len(parts) < 2 or not is_image_name(name):
            ignored.append(path)
            continue
        stem = os.path.splitext(name)[0]
        subject = stem.split("_", 1)[0] or stem
        records.append(Record(path, subject, parts[0].strip().lower()))
    _log_ignored("Folder", ignored, "outside an expression folder or not images")
    return records


_MANIFEST_REQUIRED = ("path", "subject", "expression")


def manifest_records(csv_path: str) -> list[Record]:
    """Records listed in a CSV manifest.

    The header must name ``path``, ``subject`` and ``expression`` (any order,
    any case); ``pose`` (yaw in degrees) and ``gaze`` are optional. Relative
    paths are resolved against the CSV's folder. Expressions are lower-cased
    (so ``Neutral`` is the neutral domain); an empty one means unknown.
    Blank lines are skipped.

    Args:
      csv_path: The manifest file.

    Returns:
      One record per row, in file order.

    Raises:
      FileNotFoundError: No such file.
      ValueError: A missing required column, or a malformed row (named by
        its line number).
    """
    csv_path = os.fspath(csv_path)
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"Manifest {csv_path!r} does not exist or is not a file.")
    base = os.path.dirname(os.path.abspath(csv_path))
    records = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"Manifest {csv_path} is empty; expected the header "
                             f"path,subject,expression[,pose,gaze].")
        columns = [h.strip().lower() for h in header]
        missing = [c for c in _MANIFEST_REQUIRED if c not in columns]
        if missing:
            raise ValueError(f"Manifest {csv_path} line 1: missing required column(s) "
                             f"{', '.join(missing)}; the header is {header}.")
        index = {c: columns.index(c) for c in ("path", "subject", "expression", "pose", "gaze")
                 if c in columns}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            where = f"Manifest {csv_path} line {line}"
            if len(row) != len(columns):
                raise ValueError(f"{where}: expected {len(columns)} fields ({','.join(columns)}), "
                                 f"got {len(row)}: {row}.")
            values = {c: row[i].strip() for c, i in index.items()}
            for c in ("path", "subject"):
                if not values[c]:
                    raise ValueError(f"{where}: empty {c}.")
            try:
                pose = float(values["pose"]) if values.get("pose") else 0.0
            except ValueError:
                raise ValueError(f"{where}: pose {values['pose']!r} is not a number.") from None
            path = values["path"]
            if not os.path.isabs(path):
                path = os.path.normpath(os.path.join(base, path))
            records.append(Record(path, values["subject"], values["expression"].lower(), pose,
                                  values.get("gaze") or "frontal"))
    return records


# ---------------------------------------------------------------- dispatch


def detect_layout(data_dir: str) -> str | None:
    """Which layout a folder follows: ``"rafd"``, ``"cfee"``, ``"folder"`` or ``None``.

    RaFD and CFEE are recognised by their file names, ``folder`` by images
    inside subfolders; the first match in that order wins.
    """
    data_dir = _require_dir(data_dir, "Data")
    folder = False
    for path in walk_files(data_dir):
        name = os.path.basename(path)
        if _RAFD_NAME.match(name):
            return "rafd"
        if _CFEE_NAME.match(name):
            return "cfee"
        if is_image_name(name) and os.path.dirname(path) != os.path.normpath(data_dir):
            folder = True
    return "folder" if folder else None


def _describe_contents(data_dir: str, limit: int = 5) -> str:
    """A short account of what a folder holds, for error messages."""
    entries = sorted(os.listdir(data_dir))
    subdirs = [e + "/" for e in entries if os.path.isdir(os.path.join(data_dir, e))]
    files = [e for e in entries if not os.path.isdir(os.path.join(data_dir, e))]
    image_files, count = [], 0
    for path in walk_files(data_dir):
        if is_image_name(path):
            count += 1
            if len(image_files) < limit:
                image_files.append(os.path.relpath(path, data_dir))

    def some(items):
        return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "") or "none"

    return (f"found subfolders: {some(subdirs)}; files: {some(files)}; "
            f"{count} image file(s) in all" + (f", e.g. {', '.join(image_files)}" if count else ""))


def _no_records_error(dataset: str, data_dir: str, options: dict) -> ValueError:
    detected = detect_layout(data_dir)
    if detected == dataset:
        return ValueError(
            f"{data_dir} holds {dataset} files, but the options {options or '(defaults)'} "
            f"select none of them (e.g. RaFD keeps angles {', '.join(RAFD_DEFAULT_ANGLES)} unless "
            f"angles=None; CFEE keeps only codes in its code table): "
            f"{_describe_contents(data_dir)}.")
    expected = "\n".join(f"  {name}: {text}" for name, text in LAYOUTS.items())
    hint = (f" It looks like the {detected!r} layout; try dataset={detected!r}."
            if detected and detected != dataset else "")
    return ValueError(
        f"No {dataset} images found in {data_dir}: {_describe_contents(data_dir)}.{hint}\n"
        f"The layouts are:\n{expected}")


@dataclass(frozen=True)
class _Source:
    records: list[Record]
    box: Box | None
    expression_names: tuple[str, ...]


_OPTIONS = {"rafd": ("angles",), "cfee": ("code_table",), "folder": (), "manifest": ()}


def _load_source(dataset: str, data_dir: str, options: dict) -> _Source:
    dataset = canonical_dataset(dataset)
    if dataset == "synthetic":
        raise ValueError("The synthetic data set is rendered on the fly "
                         "(leed_tf.data.synthetic), not loaded from files; "
                         "use a real data set name here.")
    unknown = sorted(set(options) - set(_OPTIONS[dataset]))
    if unknown:
        allowed = ", ".join(_OPTIONS[dataset]) or "none"
        raise ValueError(f"Unknown option(s) for {dataset}: {', '.join(unknown)} "
                         f"(allowed: {allowed}).")
    data_dir = os.fspath(data_dir)
    if dataset == "manifest":
        records = manifest_records(data_dir)
        if not records:
            raise ValueError(f"Manifest {data_dir} lists no images.")
        names = sorted({r.expression for r in records if r.expression})
        return _Source(records, None, tuple(names))
    _require_dir(data_dir, dataset)
    if dataset == "rafd":
        records, box, names = rafd_records(data_dir, **options), RAFD_BOX, RAFD_EXPRESSIONS
    elif dataset == "cfee":
        records, box = cfee_records(data_dir, **options), None
        names = cfee_expression_names(options.get("code_table"))
    else:
        records, box = folder_records(data_dir), None
        names = tuple(sorted({r.expression for r in records}))
    if not records:
        raise _no_records_error(dataset, data_dir, options)
    return _Source(records, box, tuple(names))


def load_records(dataset: str, data_dir: str, **options) -> tuple[list[Record], Box | None]:
    """Reads a data set's records and its face box.

    Args:
      dataset: ``rafd``, ``cfee`` (alias ``cfeed``), ``folder`` or
        ``manifest`` (then ``data_dir`` is the CSV file).
      data_dir: The data set's root folder (or manifest).
      **options: Loader options: ``angles`` for RaFD, ``code_table`` for CFEE.

    Returns:
      ``(records, box)``; ``box`` is ``(top, left, bottom, right)`` or
      ``None`` for the centred square of each image.

    Raises:
      FileNotFoundError: ``data_dir`` does not exist.
      ValueError: ``synthetic`` (rendered, not loaded), unknown options, or a
        folder holding no image of the layout (the message lists what each
        layout expects and what the folder holds).
    """
    source = _load_source(dataset, data_dir, options)
    return source.records, source.box


# ---------------------------------------------------------------- face sets

SPLITS = ("train", "test", "all")


def _cache_key(dataset: str, records: Sequence[Record], expression_names, size: int, box,
               split: str) -> str:
    files = []
    for r in sorted(records, key=lambda r: r.path):
        try:
            st = os.stat(r.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (None, None)
        files.append((r.path, *stamp, r.subject, r.expression, r.pose, r.gaze))
    blob = json.dumps([_CACHE_VERSION, dataset, files, list(expression_names), size,
                       None if box is None else list(box), split])
    return hashlib.sha256(blob.encode()).hexdigest()


def _save_face_set(path: str, faces: FaceSet) -> None:
    write_atomically(path, lambda f: np.savez(
        f, images=faces.images, subjects=faces.subjects, expressions=faces.expressions, poses=faces.poses,
        gazes=np.array(faces.gazes, dtype=str), paths=np.array(faces.paths, dtype=str),
        subject_names=np.array(faces.subject_names, dtype=str),
        expression_names=np.array(faces.expression_names, dtype=str)))


def _load_face_set(path: str) -> FaceSet:
    with np.load(path, allow_pickle=False) as z:
        return FaceSet(images=z["images"], subjects=z["subjects"], expressions=z["expressions"],
                       poses=z["poses"], gazes=[str(g) for g in z["gazes"]],
                       paths=[str(p) for p in z["paths"]],
                       subject_names=tuple(str(s) for s in z["subject_names"]),
                       expression_names=tuple(str(e) for e in z["expression_names"]))


def _build_face_set(records: Sequence[Record], images: np.ndarray,
                    expression_names: tuple[str, ...]) -> FaceSet:
    subject_names = tuple(sorted({r.subject for r in records}))
    subject_ids = {s: i for i, s in enumerate(subject_names)}
    expression_ids = {e: i for i, e in enumerate(expression_names)}
    return FaceSet(
        images=images,
        subjects=np.array([subject_ids[r.subject] for r in records], np.int32),
        expressions=np.array([expression_ids.get(r.expression, -1) for r in records], np.int32),
        poses=np.array([r.pose for r in records], np.float32),
        gazes=[r.gaze for r in records], paths=[r.path for r in records],
        subject_names=subject_names, expression_names=expression_names)


def _check_neutral(faces: FaceSet, where: str) -> None:
    has_neutral = set()
    if NEUTRAL in faces.expression_names:
        neutral_id = faces.expression_names.index(NEUTRAL)
        has_neutral = {int(s) for s in faces.subjects[faces.expressions == neutral_id]}
    lacking = [faces.subject_names[s] for s in sorted(set(map(int, faces.subjects)) - has_neutral)]
    if lacking:
        shown = ", ".join(lacking[:20]) + (", ..." if len(lacking) > 20 else "")
        raise ValueError(
            f"{len(lacking)} subject(s) of {where} have no usable {NEUTRAL!r} image, which "
            f"neutral_source='dataset' needs: {shown}. Add their neutral photos, remove them, "
            f"or synthesise neutral faces with the StarGAN neutralizer.")


def load_face_set(dataset: str, data_dir: str, size: int = 128, split: str = "train",
                  test_fraction: float = 0.1, seed: int = 0, cache_dir: str | None = None,
                  require_neutral: bool = False, num_workers: int | None = None,
                  **options) -> FaceSet:
    """Loads, splits, decodes and labels a real data set, all in memory.

    Args:
      dataset: See ``load_records``.
      data_dir: See ``load_records``.
      size: Side of the square faces.
      split: ``train``, ``test`` (subject-disjoint, see ``split_by_subject``)
        or ``all``.
      test_fraction: Fraction of subjects held out for ``test``.
      seed: Seed of the subject split.
      cache_dir: If given, the decoded set is stored there as ``.npz`` keyed
        by the files (paths, sizes, mtimes), labels, size, box and split, and
        reused while they are unchanged.
      require_neutral: Stop if a subject has no usable neutral image (needed
        when neutral faces come from the data set).
      num_workers: Decoding threads (``None``: one per CPU).
      **options: Loader options (``angles``, ``code_table``).

    Returns:
      The ``FaceSet``. ``subject_names`` are the split's subjects, sorted;
      ``expression_names`` are ``RAFD_EXPRESSIONS`` for RaFD, the code table
      order for CFEE, and the sorted names found for folders and manifests
      (the same for every split). Unreadable files are skipped with a warning.

    Raises:
      ValueError: No usable image, a bad split name, or (``require_neutral``)
        subjects without a neutral image. See also ``load_records``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    dataset = canonical_dataset(dataset)
    source = _load_source(dataset, data_dir, options)
    records = source.records
    if split != "all":
        train, test = split_by_subject(records, test_fraction, seed)
        chosen = set(train if split == "train" else test)
        records = [r for r in records if r.subject in chosen]
        logging.info("%s: %d subjects for training, %d for testing; %s split has %d images.",
                     dataset, len(train), len(test), split, len(records))
    where = f"the {split} split of {dataset} data in {data_dir}"
    if not records:
        raise ValueError(f"No images in {where} ({len(source.records)} in all; "
                         f"test_fraction={test_fraction}).")

    cache_path = None
    if cache_dir:
        key = _cache_key(dataset, records, source.expression_names, size, source.box, split)
        cache_path = os.path.join(cache_dir, f"{dataset}_{split}_{size}_{key[:20]}.npz")
        faces = None
        if os.path.exists(cache_path):
            try:
                faces = _load_face_set(cache_path)
            except (OSError, ValueError, KeyError) as e:
                logging.warning("Ignoring unreadable cache %s (%s); decoding again.", cache_path, e)
        if faces is not None:
            logging.info("Loaded %d decoded faces from %s.", len(faces), cache_path)
            if require_neutral:
                _check_neutral(faces, where)
            return faces

    pixels, kept, failures = images_lib.decode_files(
        [r.path for r in records], source.box, size, num_workers)
    if not len(kept):
        shown = "; ".join(f"{os.path.basename(p)}: {why}" for p, why in failures[:3])
        raise ValueError(f"No usable image in {where}: all {len(records)} files failed to "
                         f"decode (e.g. {shown}).")
    faces = _build_face_set([records[i] for i in kept], pixels, source.expression_names)
    if require_neutral:
        _check_neutral(faces, where)
    if cache_path:
        os.makedirs(cache_dir, exist_ok=True)
        _save_face_set(cache_path, faces)
        logging.info("Cached %d decoded faces in %s.", len(faces), cache_path)
    return faces
