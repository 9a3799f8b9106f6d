"""Bad input to the scripts: one line on stderr, ``error: ...``, exit status 2,
no traceback (leed_tf/cli.py); ``--verbose`` shows the traceback.

Every case is a real subprocess of a script. The subprocesses run two at a
time, all at once in one module fixture (each imports TensorFlow, ~5 s);
the tests then check one result each. The run folder the editing cases
need is trained once here (two steps, real neutral faces: no neutralizer).
"""

import concurrent.futures
import dataclasses
import io
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from leed_tf.config import previous_synthetic_defaults
from leed_tf.data import synthetic
from leed_tf.inference.editor import Editor
from leed_tf.inference.expression_bank import build_expression_bank, labelled_faces
from leed_tf.training import run

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT = 180
# TensorFlow's native logging writes these to stderr before any Python runs
# (TF_CPP_MIN_LOG_LEVEL does not silence them all); they are not ours.
NATIVE_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]|WARNING: All log messages before "
                        r"absl::InitializeLog|To enable the following instructions:)")


@dataclasses.dataclass
class Case:
    script: str
    args: list
    names: str = ""           # What the line must name (a file, a flag, a value).
    needs_run: bool = False


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # Closed again when the block ends.


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 20000) -> bytes:
    """A 1-bit greyscale PNG claiming side x side pixels (400 megapixels), a few KB."""
    row = b"\x00" + bytes((side + 7) // 8)
    data = zlib.compress(row * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def encoded(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_inputs")
    face = synthetic.render_face_set(1, seed=0, poses=(0.0,), first_subject=100).images[0]
    good_png, good_jpeg = encoded(face, "PNG"), encoded(face, "JPEG")
    small = np.asarray(Image.fromarray(face).resize((64, 64)))
    contents = {
        "face.png": good_png,
        "neutral.png": good_png,
        "corrupt.png": bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
        "empty.png": b"",
        "truncated.png": good_png[:len(good_png) // 2],
        "truncated.jpg": good_jpeg[:len(good_jpeg) // 3],
        "bomb.png": bomb_png(),
        "notes.png": b"These are my notes, not a picture.\n" * 20,
        "small_neutral.png": encoded(small, "PNG"),
        "wall.png": encoded(np.full((300, 400, 3), 200, np.uint8), "PNG"),
    }
    for name, data in contents.items():
        (base / name).write_bytes(data)
    return base


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A two-step run without neutralizer (real neutral faces) and its bank,
    plus a copy of the folder without weights."""
    base = tmp_path_factory.mktemp("cli_run")
    run_dir = str(base / "run")
    config = previous_synthetic_defaults()
    config.data.synthetic_subjects = 4
    config.data.synthetic_poses = (0.0,)
    config.data.neutral_source = "dataset"
    for stage in (config.neutralizer, config.autoencoder, config.leed):
        stage.batch_size = 4
    config.log_every = 1000
    run.train(config, run_dir, max_steps=2)
    editor = Editor.from_run_dir(run_dir)
    faces = labelled_faces("synthetic", synthetic_subjects=1, real_neutrals=True)
    build_expression_bank(editor.expression_codes, faces).save(os.path.join(run_dir, "expression_bank.npz"))
    empty = base / "no_weights"
    empty.mkdir()
    shutil.copy(os.path.join(run_dir, "config.json"), empty / "config.json")
    return run_dir


def cases(files, run_dir, tmp) -> dict:
    f = lambda name: str(files / name)  # noqa: E731
    neutrals = [f"--input_neutral={f('neutral.png')}", f"--reference_neutral={f('neutral.png')}"]

    def edit(input_name, *extra, neutral="neutral.png", run=run_dir):
        return ["scripts/edit.py", f"--run_dir={run}", f"--input={f(input_name)}",
                f"--input_neutral={f(neutral)}", f"--output={tmp}/out.png", *extra]

    port = closed_port()
    no_weights = os.path.join(os.path.dirname(run_dir), "no_weights")
    all_cases = {
        # No run folder needed.
        "unknown dataset": Case("scripts/train.py", ["--dataset=imagenet", f"--run_dir={tmp}/t1"], "imagenet"),
        "bad stage name": Case("scripts/train.py", ["--dataset=synthetic", "--stages=leed,decoder",
                                                    f"--run_dir={tmp}/t2"], "decoder"),
        "missing data_dir": Case("scripts/train.py", ["--dataset=rafd", f"--run_dir={tmp}/t3"], "data_dir"),
        "data_dir not there": Case("scripts/train.py", ["--dataset=rafd", f"--data_dir={tmp}/nowhere",
                                                        f"--run_dir={tmp}/t4"], f"{tmp}/nowhere"),
        "missing run folder": Case("scripts/edit.py", [f"--run_dir={tmp}/no_run", f"--input={f('face.png')}",
                                                       "--expression=happy"], f"{tmp}/no_run"),
        "missing input file": Case("scripts/edit.py", [f"--run_dir={tmp}", f"--input={tmp}/nope.png",
                                                       "--expression=happy"], f"{tmp}/nope.png"),
        "NaN intensity": Case("scripts/edit.py", [f"--run_dir={tmp}", f"--input={f('face.png')}",
                                                  "--expression=happy", "--intensity=nan"], "--intensity"),
        "negative intensity": Case("scripts/edit.py", [f"--run_dir={tmp}", f"--input={f('face.png')}",
                                                       "--expression=happy", "--intensity=-0.5"], "--intensity"),
        "intensity not a number": Case("scripts/edit.py", [f"--run_dir={tmp}", f"--input={f('face.png')}",
                                                           "--intensity=strong"], "intensity"),
        "closed localhost port": Case("scripts/serve_client.py", [
            f"--input={f('face.png')}", "--expression=happy", f"--server=http://127.0.0.1:{port}",
            "--timeout=5", f"--output={tmp}/served.png"], f"127.0.0.1:{port}"),
        "serve_client missing input": Case("scripts/serve_client.py", [
            f"--input={tmp}/gone.png", "--expression=happy", f"--server=http://127.0.0.1:{port}",
            f"--output={tmp}/served.png"], f"{tmp}/gone.png"),
        "export of a missing run": Case("scripts/export.py", [f"--run_dir={tmp}/no_run",
                                                              f"--export_dir={tmp}/exported"], f"{tmp}/no_run"),
        "unknown benchmark": Case("scripts/benchmark.py", ["warp_speed"], "warp_speed"),
        "unknown classifier dataset": Case("scripts/train_classifier.py", [
            "--dataset=imagenet", f"--out={tmp}/clf"], "imagenet"),
        "paste-back with a sheet": Case("scripts/edit.py", [f"--run_dir={tmp}", f"--input={f('face.png')}",
                                                            "--expressions=all", "--paste_back"], "--paste_back"),
        "demo of a missing run": Case("scripts/demo.py", [f"--run_dir={tmp}/no_run"], f"{tmp}/no_run"),
        "demo without a model": Case("scripts/demo.py", [], "--run_dir"),
        # The trained run folder.
        "corrupt image bytes": Case("", edit("corrupt.png", "--expression=happy"), f("corrupt.png"), True),
        "empty file": Case("", edit("empty.png", "--expression=happy"), f("empty.png"), True),
        "truncated PNG": Case("", edit("truncated.png", "--expression=happy"), f("truncated.png"), True),
        "truncated JPEG": Case("", edit("truncated.jpg", "--expression=happy"), f("truncated.jpg"), True),
        "decompression bomb": Case("", edit("bomb.png", "--expression=happy"), f("bomb.png"), True),
        "text file as image": Case("", edit("notes.png", "--expression=happy"), f("notes.png"), True),
        "unknown expression": Case("", edit("face.png", "--expression=smirking"), "smirking", True),
        "neutral of another size": Case("", edit("face.png", "--expression=happy", neutral="small_neutral.png"),
                                        f("small_neutral.png"), True),
        "run folder without weights": Case("", edit("face.png", "--expression=happy", run=no_weights),
                                           no_weights, True),
        "bad reference image": Case("", edit("face.png", f"--reference={f('corrupt.png')}", neutrals[1]),
                                    f("corrupt.png"), True),
        "no face to align": Case("", edit("wall.png", "--expression=happy", "--paste_back", neutral="wall.png"),
                                 f"{f('wall.png')}: no face found", True),
    }
    for case in all_cases.values():
        if not case.script:
            case.script, case.args = case.args[0], case.args[1:]
    return all_cases


def run_script(case: Case, verbose: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, case.script, *case.args, *(["--verbose"] if verbose else [])],
                          cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, env=env)


@pytest.fixture(scope="module")
def results(files, run_dir, tmp_path_factory):
    """Case name -> (case, completed process): every case, two at a time."""
    tmp = tmp_path_factory.mktemp("outputs")
    found = cases(files, run_dir, tmp)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_script, case) for name, case in found.items()}
        futures["verbose"] = pool.submit(run_script, found["truncated PNG"], True)
        done = {name: future.result() for name, future in futures.items()}
    return found, done


def our_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not NATIVE_LOG.match(line)]


CASE_NAMES = ["unknown dataset", "bad stage name", "missing data_dir", "data_dir not there",
              "missing run folder", "missing input file", "NaN intensity", "negative intensity",
              "intensity not a number", "closed localhost port", "serve_client missing input",
              "export of a missing run", "unknown benchmark", "unknown classifier dataset",
              "corrupt image bytes", "empty file", "truncated PNG", "truncated JPEG", "decompression bomb",
              "text file as image", "unknown expression", "neutral of another size",
              "run folder without weights", "bad reference image", "paste-back with a sheet",
              "demo of a missing run", "demo without a model", "no face to align"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_error_line_and_exit_2(results, name):
    found, done = results
    case, process = found[name], done[name]
    lines = our_lines(process.stderr)
    report = f"{case.script} {case.args}\nstatus {process.returncode}\n{process.stderr[-3000:]}"
    assert process.returncode == 2, report
    assert len(lines) == 1, report
    assert lines[0].startswith("error: ") and len(lines[0]) > len("error: ") + 10, report
    assert "Traceback" not in process.stderr, report
    assert case.names in lines[0], report


def test_every_case_is_tested(tmp_path):
    assert set(cases(tmp_path, str(tmp_path / "run"), tmp_path)) == set(CASE_NAMES)


def test_verbose_shows_the_traceback_and_still_exits_2(results):
    _, done = results
    process = done["verbose"]
    assert process.returncode == 2, process.stderr[-3000:]
    assert "Traceback (most recent call last)" in process.stderr
    assert "truncated.png" in process.stderr
