"""The Editor on a tiny trained run and on its export: the two agree, the
graph computes the networks' math, intensity 0 is the neutral rendering,
self-edits, expression banks, every image form, and scripts/edit.py.

``trained_model`` trains ONE run folder (every stage, 2 steps) and exports it
once per test process; tests/test_export.py and tests/test_serving.py share it
through their ``trained`` fixtures, which call it.
"""

import dataclasses
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from leed_tf.inference import export
from leed_tf.config import OUTPUT_FORMS, previous_synthetic_defaults
from leed_tf.data import synthetic
from leed_tf.data.images import BadImageError, decode_image
from leed_tf.data.loaders import RAFD_BOX
from leed_tf.data.images import uint8_from_01
from leed_tf.inference.editor import Editor, detect_face_box
from leed_tf.inference.files import edit_paths, expression_sheet
from leed_tf.inference.expression_bank import (ExpressionBank, UnknownExpressionError, build_expression_bank,
                                     labelled_faces)
from leed_tf.model import LeedNetworks
from leed_tf.training import run

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT = 240


def tiny_config():
    config = previous_synthetic_defaults()
    config.data.synthetic_subjects = 4
    config.data.synthetic_poses = (0.0,)
    for stage in (config.neutralizer, config.autoencoder, config.leed):
        stage.batch_size = 4
    config.neutralizer.n_critic = 1
    config.data.neutral_source = "stargan"  # All three stages (the synthetic default uses real neutrals).
    config.log_every = 1000
    return config


@dataclasses.dataclass
class TrainedModel:
    run_dir: str
    export_base: str
    export_dir: str
    export_process: subprocess.CompletedProcess
    faces: np.ndarray          # uint8 [16, 128, 128, 3]: 2 unseen identities x 8 expressions
    _editors: dict = dataclasses.field(default_factory=dict)

    def nets(self) -> LeedNetworks:
        """The run's networks restored independently of any Editor, once."""
        if "nets" not in self._editors:
            self._editors["nets"] = export.restore_networks(self.run_dir).nets
        return self._editors["nets"]

    def editor(self, kind: str) -> Editor:
        """``run`` (the run folder, in memory) or ``export`` (the SavedModel), built once."""
        if kind not in self._editors:
            self._editors[kind] = (Editor.from_run_dir(self.run_dir) if kind == "run"
                                   else Editor.from_saved_model(self.export_dir))
        return self._editors[kind]


_TRAINED = {}


def random_networks() -> LeedNetworks:
    """Untrained width-0.125 networks, built once (for tests that trace nothing)."""
    if "random" not in _TRAINED:
        _TRAINED["random"] = LeedNetworks(previous_synthetic_defaults().model)
    return _TRAINED["random"]


def trained_model(tmp_path_factory) -> TrainedModel:
    """Trains, builds the expression bank and runs scripts/export.py, once per process
    (a failure is re-raised by every later call instead of training again)."""
    if "error" in _TRAINED:
        raise _TRAINED["error"]
    if "model" not in _TRAINED:
        try:
            _TRAINED["model"] = _train_and_export(tmp_path_factory)
        except Exception as e:
            _TRAINED["error"] = e
            raise
    return _TRAINED["model"]


def _train_and_export(tmp_path_factory) -> TrainedModel:
    base = tmp_path_factory.mktemp("trained")
    run_dir = str(base / "run")
    run.train(tiny_config(), run_dir, max_steps=2)
    editor = Editor.from_run_dir(run_dir)
    bank = build_expression_bank(editor.expression_codes, labelled_faces("synthetic", synthetic_subjects=1))
    bank.save(os.path.join(run_dir, "expression_bank.npz"))
    export_base = str(base / "saved_models" / "leed")
    process = subprocess.run(
        [sys.executable, "scripts/export.py", f"--run_dir={run_dir}", f"--export_dir={export_base}"],
        cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    faces = synthetic.render_face_set(2, seed=0, poses=(0.0,), first_subject=100).images
    assert process.returncode == 0, process.stderr[-3000:]
    model = TrainedModel(run_dir, export_base, os.path.join(export_base, "1"), process, faces)
    editor.bank = bank  # What Editor.from_run_dir(run_dir) would now load.
    model._editors["run"] = editor
    return model


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    return trained_model(tmp_path_factory)


def unit(images):
    return images.astype(np.float32) / 255.0


def assert_same_pixels(actual, expected):
    """uint8 images equal up to a rare off-by-one: float results that differ
    by ~1e-6 between two graphs (e.g. batch sizes) can round either way."""
    difference = np.abs(np.asarray(actual, np.int32) - np.asarray(expected, np.int32))
    assert difference.shape == np.shape(expected) and difference.max() <= 1, difference.max()
    assert np.mean(difference > 0) < 1e-3, np.mean(difference > 0)


def png(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- the two backends


def test_run_folder_and_export_agree(trained):
    run_editor, export_editor = trained.editor("run"), trained.editor("export")
    inputs, references = trained.faces[:8], trained.faces[8:][::-1]
    intensity = np.linspace(0.0, 1.5, 8)
    for name, call in {
        "edit": lambda e: e.edit(inputs, references, intensity=intensity, output="float"),
        "expression": lambda e: e.edit(inputs[:3], expression="happy", output="float"),
        "interpolate": lambda e: e.interpolate(inputs[0], "sad", "surprised", t=[0.0, 0.3], output="float"),
        "neutralize": lambda e: e.neutralize(inputs[:2], output="float"),
        "codes": lambda e: e.expression_codes(references[:2]),
    }.items():
        np.testing.assert_allclose(call(run_editor), call(export_editor), atol=1e-4, err_msg=name)
    assert export_editor.expression_names == run_editor.expression_names == synthetic.EXPRESSIONS
    assert export_editor.has_neutralizer
    # Both follow the run's setting (the synthetic default's residual form).
    assert export_editor.output_form == run_editor.output_form == previous_synthetic_defaults().output_form


def test_edit_is_the_networks_math(trained):
    """The serving graph against LeedNetworks.edit on independently restored networks."""
    nets = trained.nets()
    inputs, references = unit(trained.faces[:4]), unit(trained.faces[12:])
    x, r = inputs * 2 - 1, references * 2 - 1
    for form in OUTPUT_FORMS:
        expected = nets.edit(x, nets.neutralize(x), r, nets.neutralize(r), tf.constant([1.0, 0.5, 0.0, 2.0]),
                             output=form)
        expected = np.clip((expected.numpy() + 1) / 2, 0, 1)
        got = Editor.from_run_dir(trained.run_dir, output_form=form).edit_batch(inputs, references,
                                                                                [1.0, 0.5, 0.0, 2.0])
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=form)


def test_intensity_zero_renders_the_neutral_code(trained):
    """z_out = n exactly at intensity 0, whatever the reference: Dec(E(G_neu(I)))
    in decoded form, I + Dec(n) - Dec(z_self) in residual form, N + Dec(n) -
    Dec(z_nn) anchored at the neutral face N = G_neu(I)."""
    nets = trained.nets()
    inputs = unit(trained.faces[:3])
    x = inputs * 2 - 1
    neutral_face = nets.neutralize(x)
    code, neutral_code = tf.split(nets.encoder(tf.concat([x, neutral_face], 0)), 2)
    neutral = nets.decoder(neutral_code, training=False).numpy()
    self_edit = nets.decoder(nets.edited_code(neutral_code, nets.expression_code(code, neutral_code)),
                             training=False).numpy()
    neutral_edit = nets.decoder(nets.edited_code(neutral_code, nets.expression_code(neutral_code, neutral_code)),
                                training=False).numpy()
    expected = {"decoded": np.clip((neutral + 1) / 2, 0, 1),
                "residual": np.clip((x + neutral - self_edit + 1) / 2, 0, 1),
                "neutral_residual": np.clip((neutral_face + neutral - neutral_edit + 1) / 2, 0, 1)}
    editors = {"run": trained.editor("run"), "export": trained.editor("export"),
               "run, decoded": Editor.from_run_dir(trained.run_dir, output_form="decoded"),
               "run, neutral-anchored": Editor.from_run_dir(trained.run_dir, output_form="neutral_residual")}
    assert {e.output_form for e in editors.values()} == set(expected)
    for kind, editor in editors.items():
        for references in (trained.faces[8:11], trained.faces[13:16]):
            got = editor.edit(inputs, references, intensity=0.0, output="float")
            np.testing.assert_allclose(got, expected[editor.output_form], atol=1e-5, err_msg=kind)
        np.testing.assert_allclose(editor.edit(inputs, expression="angry", intensity=0.0, output="float"),
                                   expected[editor.output_form], atol=1e-5, err_msg=kind)


def test_neutral_anchored_edits_with_real_neutral_faces():
    """A neutral_source=dataset model in the neutral-anchored form: an edit
    towards a reference that is its own neutral face is the input's neutral
    face, and any other edit is LeedNetworks' math."""
    nets = random_networks()
    editor = Editor(export.LeedServingModule(nets, has_neutralizer=False, output_form="neutral_residual"))
    faces = np.random.default_rng(0).uniform(0.1, 0.9, (4, 1, 128, 128, 3)).astype(np.float32)
    inputs, neutrals, references, reference_neutrals = faces
    towards_neutral = editor.edit_batch(inputs, reference_neutrals, input_neutrals=neutrals,
                                        reference_neutrals=reference_neutrals)
    np.testing.assert_allclose(towards_neutral, neutrals, atol=1e-5)
    got = editor.edit_batch(inputs, references, input_neutrals=neutrals, reference_neutrals=reference_neutrals)
    expected = nets.edit(*(tf.constant(x * 2 - 1) for x in faces), output="neutral_residual").numpy()
    np.testing.assert_allclose(got, np.clip((expected + 1) / 2, 0, 1), atol=1e-4)
    assert np.abs(got - neutrals).max() > 1e-3


def test_self_edit_returns_the_input_in_residual_form(trained):
    """In residual form, I_in + Dec(z_out) - Dec(z_self), a self-edit is the input
    by construction, and an edit towards another person's expression is not:
    the relation checks that the reference drives the edit.

    (In the paper's decoded form a self-edit is only as close to the input as
    the decoder is good, which two training steps do not make it; the training
    run's validation PSNR measures that.)
    """
    editor = Editor.from_run_dir(trained.run_dir, output_form="residual")
    inputs = unit(trained.faces[[1, 4, 7]])
    others = unit(trained.faces[[14, 9, 8]])  # The other identity, other expressions.
    self_edit = editor.edit_batch(inputs, inputs)
    other_edit = editor.edit_batch(inputs, others)
    self_error = np.abs(self_edit - inputs).mean(axis=(1, 2, 3))
    other_error = np.abs(other_edit - inputs).mean(axis=(1, 2, 3))
    assert np.all(self_error < 1e-5), self_error
    assert np.all(other_error > 20 * self_error + 1e-4), (self_error, other_error)
    # Decoded form: the same two edits differ as well (the reference is used).
    decoded = trained.editor("run")
    assert np.abs(decoded.edit_batch(inputs, inputs) - decoded.edit_batch(inputs, others)).mean() > 1e-4


def test_expression_edits_and_interpolation_use_the_bank_codes(trained):
    editor = trained.editor("run")
    face = trained.faces[3]
    happy, sad = editor.bank.code("happy"), editor.bank.code("sad")
    by_name = editor.edit(face, expression="happy", output="float")
    np.testing.assert_allclose(by_name, editor.edit_with_code(face, happy, output="float"), atol=1e-6)
    strip = editor.interpolate(face, "happy", "sad", t=[0.0, 0.25, 1.0], output="float")
    assert strip.shape == (3, 128, 128, 3)
    np.testing.assert_allclose(strip[0], by_name, atol=1e-6)
    np.testing.assert_allclose(strip[2], editor.edit(face, expression="sad", output="float"), atol=1e-6)
    np.testing.assert_allclose(strip[1], editor.edit_with_code(face, 0.75 * happy + 0.25 * sad, output="float"),
                               atol=1e-6)
    assert np.abs(strip[0] - strip[2]).max() > 1e-4  # Different codes, different pixels.
    # A reference image as an endpoint is its own expression code.
    np.testing.assert_allclose(editor.interpolate(face, trained.faces[12], "sad", t=0.0, output="float"),
                               editor.edit_with_code(face, editor.expression_codes(trained.faces[12]),
                                                     output="float"), atol=1e-6)


def test_unknown_expression_lists_the_bank(trained):
    editor = trained.editor("export")
    with pytest.raises(UnknownExpressionError, match="'smug'.*angry, contemptuous, disgusted"):
        editor.edit(trained.faces[0], expression="smug")
    with pytest.raises(UnknownExpressionError, match="happy, neutral, sad"):
        editor.interpolate(trained.faces[0], "happy", "smug")


# ---------------------------------------------------------------- expression banks


def test_bank_means_per_expression_and_round_trips(tmp_path):
    codes = np.arange(5 * 2 * 2 * 1, dtype=np.float32).reshape(5, 2, 2, 1)
    bank = ExpressionBank.from_codes(codes, [0, 2, 0, -1, 2], ["happy", "neutral", "sad"], "test")
    assert bank.names == ("happy", "sad")  # neutral has no face; -1 is unlabelled.
    np.testing.assert_allclose(bank.code("happy"), (codes[0] + codes[2]) / 2)
    np.testing.assert_allclose(bank.code("sad"), (codes[1] + codes[4]) / 2)
    assert list(bank.counts) == [2, 2]
    loaded = ExpressionBank.load(bank.save(str(tmp_path / "bank")))
    assert loaded.names == bank.names and loaded.source == "test"
    np.testing.assert_array_equal(loaded.codes, bank.codes)
    with pytest.raises(UnknownExpressionError, match="'angry'; this expression bank has: happy, sad"):
        loaded.code("angry")
    with pytest.raises(ValueError, match="unique"):
        ExpressionBank(("a", "a"), codes[:2], [1, 1])
    np.save(tmp_path / "other.npy", codes)
    with pytest.raises(ValueError, match="not an expression bank"):
        ExpressionBank.load(str(tmp_path / "other.npy"))
    with pytest.raises(FileNotFoundError, match="build_expression_bank"):
        ExpressionBank.load(str(tmp_path / "missing.npz"))


def test_bank_from_a_folder_matches_the_codes_of_its_images(trained, tmp_path):
    editor = trained.editor("run")
    for index in (0, 4, 8, 12):  # angry and happy of two identities
        name = synthetic.EXPRESSIONS[index % 8]
        os.makedirs(tmp_path / name, exist_ok=True)
        Image.fromarray(trained.faces[index]).save(tmp_path / name / f"s{index // 8}_{index}.png")
    faces = labelled_faces("folder", str(tmp_path))
    bank = build_expression_bank(editor.expression_codes, faces)
    assert bank.names == ("angry", "happy") and list(bank.counts) == [2, 2]
    np.testing.assert_allclose(bank.code("happy"), editor.expression_codes(trained.faces[[4, 12]]).mean(0),
                               atol=1e-5)


# ---------------------------------------------------------------- images in and out


def test_every_image_form_gives_the_same_crop(trained, tmp_path):
    editor = trained.editor("export")
    face = trained.faces[5]
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    forms = [str(path), path, png(face), Image.fromarray(face), face, unit(face)]
    for form in forms:
        images, single = editor.load_images(form)
        assert single and images.shape == (1, 128, 128, 3) and images.dtype == np.float32
        np.testing.assert_allclose(images[0], unit(face), atol=1e-6, err_msg=type(form).__name__)
    batch, single = editor.load_images(trained.faces[:3])
    assert not single and batch.shape == (3, 128, 128, 3)
    out = editor.edit(str(path), png(trained.faces[9]))
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    pil = editor.edit([face, face], trained.faces[9], output="pil")
    assert len(pil) == 2 and pil[0].size == (128, 128)
    with pytest.raises(BadImageError, match="not a readable image"):
        editor.load_images(b"not an image")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        editor.load_images(unit(face) * 2 - 1)
    with pytest.raises(ValueError, match="Batch sizes differ"):
        editor.edit(trained.faces[:3], trained.faces[:2])


def test_crops_follow_the_data_set(tmp_path):
    """RaFD models crop RaFD's face box, others the centred square; 128 x 128
    images are taken as crops already. (Only decoding: no graph runs.)"""
    module = export.LeedServingModule(random_networks(), box=RAFD_BOX)
    rafd, center = Editor(module), Editor(module, crop="center")
    portrait = np.random.default_rng(0).integers(0, 256, (1024, 681, 3), dtype=np.uint8)
    np.testing.assert_array_equal(uint8_from_01(rafd.load_images(portrait)[0][0]),
                                  decode_image(png(portrait), RAFD_BOX, 128))
    np.testing.assert_array_equal(uint8_from_01(center.load_images(portrait)[0][0]),
                                  decode_image(png(portrait), None, 128))
    small = np.zeros((128, 128, 3), np.uint8)
    assert rafd.load_images(png(small))[0].shape == (1, 128, 128, 3)
    with pytest.raises(BadImageError, match="smaller than the face box"):
        rafd.load_images(np.zeros((300, 200, 3), np.uint8))


def test_models_without_neutralizer_need_neutral_faces(trained):
    """neutral_source=dataset: no G_neu, so edits take the real neutral faces."""
    nets = trained.nets()
    editor = Editor(export.LeedServingModule(nets, has_neutralizer=False))
    inputs, references = trained.faces[[1, 2]], trained.faces[[14, 15]]
    neutrals, reference_neutrals = trained.faces[[5, 5]], trained.faces[[13, 13]]  # index 5: neutral
    with pytest.raises(ValueError, match="neutral_source=dataset.*input_neutral"):
        editor.edit(inputs, references)
    with pytest.raises(ValueError, match="no neutralizer"):
        editor.neutralize(inputs)
    got = editor.edit(inputs, references, input_neutral=neutrals, reference_neutral=reference_neutrals,
                      output="float")
    u = lambda a: unit(a) * 2 - 1  # noqa: E731
    expected = nets.edit(u(inputs), u(neutrals), u(references), u(reference_neutrals))
    np.testing.assert_allclose(got, np.clip((expected.numpy() + 1) / 2, 0, 1), atol=1e-4)
    assert "neutralize" not in editor.metadata["signatures"]
    # A bank from synthetic renders and their real neutral renders; named edits.
    faces = labelled_faces("synthetic", synthetic_subjects=1, real_neutrals=True)
    editor.bank = build_expression_bank(editor.expression_codes, faces)
    assert editor.bank.names == synthetic.EXPRESSIONS
    with pytest.raises(ValueError, match="input_neutral"):
        editor.edit(inputs, expression="happy")
    happy = editor.edit(inputs, expression="happy", input_neutral=neutrals, output="float")
    np.testing.assert_allclose(happy, editor.edit_with_code(inputs, editor.bank.code("happy"),
                                                            input_neutral=neutrals, output="float"), atol=1e-6)


def test_missing_checkpoints_name_the_stage_and_folder(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        Editor.from_run_dir(str(tmp_path))
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((pathlib.Path(trained.run_dir) / "config.json").read_text())
    for stage in ("neutralizer", "autoencoder"):
        os.symlink(os.path.join(trained.run_dir, stage), partial / stage)
    with pytest.raises(FileNotFoundError, match=r"stage 'leed' in .*partial/leed/checkpoints"):
        Editor.from_run_dir(str(partial))


def test_face_detection_is_optional(monkeypatch):
    blank = png(np.full((200, 200, 3), 255, np.uint8))
    try:
        import cv2  # noqa: F401
    except ImportError:
        cv2 = None
    if cv2 is not None:
        with pytest.raises(BadImageError, match="no face found"):
            detect_face_box(blank, "blank.png")
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match="opencv-python-headless<5"):
        detect_face_box(blank)


# ---------------------------------------------------------------- scripts/edit.py


def test_edit_paths_writes_every_pair_and_a_triplet_sheet(trained, tmp_path):
    for folder, indices in (("inputs", (0, 9)), ("references", (4, 12, 15))):
        (tmp_path / folder).mkdir()
        for i in indices:
            Image.fromarray(trained.faces[i]).save(tmp_path / folder / f"f{i:02d}.png")
    editor = trained.editor("export")
    written = edit_paths(editor, str(tmp_path / "inputs"), str(tmp_path / "out"),
                         references=str(tmp_path / "references"), intensity=0.5,
                         sheet=str(tmp_path / "triplets.png"))
    assert [os.path.basename(p) for p in written[:3]] == ["f00__f04.png", "f00__f12.png", "f00__f15.png"]
    assert len(written) == 7 and written[-1].endswith("triplets.png")
    assert_same_pixels(np.asarray(Image.open(tmp_path / "out" / "f09__f12.png")),
                       editor.edit(trained.faces[9], trained.faces[12], intensity=0.5))
    triplets = np.asarray(Image.open(tmp_path / "triplets.png"))
    assert triplets.shape[0] > 6 * 128 and 3 * 128 < triplets.shape[1] < 4 * 128  # 6 rows x 3 columns
    one = edit_paths(editor, str(tmp_path / "inputs" / "f00.png"), str(tmp_path / "one.png"), expression="sad")
    assert one == [str(tmp_path / "one.png")]
    with pytest.raises(ValueError, match="need an output folder"):
        edit_paths(editor, str(tmp_path / "inputs"), str(tmp_path / "x.png"), expression="sad")
    with pytest.raises(UnknownExpressionError):
        edit_paths(editor, str(tmp_path / "inputs"), str(tmp_path / "sheet.png"), expressions=["smug"])


def test_edit_script_writes_an_expression_sheet(trained, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in (0, 9):
        Image.fromarray(trained.faces[i]).save(inputs / f"face{i}.png")
    sheet = tmp_path / "sheet.png"
    process = subprocess.run(
        [sys.executable, "scripts/edit.py", f"--saved_model={trained.export_base}", f"--input={inputs}",
         "--expressions=all", f"--output={sheet}"],
        cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert process.returncode == 0, process.stderr[-3000:]
    written = np.asarray(Image.open(sheet))
    expected = expression_sheet(trained.editor("export"), [trained.faces[0], trained.faces[9]])
    assert written.shape == expected.shape  # 2 rows x (input + 8 expressions)
    assert expected.shape[1] > 9 * 128 and expected.shape[0] > 2 * 128
    np.testing.assert_allclose(written.astype(int), expected.astype(int), atol=1)
