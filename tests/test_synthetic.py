"""Tests of the built-in synthetic faces (leed_tf/data/synthetic/)."""

import itertools
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from leed_tf.data import synthetic
from leed_tf.data.records import RAFD_EXPRESSIONS

ROOT = pathlib.Path(__file__).resolve().parent.parent
POSES = (-45.0, 0.0, 45.0)
RAFD_NAME = re.compile(r"^Rafd(\d{3})_(\d{2})_(Caucasian|Moroccan|Kid)_(male|female)_([a-z]+)_(frontal)\.jpg$")


@pytest.fixture(scope="module")
def identities():
    return synthetic.make_identities(6, seed=11)


def _dilate(mask, steps):
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _background_rgb(identity):
    return np.round(np.asarray(identity.background) * 255.0).astype(np.int32)


def test_expressions_are_rafds():
    assert synthetic.EXPRESSIONS == RAFD_EXPRESSIONS
    assert synthetic.EXPRESSIONS[synthetic.NEUTRAL_INDEX] == "neutral" == synthetic.EXPRESSIONS[5]
    assert set(synthetic.EXPRESSION_ACTIONS) == set(synthetic.EXPRESSIONS)
    for table in synthetic.EXPRESSION_ACTIONS.values():
        assert set(table) <= set(synthetic.ACTIONS)
    assert not synthetic.EXPRESSION_ACTIONS["neutral"]
    # Contempt is a one-sided expression, and the only one.
    assert synthetic.EXPRESSION_ACTIONS["contemptuous"]["unilateral_corner_raise"] > 0
    assert all("unilateral_corner_raise" not in t for e, t in synthetic.EXPRESSION_ACTIONS.items()
               if e != "contemptuous")


def test_render_is_deterministic_and_well_formed(identities):
    for pose in POSES:
        a = synthetic.render(identities[0], "happy", 0.7, pose)
        b = synthetic.render(identities[0], "happy", 0.7, pose)
        assert a.dtype == np.uint8 and a.shape == (128, 128, 3)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(synthetic.render(identities[1], "sad"),
                                  synthetic.render(identities[1], RAFD_EXPRESSIONS.index("sad")))
    assert synthetic.render(identities[0], "angry", size=64).shape == (64, 64, 3)
    # Edges are anti-aliased: a face has many colours, not a handful.
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 500


def test_unknown_expression_is_an_error(identities):
    with pytest.raises(ValueError):
        synthetic.render(identities[0], "bored")
    with pytest.raises(ValueError):
        synthetic.render(identities[0], 8)


def test_intensity_zero_is_the_neutral_face(identities):
    for identity, pose in itertools.product(identities[:3], POSES):
        neutral = synthetic.render(identity, "neutral", pose=pose)
        for expression in synthetic.EXPRESSIONS:
            np.testing.assert_array_equal(synthetic.render(identity, expression, 0.0, pose), neutral,
                                          err_msg=f"{expression} at pose {pose}")


def test_intensity_grows_the_change(identities):
    neutral = synthetic.render(identities[0], "neutral").astype(np.int32)
    changes = [np.abs(synthetic.render(identities[0], "surprised", t).astype(np.int32) - neutral).sum()
               for t in (0.25, 0.5, 1.0)]
    assert 0 < changes[0] < changes[1] < changes[2]


def test_expression_changes_only_the_face(identities):
    for identity, pose in itertools.product(identities, POSES):
        background = _background_rgb(identity)
        neutral = synthetic.render(identity, "neutral", pose=pose).astype(np.int32)
        # The corners are background, exactly.
        for corner in (neutral[0, 0], neutral[0, -1]):
            assert np.abs(corner - background).max() <= 1
        person = _dilate(np.abs(neutral - background).max(-1) > 1, 3)
        assert 0.2 < person.mean() < 0.85
        for expression in synthetic.EXPRESSIONS:
            image = synthetic.render(identity, expression, pose=pose).astype(np.int32)
            changed = np.abs(image - neutral).max(-1) > 0
            assert not (changed & ~person).any(), f"{expression} at pose {pose} touched the background"
            # Changes stay above the shoulders and inside the head's columns.
            if changed.any():
                rows, cols = np.nonzero(changed)
                assert rows.min() > 20 and rows.max() < 115 and cols.min() > 15 and cols.max() < 113


def test_every_expression_differs_from_every_other(identities):
    for identity, pose in itertools.product(identities, POSES):
        images = [synthetic.render(identity, e, pose=pose).astype(np.int32) for e in synthetic.EXPRESSIONS]
        for a, b in itertools.combinations(range(len(images)), 2):
            strongly_changed = (np.abs(images[a] - images[b]).max(-1) > 16).sum()
            assert strongly_changed >= 50, (synthetic.EXPRESSIONS[a], synthetic.EXPRESSIONS[b], pose,
                                            strongly_changed)


def test_identities_differ():
    people = synthetic.make_identities(8, seed=0)
    images = [synthetic.render(p, "neutral").astype(np.int32) for p in people]
    for a, b in itertools.combinations(range(len(people)), 2):
        assert np.abs(images[a] - images[b]).mean() > 8.0
        assert not np.allclose(people[a].to_vector(), people[b].to_vector())
    # Identity parameters actually vary across the population.
    vectors = np.stack([p.to_vector() for p in synthetic.make_identities(40, seed=1)])
    assert (vectors.std(0) > 0).all()
    assert len({p.hair_style for p in synthetic.make_identities(40, seed=1)}) == len(synthetic.HAIR_STYLES)


def test_pose_turns_the_face(identities):
    identity = identities[2]
    images = {pose: synthetic.render(identity, "neutral", pose=pose).astype(np.int32) for pose in POSES}
    for p, q in itertools.combinations(POSES, 2):
        assert np.abs(images[p] - images[q]).mean() > 3.0
    # Features move with the yaw: the columns the mouth and eyes occupy
    # (where surprise changes the face) shift right for positive yaw.
    centres = {}
    for pose in POSES:
        changed = np.abs(synthetic.render(identity, "surprised", pose=pose).astype(np.int32)
                         - images[pose]).max(-1) > 0
        centres[pose] = np.nonzero(changed)[1].mean()
    assert centres[-45.0] < centres[0.0] - 5 < centres[45.0] - 10
    assert abs(centres[0.0] - 63.5) < 3


def test_identity_vector_round_trip():
    for identity in synthetic.make_identities(20, seed=3):
        vector = identity.to_vector()
        assert vector.dtype == np.float32 and vector.shape == (synthetic.IDENTITY_DIM,)
        assert synthetic.Identity.from_vector(vector) == identity
        np.testing.assert_array_equal(synthetic.Identity.from_vector(vector).to_vector(), vector)
    with pytest.raises(ValueError):
        synthetic.Identity.from_vector(np.zeros(synthetic.IDENTITY_DIM + 1))


def test_identities_depend_only_on_seed_and_index():
    assert synthetic.make_identities(4, seed=7) == synthetic.make_identities(9, seed=7)[:4]
    assert synthetic.make_identities(3, seed=7, first=5) == synthetic.make_identities(8, seed=7)[5:]
    assert synthetic.make_identities(3, seed=7) != synthetic.make_identities(3, seed=8)
    rng = np.random.default_rng(0)
    assert isinstance(synthetic.sample_identity(rng), synthetic.Identity)


def test_render_face_set_layout():
    faces = synthetic.render_face_set(2, seed=4, poses=(0.0, 45.0), intensities=(0.5, 1.0))
    # 7 expressions x 2 poses x 2 intensities + neutral once per pose.
    per_subject = 7 * 2 * 2 + 2
    n = 2 * per_subject
    assert len(faces) == n
    assert faces.images.shape == (n, 128, 128, 3) and faces.images.dtype == np.uint8
    assert faces.subjects.dtype == np.int32 and faces.expressions.dtype == np.int32
    assert faces.poses.dtype == np.float32
    assert faces.subject_names == ("s000", "s001")
    assert faces.expression_names == RAFD_EXPRESSIONS
    assert faces.gazes == ["frontal"] * n and faces.paths == [""] * n
    assert faces.extras["identity"].shape == (n, synthetic.IDENTITY_DIM)
    assert faces.extras["identity"].dtype == np.float32
    assert faces.extras["intensity"].shape == (n,) and faces.extras["intensity"].dtype == np.float32
    assert np.bincount(faces.subjects).tolist() == [per_subject] * 2
    neutral = faces.expressions == synthetic.NEUTRAL_INDEX
    assert neutral.sum() == 4 and (faces.extras["intensity"][neutral] == 0).all()
    assert set(faces.extras["intensity"][~neutral].tolist()) == {0.5, 1.0}
    assert (faces.neutral_indices() >= 0).all()
    people = synthetic.make_identities(2, seed=4)
    for i in (0, 7, n - 1):
        identity = people[faces.subjects[i]]
        np.testing.assert_array_equal(faces.extras["identity"][i], identity.to_vector())
        expected = synthetic.render(identity, int(faces.expressions[i]), float(faces.extras["intensity"][i]),
                                    float(faces.poses[i]))
        np.testing.assert_array_equal(faces.images[i], expected)


def test_first_subject_renders_held_out_identities():
    whole = synthetic.render_face_set(3, seed=5, poses=(0.0,))
    tail = synthetic.render_face_set(1, seed=5, poses=(0.0,), first_subject=2)
    assert tail.subject_names == ("s002",)
    last = whole.subjects == 2
    np.testing.assert_array_equal(tail.images, whole.images[last])
    np.testing.assert_array_equal(tail.extras["identity"], whole.extras["identity"][last])
    np.testing.assert_array_equal(tail.expressions, whole.expressions[last])


def test_render_ground_truth_reproduces_the_set():
    faces = synthetic.render_face_set(1, seed=6, poses=(-45.0, 45.0), intensities=(0.6,))
    truth = synthetic.render_ground_truth(faces.extras["identity"], faces.expressions,
                                          faces.extras["intensity"], faces.poses)
    assert truth.shape == faces.images.shape and truth.dtype == np.uint8
    np.testing.assert_array_equal(truth, faces.images)
    # An edit's target: person 0 wearing another face's expression.
    swapped = synthetic.render_ground_truth(faces.extras["identity"][:1], [4], [1.0], [0.0])
    np.testing.assert_array_equal(
        swapped[0], synthetic.render(synthetic.make_identities(1, seed=6)[0], "happy"))


def test_write_dataset_rafd(tmp_path):
    paths = synthetic.write_dataset(str(tmp_path), fmt="rafd", num_subjects=2, seed=9)
    assert len(paths) == 2 * 8 * 3 and all(os.path.isfile(p) for p in paths)
    people = synthetic.make_identities(2, seed=9)
    codes = {"045": -45.0, "090": 0.0, "135": 45.0}
    seen, demographics = set(), {}
    for path in paths:
        match = RAFD_NAME.match(os.path.basename(path))
        assert match, path
        angle, subject, ethnicity, gender, expression, _ = match.groups()
        assert angle in codes and expression in RAFD_EXPRESSIONS and subject in ("01", "02")
        # Ethnicity and gender belong to the subject, not to the image.
        assert demographics.setdefault(subject, (ethnicity, gender)) == (ethnicity, gender)
        seen.add((angle, subject, expression))
    assert len(seen) == len(paths)
    top, left, side = 90, 30, 621
    for path in paths[::7]:
        angle, subject, _, _, expression, _ = RAFD_NAME.match(os.path.basename(path)).groups()
        image = Image.open(path)
        assert image.size == (681, 1024) and image.format == "JPEG"
        pixels = np.asarray(image.convert("RGB")).astype(np.float64)
        identity = people[int(subject) - 1]
        background = _background_rgb(identity)
        assert np.abs(pixels[1000, 10] - background).max() <= 4  # outside the face box
        crop = Image.fromarray(pixels[top:top + side, left:left + side].astype(np.uint8))
        back = np.asarray(crop.resize((128, 128), Image.BICUBIC)).astype(np.float64)
        render = synthetic.render(identity, expression, pose=codes[angle]).astype(np.float64)
        assert np.abs(back - render).mean() < 6.0, path


def test_rafd_angle_codes():
    assert [synthetic.rafd_angle_code(p) for p in (-90, -45, 0, 45, 90)] == ["000", "045", "090", "135", "180"]
    with pytest.raises(ValueError):
        synthetic.rafd_angle_code(30)


def test_write_dataset_folder(tmp_path):
    paths = synthetic.write_dataset(str(tmp_path), fmt="folder", num_subjects=2, seed=9, poses=(0.0, 45.0),
                                    first_subject=3)
    assert len(paths) == 2 * 8 * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(RAFD_EXPRESSIONS)
    for expression in RAFD_EXPRESSIONS:
        names = sorted(p.name for p in (tmp_path / expression).iterdir())
        assert names == ["s003_0.png", "s003_45.png", "s004_0.png", "s004_45.png"]
    image = np.asarray(Image.open(tmp_path / "happy" / "s004_45.png"))
    np.testing.assert_array_equal(
        image, synthetic.render(synthetic.make_identities(1, seed=9, first=4)[0], "happy", pose=45.0))
    with pytest.raises(ValueError):
        synthetic.write_dataset(str(tmp_path), fmt="tfrecord", num_subjects=1)


def test_contact_sheet_tiles_and_labels():
    faces = synthetic.render_face_set(1, seed=2, poses=(0.0,))
    sheet = synthetic.contact_sheet(faces, 2, 4, pad=2)
    assert sheet.shape == (2 * 130 + 2, 4 * 130 + 2, 3)
    np.testing.assert_array_equal(sheet[2:130, 2:130], faces.images[0])
    labelled = synthetic.expression_sheet(2, seed=2)
    assert labelled.shape[0] > 2 * 130 and labelled.shape[1] > 8 * 130
    with pytest.raises(ValueError):
        synthetic.contact_sheet(faces, 3, 4)


def test_make_synthetic_script(tmp_path):
    out, sheet = tmp_path / "rafd", tmp_path / "sheet.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), f"--out={out}", "--format=rafd",
         "--subjects=2", "--poses=-45,0,45", f"--contact_sheet={sheet}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 48 and all(RAFD_NAME.match(f) for f in files)
    assert "Wrote 48 files" in result.stdout
    assert Image.open(sheet).size[0] > 8 * 128
