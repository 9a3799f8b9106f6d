"""Record loaders, subject splits and in-memory face sets on small fixture trees."""

import logging
import os

import numpy as np
import pytest

import fixtures_data as fx
from leed_tf.data import images, loaders
from leed_tf.data.records import NEUTRAL, RAFD_EXPRESSIONS, Record

# ---------------------------------------------------------------- RaFD


def test_rafd_records_parse_names_and_filter_angles(tmp_path):
    written = fx.make_rafd_tree(tmp_path)
    records = loaders.rafd_records(tmp_path)
    assert {r.path for r in records} == {p for p, v in written.items()
                                         if v[2] in ("045", "090", "135")}
    assert len(records) == 3 * 3 * 3 * 2
    for r in records:
        subject, expression, angle, gaze = written[r.path]
        assert (r.subject, r.expression, r.gaze) == (subject, expression, gaze)
        assert r.pose == {"045": -45.0, "090": 0.0, "135": 45.0}[angle]

    every = loaders.rafd_records(tmp_path, angles=None)
    assert len(every) == len(written)
    assert {r.pose for r in every} == {-90.0, -45.0, 0.0, 45.0, 90.0}
    frontal = loaders.rafd_records(tmp_path, angles=[90])
    assert {r.pose for r in frontal} == {0.0} and len(frontal) == 3 * 3 * 2
    assert loaders.rafd_records(tmp_path, angles="000")[0].pose == -90.0
    with pytest.raises(ValueError, match="Unknown RaFD angle"):
        loaders.rafd_records(tmp_path, angles=["030"])


def test_rafd_load_records_gives_the_face_box(tmp_path):
    fx.make_rafd_tree(tmp_path, subjects=("07",), expressions=("happy",), angles=("090",),
                      gazes=("right",), nested=False)
    records, box = loaders.load_records("RaFD", tmp_path)
    assert box == loaders.RAFD_BOX == (90, 30, 711, 651)
    assert records == [Record(str(tmp_path / "Rafd090_07_Caucasian_male_happy_right.jpg"),
                              "07", "happy", 0.0, "right")]


# ---------------------------------------------------------------- CFEE


@pytest.mark.parametrize("inside", [False, True])
def test_cfee_records_nested_archive(tmp_path, inside):
    written = fx.make_cfee_tree(tmp_path, codes=(1, 2, 8, 22), per_code=2)
    root = tmp_path / "CFEE_Database_230" if inside else tmp_path
    records = loaders.cfee_records(root)
    assert len(records) == len(written) == 3 * 4 * 2
    default = loaders.CFEE_DEFAULT_CODES
    for r in records:
        subject, code = written[r.path]
        assert (r.subject, r.expression, r.pose, r.gaze) == (subject, default[code], 0.0, "frontal")
    assert {os.path.splitext(r.path)[1] for r in records} == {".jpg", ".JPG", ".png"}
    assert loaders.cfee_expression_names()[:3] == ("neutral", "happy", "sad")
    assert len(loaders.CFEE_DEFAULT_CODES) == 22


def test_cfee_lowercase_archive_folder_and_cfeed_alias(tmp_path):
    fx.make_cfee_tree(tmp_path, top="cfee_database_230")
    records, box = loaders.load_records("cfeed", tmp_path)
    assert len(records) == 9 and box is None


def test_cfee_code_table_override(tmp_path, caplog):
    written = fx.make_cfee_tree(tmp_path, codes=(1, 2, 3))
    table = {1: "neutral", "02": "joy"}  # code 03 deliberately missing
    with caplog.at_level(logging.WARNING):
        records = loaders.cfee_records(tmp_path, code_table=table)
    assert {r.expression for r in records} == {"neutral", "joy"}
    assert len(records) == len(written) - 3
    assert any("03 (3)" in r.getMessage() for r in caplog.records)

    csv_path = fx.write_manifest(tmp_path / "codes.csv", [(1, "calm"), (2, "glad"), (3, "down")],
                                 header=("code", "name"))
    records, _ = loaders.load_records("cfee", tmp_path, code_table=csv_path)
    assert {r.expression for r in records} == {"calm", "glad", "down"}
    assert loaders.cfee_expression_names(csv_path) == ("calm", "glad", "down")
    bad = fx.write_manifest(tmp_path / "bad.csv", [("x", "calm")], header=("code", "name"))
    with pytest.raises(ValueError, match="'x' is not an integer"):
        loaders.cfee_records(tmp_path, code_table=bad)


# ---------------------------------------------------------------- folder and manifest


def test_folder_records(tmp_path):
    fx.make_folder_tree(tmp_path, {"Happy": ["s01_a.jpg", "s02_b.png"], "neutral": ["s01.jpg"],
                                   "sad": ["s03_x_y.JPG"]})
    fx.write(tmp_path / "loose.jpg", fx.encode(fx.boxed_image((1, 2, 3))))
    fx.write(tmp_path / "sad" / "notes.txt", b"hello")
    records = loaders.folder_records(tmp_path)
    assert [(r.subject, r.expression) for r in records] == [
        ("s01", "happy"), ("s02", "happy"), ("s01", "neutral"), ("s03", "sad")]
    assert loaders.detect_layout(tmp_path) == "folder"


def test_manifest_records(tmp_path):
    fx.make_folder_tree(tmp_path / "imgs", {"happy": ["a.jpg"], "neutral": ["b.jpg"]})
    absolute = str(tmp_path / "imgs" / "neutral" / "b.jpg")
    path = fx.write_manifest(
        tmp_path / "lists" / "m.csv",
        [("../imgs/happy/a.jpg", "p1", "Happy", "30", "left"), (absolute, "p1", "neutral", "", "")],
        header=("Path", "subject", "expression", "pose", "gaze"))
    records = loaders.manifest_records(path)
    assert records == [
        Record(str(tmp_path / "imgs" / "happy" / "a.jpg"), "p1", "happy", 30.0, "left"),
        Record(absolute, "p1", "neutral", 0.0, "frontal")]
    faces = loaders.load_face_set("manifest", path, size=8, split="all")
    assert faces.expression_names == ("happy", "neutral") and len(faces) == 2


def test_manifest_errors_name_the_line(tmp_path):
    rows = [("a.jpg", "p1", "happy"), ("b.jpg", "p2"), ("c.jpg", "p3", "sad")]
    path = fx.write_manifest(tmp_path / "m.csv", rows)
    with pytest.raises(ValueError, match=r"m\.csv line 3: expected 3 fields"):
        loaders.manifest_records(path)
    path = fx.write_manifest(tmp_path / "n.csv", [("a.jpg", "happy")], header=("path", "label"))
    with pytest.raises(ValueError, match=r"line 1: missing required column\(s\) subject, "
                                         r"expression"):
        loaders.manifest_records(path)
    path = fx.write_manifest(tmp_path / "p.csv", [("a.jpg", "p1", "happy", "left")],
                             header=("path", "subject", "expression", "pose"))
    with pytest.raises(ValueError, match="line 2: pose 'left' is not a number"):
        loaders.manifest_records(path)
    with pytest.raises(FileNotFoundError):
        loaders.manifest_records(tmp_path / "absent.csv")


# ---------------------------------------------------------------- dispatch and errors


def test_load_records_refusals(tmp_path):
    with pytest.raises(ValueError, match="rendered"):
        loaders.load_records("synthetic", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        loaders.load_records("rafd", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="Unknown option.*angle.*allowed: code_table"):
        loaders.load_records("cfee", tmp_path, angles=("090",))
    with pytest.raises(ValueError, match="Unknown dataset"):
        loaders.load_records("celeba", tmp_path)


def test_unknown_layout_says_what_each_layout_expects(tmp_path):
    fx.write(tmp_path / "IMG_0001.jpg", fx.encode(fx.boxed_image((9, 9, 9))))
    fx.write(tmp_path / "notes.txt", b"x")
    (tmp_path / "empty_dir").mkdir()
    assert loaders.detect_layout(tmp_path) is None
    for dataset in ("rafd", "cfee", "folder"):
        with pytest.raises(ValueError) as info:
            loaders.load_records(dataset, tmp_path)
        message = str(info.value)
        assert f"No {dataset} images found" in message
        assert "IMG_0001.jpg" in message and "empty_dir/" in message
        assert "Rafd{angle}_{subject}" in message and "CFEE_Database_230" in message
        assert "root/<expression>" in message and "path,subject,expression" in message


def test_detect_layout_and_hint(tmp_path):
    fx.make_cfee_tree(tmp_path / "c", subjects=("001",), codes=(1,))
    fx.make_rafd_tree(tmp_path / "r", subjects=("01",), expressions=("happy",), angles=("090",),
                      gazes=("left",))
    assert loaders.detect_layout(tmp_path / "c") == "cfee"
    assert loaders.detect_layout(tmp_path / "r") == "rafd"
    with pytest.raises(ValueError, match="looks like the 'cfee' layout"):
        loaders.load_records("rafd", tmp_path / "c")
    with pytest.raises(ValueError, match="holds rafd files, but the options .* select none"):
        loaders.load_records("rafd", tmp_path / "r", angles=("000",))


# ---------------------------------------------------------------- splits


def test_split_by_subject_is_disjoint_deterministic_and_order_free():
    subjects = [f"{i:02d}" for i in range(1, 31)]
    records = [Record(f"{s}_{e}.jpg", s, e) for s in subjects for e in ("happy", "neutral")]
    train, test = loaders.split_by_subject(records, 0.2, seed=3)
    assert len(test) == 6 and len(train) == 24
    assert not set(train) & set(test) and set(train) | set(test) == set(subjects)
    shuffled = [records[i] for i in np.random.default_rng(0).permutation(len(records))]
    assert loaders.split_by_subject(shuffled, 0.2, seed=3) == (train, test)
    assert loaders.split_by_subject(reversed(subjects), 0.2, seed=3) == (train, test)
    assert loaders.split_by_subject(subjects, 0.2, seed=4) != (train, test)

    assert loaders.split_by_subject(["a", "b"], 0.01) in ((("a",), ("b",)), (("b",), ("a",)))
    assert loaders.split_by_subject(["a", "b"], 0.99)[0]  # never an empty train side
    assert loaders.split_by_subject(["a"], 0.5) == (("a",), ())
    assert loaders.split_by_subject(subjects, 0.0) == (tuple(subjects), ())
    with pytest.raises(ValueError, match="test_fraction"):
        loaders.split_by_subject(subjects, 1.0)


# ---------------------------------------------------------------- face sets


def _check_labels_match_pixels(faces):
    """Each fixture face's colour encodes its own (subject, expression)."""
    for image, s, e in zip(faces.images, faces.subjects, faces.expressions):
        subject_index = int(faces.subject_names[s]) - 1
        expected = fx.label_color(subject_index, RAFD_EXPRESSIONS.index(faces.expression_names[e]))
        assert np.abs(image.astype(int) - expected).max() <= 6


def test_load_face_set_rafd_splits(tmp_path):
    fx.make_rafd_tree(tmp_path, subjects=("01", "02", "03", "04"), angles=("090", "180"),
                      gazes=("frontal",))
    everything = loaders.load_face_set("rafd", tmp_path, size=16, split="all", num_workers=2)
    assert everything.images.shape == (12, 16, 16, 3) and everything.images.dtype == np.uint8
    assert everything.expression_names == RAFD_EXPRESSIONS
    assert everything.subject_names == ("01", "02", "03", "04")
    assert set(everything.poses) == {0.0}
    _check_labels_match_pixels(everything)

    train = loaders.load_face_set("rafd", tmp_path, size=16, split="train", test_fraction=0.25)
    test = loaders.load_face_set("rafd", tmp_path, size=16, split="test", test_fraction=0.25)
    assert len(train) == 9 and len(test) == 3
    assert not set(train.subject_names) & set(test.subject_names)
    assert train.expression_names == test.expression_names == RAFD_EXPRESSIONS
    _check_labels_match_pixels(train)
    _check_labels_match_pixels(test)
    assert (train.neutral_indices() >= 0).all()


def test_bad_files_are_skipped_and_counted(tmp_path, caplog):
    fx.make_rafd_tree(tmp_path, subjects=("01", "02"), expressions=("happy", "neutral"),
                      angles=("090",), gazes=("frontal",), distractors=False)
    bad = {kind: fx.write(tmp_path / f"Rafd090_0{i + 3}_Kid_male_sad_frontal.jpg", data)
           for i, (kind, data) in enumerate(fx.bad_files().items())}
    with caplog.at_level(logging.INFO, logger="absl"):
        faces = loaders.load_face_set("rafd", tmp_path, size=8, split="all")
    assert len(faces) == 4 and faces.subject_names == ("01", "02")
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for path in bad.values():
        assert path in warnings
    assert any("decoded 4 images, skipped 4 bad files" in r.getMessage() for r in caplog.records)


def test_no_usable_image_stops_with_a_clear_message(tmp_path):
    for i, data in enumerate(fx.bad_files().values()):
        fx.write(tmp_path / "happy" / f"s{i}_x.jpg", data)
    with pytest.raises(ValueError, match=r"No usable image in .*all 4 files failed to decode "
                                         r"\(e\.g\. s0_x\.jpg"):
        loaders.load_face_set("folder", tmp_path, size=8, split="all")


def test_require_neutral_names_the_subjects(tmp_path):
    fx.make_folder_tree(tmp_path, {"happy": ["ann_1.jpg", "bob_1.jpg", "cy_1.jpg"],
                                   "neutral": ["ann_2.jpg"]})
    # bob's neutral photo exists but is broken, which must count as missing.
    fx.write(tmp_path / "neutral" / "bob_2.jpg", fx.bad_files()["truncated"])
    faces = loaders.load_face_set("folder", tmp_path, size=8, split="all")
    assert faces.expression_names == ("happy", NEUTRAL)
    with pytest.raises(ValueError, match=r"2 subject\(s\) .* no usable 'neutral' image.*: bob, cy"):
        loaders.load_face_set("folder", tmp_path, size=8, split="all", require_neutral=True)


def test_cache_skips_decoding_and_tracks_changes(tmp_path, monkeypatch):
    data = tmp_path / "data"
    fx.make_cfee_tree(data, codes=(1, 5))
    cache = tmp_path / "cache"
    first = loaders.load_face_set("cfee", data, size=8, split="all", cache_dir=cache)
    assert first.expression_names == tuple(loaders.CFEE_DEFAULT_CODES.values())
    assert len(os.listdir(cache)) == 1 and os.listdir(cache)[0].endswith(".npz")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded despite the cache")

    monkeypatch.setattr(images, "decode_files", no_decoding)
    second = loaders.load_face_set("cfee", data, size=8, split="all", cache_dir=cache)
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.subjects, first.subjects)
    np.testing.assert_array_equal(second.expressions, first.expressions)
    np.testing.assert_array_equal(second.poses, first.poses)
    assert (second.gazes, second.paths) == (first.gazes, first.paths)
    assert (second.subject_names, second.expression_names) == (
        first.subject_names, first.expression_names)

    # A changed file, size, split or label table is a different cache entry.
    for kwargs in ({"size": 4}, {"split": "train"}, {"code_table": {1: "calm", 5: "cross"}}):
        with pytest.raises(AssertionError, match="despite the cache"):
            loaders.load_face_set("cfee", data, **({"size": 8, "split": "all"} | kwargs),
                                  cache_dir=cache)
    some_file = first.paths[0]
    fx.write(some_file, fx.encode(fx.boxed_image((1, 2, 3), size=(50, 50), box=(0, 0, 50, 50))))
    with pytest.raises(AssertionError, match="despite the cache"):
        loaders.load_face_set("cfee", data, size=8, split="all", cache_dir=cache)
    assert not [f for f in os.listdir(cache) if f.endswith(".tmp")]


# ---------------------------------------------------------------- synthetic round trip


def test_rafd_reads_the_synthetic_writer(tmp_path):
    synthetic = pytest.importorskip("leed_tf.data.synthetic")
    poses = (-45.0, 0.0, 45.0)
    written = synthetic.write_dataset(str(tmp_path), fmt="rafd", num_subjects=3, seed=5,
                                      poses=poses)
    # The writer nests subject > expression > pose and numbers subjects from 01.
    expected = dict(zip(written, [(f"{k + 1:02d}", e, p) for k in range(3)
                                  for e in RAFD_EXPRESSIONS for p in poses]))
    records = loaders.rafd_records(tmp_path)
    assert len(records) == len(expected) == 3 * 8 * 3
    for r in records:
        assert (r.subject, r.expression, r.pose, r.gaze) == (*expected[r.path], "frontal")

    faces = loaders.load_face_set("rafd", tmp_path, size=128, split="all")
    identities = synthetic.make_identities(3, seed=5)
    rendered = np.stack([
        synthetic.render(identities[int(faces.subject_names[s]) - 1], faces.expression_names[e],
                         1.0, float(pose), 128)
        for s, e, pose in zip(faces.subjects, faces.expressions, faces.poses)])
    diff = np.abs(faces.images.astype(np.float32) - rendered.astype(np.float32))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 24, (diff.mean(),
                                                                np.percentile(diff, 99))


def test_folder_reads_the_synthetic_writer(tmp_path):
    synthetic = pytest.importorskip("leed_tf.data.synthetic")
    written = synthetic.write_dataset(str(tmp_path), fmt="folder", num_subjects=2, seed=1,
                                      poses=(0.0,), size=32)
    faces = loaders.load_face_set("folder", tmp_path, size=32, split="all")
    assert len(faces) == len(written) == 16
    assert faces.expression_names == RAFD_EXPRESSIONS and faces.subject_names == ("s000", "s001")
    identities = synthetic.make_identities(2, seed=1)
    for image, s, e in zip(faces.images, faces.subjects, faces.expressions):
        rendered = synthetic.render(identities[s], faces.expression_names[e], 1.0, 0.0, 32)
        np.testing.assert_array_equal(image, rendered)  # lossless PNG at the same size
