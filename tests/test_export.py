"""The SavedModel export: TF Serving's layout, assets, signatures as
saved_model_cli lists them, loading with TensorFlow alone, and requests that
fail with InvalidArgumentError instead of crashing the process."""

import io
import json
import logging
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from absl import logging as absl_logging

from leed_tf.inference import export
from leed_tf.config import Config
from leed_tf.data import synthetic
from leed_tf.inference.expression_bank import ExpressionBank
from test_editor import (SUBPROCESS_TIMEOUT, assert_same_pixels, png, random_networks, trained_model,
                         unit)

SIGNATURES = ("serving_default", "edit_tensor", "neutralize", "expression_code", "edit_with_code",
              "edit_with_expression")



@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The run folder and export of tests/test_editor.py (trained once per process)."""
    return trained_model(tmp_path_factory)

def test_export_layout_assets_and_versions(trained, tmp_path):
    assert "Exported" in trained.export_process.stdout
    assert sorted(os.listdir(trained.export_base)) == ["1"]  # No staging folder left behind.
    version = trained.export_dir
    assert os.path.exists(os.path.join(version, "saved_model.pb"))
    assert sorted(os.listdir(os.path.join(version, "assets"))) == [
        "config.json", "expression_bank.npz", "leed_export.json"]
    config = Config.load(os.path.join(version, "assets", "config.json"))
    assert config.to_dict() == Config.load(os.path.join(trained.run_dir, "config.json")).to_dict()
    bank = ExpressionBank.load(os.path.join(version, "assets", "expression_bank.npz"))
    assert bank.names == synthetic.EXPRESSIONS and bank.code_shape == (8, 8, 64)
    with open(os.path.join(version, "assets", "leed_export.json")) as f:
        meta = json.load(f)
    assert meta["image_size"] == 128 and meta["image_range"] == [0.0, 1.0] and meta["face_box"] is None
    assert meta["has_neutralizer"] and set(meta["signatures"]) == set(SIGNATURES)
    assert meta["signatures"]["serving_default"] == ["input_image", "reference_image", "intensity"]

    assert export.next_version(trained.export_base) == 2
    assert export.latest_version_dir(trained.export_base) == version
    base = tmp_path / "leed"
    for name in ("1", "3", "notes", ".staging-7-x"):
        (base / name).mkdir(parents=True)
    assert export.next_version(str(base)) == 4
    with pytest.raises(FileExistsError, match="never overwrites"):
        export.export_networks(random_networks(), str(base), version=3)
    with pytest.raises(FileNotFoundError, match="No SavedModel"):
        export.latest_version_dir(str(base))


def test_saved_model_cli_lists_every_signature(trained):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    module = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    command = [cli] if os.path.exists(cli) else module
    process = subprocess.run(command + ["show", "--all", "--dir", trained.export_dir],
                             capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert process.returncode == 0, process.stderr[-3000:]
    blocks = {block.split("'", 1)[0]: block for block in process.stdout.split("signature_def['")[1:]}
    assert set(SIGNATURES) <= set(blocks), sorted(blocks)
    for name in SIGNATURES:
        assert "Method name is: tensorflow/serving/predict" in blocks[name], blocks[name]
    serving = blocks["serving_default"]
    for line in ("inputs['input_image'] tensor_info:", "inputs['reference_image'] tensor_info:",
                 "inputs['intensity'] tensor_info:", "outputs['output_png_bytes'] tensor_info:",
                 "outputs['output_image'] tensor_info:"):
        assert line in serving, serving
    assert "shape: (-1, 128, 128, 3)" in serving and "dtype: DT_STRING" in serving
    assert "inputs['expression_code']" in blocks["edit_with_code"]
    assert "shape: (-1, 8, 8, 64)" in blocks["expression_code"]


_PLAIN_TF_CLIENT = textwrap.dedent("""
    import sys
    sys.modules["leed_tf"] = None  # Any import of leed_tf now fails.
    import json, os
    import tensorflow as tf
    try:
        import leed_tf  # noqa: F401
        raise SystemExit("leed_tf is importable")
    except ImportError:
        pass
    export_dir, input_path, reference_path, output_path = sys.argv[1:5]
    model = tf.saved_model.load(export_dir)
    read = lambda p: open(p, "rb").read()
    outputs = model.signatures["serving_default"](
        input_image=tf.constant([read(input_path)]), reference_image=tf.constant([read(reference_path)]),
        intensity=tf.constant([1.0]))
    open(output_path, "wb").write(outputs["output_png_bytes"].numpy()[0])
    names = [n.decode() for n in model.expression_names.numpy()]
    code = model.signatures["edit_with_code"](
        input_image=outputs["output_image"], expression_code=model.expression_codes[names.index("sad")][None],
        intensity=tf.constant([0.5]))["output_image"]
    meta = json.load(open(os.path.join(export_dir, "assets", "leed_export.json")))
    print(json.dumps({"shape": outputs["output_image"].shape.as_list(), "names": names,
                      "code_edit": code.shape.as_list(), "signatures": sorted(model.signatures),
                      "leed_tf": [m for m in sys.modules if m.startswith("leed_tf")
                                  and sys.modules[m] is not None], "image_size": meta["image_size"]}))
""")


def test_saved_model_runs_with_tensorflow_alone(trained, tmp_path):
    face, reference = trained.faces[2], trained.faces[14]
    (tmp_path / "client.py").write_text(_PLAIN_TF_CLIENT)
    (tmp_path / "in.png").write_bytes(png(face))
    jpeg = io.BytesIO()
    Image.fromarray(reference).save(jpeg, format="JPEG", quality=95)
    (tmp_path / "ref.jpg").write_bytes(jpeg.getvalue())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.run(
        [sys.executable, "-I", "client.py", trained.export_dir, "in.png", "ref.jpg", "out.png"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])
    assert report["shape"] == [1, 128, 128, 3] and report["code_edit"] == [1, 128, 128, 3]
    assert report["names"] == list(synthetic.EXPRESSIONS) and report["leed_tf"] == []
    assert set(SIGNATURES) <= set(report["signatures"])
    # The same request in this process gives the same PNG.
    expected = trained.editor("export").model.signatures["serving_default"](
        input_image=tf.constant([png(face)]), reference_image=tf.constant([jpeg.getvalue()]),
        intensity=tf.constant([1.0]))["output_png_bytes"].numpy()[0]
    assert_same_pixels(np.asarray(Image.open(tmp_path / "out.png")),
                       np.asarray(Image.open(io.BytesIO(expected))))


def test_serving_default_decodes_like_the_editor(trained):
    """128 x 128 PNGs need no crop or resize: bytes in the graph and arrays in
    the editor give the same edit, and the PNG output is the float output."""
    model = trained.editor("export").model
    inputs, references = trained.faces[[0, 3]], trained.faces[[10, 15]]
    outputs = model.signatures["serving_default"](
        input_image=tf.constant([png(x) for x in inputs]),
        reference_image=tf.constant([png(x) for x in references]), intensity=tf.constant([1.0, 0.5]))
    expected = trained.editor("export").edit(inputs, references, intensity=[1.0, 0.5], output="float")
    np.testing.assert_allclose(outputs["output_image"].numpy(), expected, atol=1e-4)
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in outputs["output_png_bytes"].numpy()])
    np.testing.assert_array_equal(decoded, np.rint(outputs["output_image"].numpy() * 255).astype(np.uint8))
    assert_same_pixels(decoded, np.rint(expected * 255))


def _png_header(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_invalid_requests_raise_invalid_argument_and_the_model_keeps_serving(trained):
    signatures = trained.editor("export").model.signatures
    good, other = png(trained.faces[0]), png(trained.faces[9])
    jpeg = io.BytesIO()
    Image.fromarray(trained.faces[0]).save(jpeg, format="JPEG")
    images = tf.constant(unit(trained.faces[:2]))

    def serve(inputs, references, intensity):
        return signatures["serving_default"](input_image=tf.constant(inputs, tf.string),
                                             reference_image=tf.constant(references, tf.string),
                                             intensity=tf.constant(intensity, tf.float32))

    cases = {
        "not a JPEG or PNG": lambda: serve([b"GIF89a no thanks", good], [other, other], [1.0]),
        "is empty": lambda: serve([good], [b""], [1.0]),
        "truncated PNG": lambda: serve([good[:20]], [other], [1.0]),
        "invalid size": lambda: serve([_png_header(100_000, 100_000)], [other], [1.0]),
        "PNG": lambda: serve([good[:200]], [other], [1.0]),          # decoder: bad data
        "JPEG": lambda: serve([jpeg.getvalue()[:300]], [other], [1.0]),
        "Empty batch": lambda: serve(np.zeros([0], object), np.zeros([0], object), [1.0]),
        "Batch sizes differ": lambda: serve([good, good], [other], [1.0]),
        "one value or one per image": lambda: serve([good, good], [other, other], [1.0, 1.0, 1.0]),
        "intensity must be finite": lambda: serve([good], [other], [float("nan")]),
        "finite": lambda: serve([good], [other], [float("inf")]),
        r"\[0, 1\]": lambda: signatures["edit_tensor"](input_image=images * 2 - 1, reference_image=images,
                                                       intensity=tf.constant([1.0])),
        "NaN or Inf": lambda: signatures["neutralize"](image=images * np.nan),
        "Unknown expression.*angry, contemptuous": lambda: signatures["edit_with_expression"](
            input_image=tf.constant([good, good]), expression=tf.constant(["happy", "smug"]),
            intensity=tf.constant([1.0])),
    }
    for message, call in cases.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            call()
    outputs = serve([good, good], [other, other], [1.0])  # Still serving.
    assert outputs["output_image"].shape == (2, 128, 128, 3)
    named = signatures["edit_with_expression"](input_image=tf.constant([good, png(trained.faces[1])]),
                                               expression=tf.constant(["happy"]), intensity=tf.constant([1.0]))
    expected = trained.editor("export").edit(trained.faces[:2], expression="happy", output="float")
    np.testing.assert_allclose(named["output_image"].numpy(), expected, atol=1e-4)


def test_export_of_in_memory_networks_without_neutralizer_has_neutral_inputs():
    """The signature set of a neutral_source=dataset model (nothing traced)."""
    module = export.LeedServingModule(random_networks(), has_neutralizer=False)
    arguments = module.signature_arguments()
    assert "neutralize" not in arguments
    assert arguments["serving_default"] == ("input_image", "input_neutral", "reference_image",
                                            "reference_neutral", "intensity")
    assert arguments["expression_code"] == ("image", "neutral")
    assert module.metadata()["has_neutralizer"] is False
    with pytest.raises(ValueError, match="codes of shape"):
        export.LeedServingModule(random_networks(), bank=ExpressionBank(("a",), np.zeros((1, 8, 8, 3)), [1]))


def test_export_script_refuses_to_overwrite(trained):
    staging = [n for n in os.listdir(trained.export_base) if n.startswith(".")]
    assert staging == []
    with pytest.raises(FileExistsError, match="exists"):
        export.export_run(trained.run_dir, trained.export_base, version=1)
    assert sorted(os.listdir(trained.export_base)) == ["1"]


def test_export_keeps_the_callers_info_messages(tmp_path, caplog):
    # tf.saved_model.save pins absl's logger to WARNING; a library user's INFO logging must survive.
    with caplog.at_level(logging.INFO):
        export.export_networks(random_networks(), str(tmp_path / "export"), neutralizer=False)
        absl_logging.info("after the export")
    assert "after the export" in caplog.text


def test_16x16_codes_with_the_patch_path_export_and_edit_as_the_networks_do(tmp_path):
    """model.code_stride=8 with model.patch_path and model.code_skips: the
    SavedModel's signatures carry 16x16 codes, and its edits are
    LeedNetworks' own."""
    from leed_tf.config import previous_synthetic_defaults
    from leed_tf.inference.editor import Editor
    from leed_tf.model import LeedNetworks

    model_config = previous_synthetic_defaults().model
    model_config.code_stride, model_config.patch_path, model_config.code_skips = 8, True, True
    nets = LeedNetworks(model_config)
    path = export.export_networks(nets, str(tmp_path / "export"), neutralizer=False)
    editor = Editor.from_saved_model(path)
    assert editor.code_shape == (16, 16, 64)
    faces = np.random.default_rng(0).uniform(0.1, 0.9, (4, 2, 128, 128, 3)).astype(np.float32)
    inputs, neutrals, references, reference_neutrals = faces
    got = editor.edit_batch(inputs, references, input_neutrals=neutrals, reference_neutrals=reference_neutrals)
    expected = nets.edit(*(tf.constant(x * 2 - 1) for x in faces), output=editor.output_form).numpy()
    np.testing.assert_allclose(got, np.clip((expected + 1) / 2, 0, 1), atol=1e-4)
    assert editor.expression_codes(references, reference_neutrals).shape == (2, 16, 16, 64)
