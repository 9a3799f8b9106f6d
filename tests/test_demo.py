"""The web demo (leed_tf/inference/demo.py, scripts/demo.py).

Its edit function on good and bad input (each bad input: one ``gradio.Error``
line naming what is wrong), then the app in a real browser: Debian's
Chromium driven by Selenium through chromium-driver, against the app served
on 127.0.0.1 (the browser resolves no other host). Uploading a face and
moving the intensity slider makes the edited photo appear, at the photo's
size (pasted back); a file that is no image shows the error in the page, and
the server goes on answering. The browser test is skipped, saying why, only
when Chromium or its driver is not installed (.ci/run installs both).

The model is untrained (width 1/16) and has no neutralizer, like the
synthetic default: every photo comes with its neutral face.
"""

import copy
import shutil
import socket
import urllib.request

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio", reason="the demo needs gradio (the demo and test extras)")
skimage_data = pytest.importorskip("skimage.data", reason="the test photo is scikit-image's astronaut")

from leed_tf.data import synthetic  # noqa: E402
from leed_tf.inference import demo  # noqa: E402
from test_align import aligning_editor, synthetic_template  # noqa: E402
from test_cli_errors import bomb_png, encoded  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
BROWSER_WAIT = 90  # seconds, for any one thing to appear in the page


def png(image: np.ndarray) -> bytes:
    return encoded(image, "PNG")


@pytest.fixture(scope="module")
def editor():
    return aligning_editor(synthetic_template(), has_neutralizer=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo_files")
    face_set = synthetic.render_face_set(1, seed=0, poses=(0.0,), first_subject=60)
    face, neutral = face_set.images[3], face_set.images[0]
    small = np.asarray(Image.fromarray(neutral).resize((64, 64)))
    contents = {
        "astronaut.png": png(skimage_data.astronaut()),
        "face.png": png(face), "neutral.png": png(neutral), "small_neutral.png": png(small),
        "wall.png": png(np.full((300, 400, 3), 200, np.uint8)),
        "notes.png": b"These are my notes, not a picture.\n" * 20,
        "empty.png": b"", "truncated.png": png(face)[:2000], "bomb.png": bomb_png(),
    }
    for name, data in contents.items():
        (base / name).write_bytes(data)
    return base


@pytest.fixture(scope="module")
def app(editor, tmp_path_factory):
    return demo.build_app(editor, str(tmp_path_factory.mktemp("gallery")))


def call(app, editor, files, photo="astronaut.png", photo_neutral="astronaut.png", reference="face.png",
         reference_neutral="neutral.png", expression=demo.REFERENCE, intensity=1.0, paste_back=True):
    path = lambda name: None if name is None else str(files / name)  # noqa: E731
    return demo.edit_function(editor)(path(photo), path(photo_neutral), path(reference),
                                      path(reference_neutral), expression, intensity, paste_back)


def test_edits_a_photo_whole_and_a_bank_expression(app, editor, files):
    original, edited = call(app, editor, files)
    assert original.shape == edited.shape == (512, 512, 3)
    assert not np.array_equal(original, edited)
    assert "happy" in editor.expression_names  # Built from synthetic renders for the demo.
    _, crop = call(app, editor, files, reference=None, reference_neutral=None, expression="happy",
                   paste_back=False)
    assert crop.shape == (128, 128, 3)


def test_the_gallery_is_synthetic_faces_with_their_neutrals(app, editor, files):
    rows = demo.example_faces(editor, str(files))
    assert len(rows) == 3 and all(len(row) == 6 for row in rows)
    photo, photo_neutral, reference, reference_neutral, expression, intensity = rows[0]
    with Image.open(photo) as image:
        assert image.size == (128, 128)
    original, edited = demo.edit_function(editor)(photo, photo_neutral, reference, reference_neutral,
                                                  expression, intensity, True)
    assert edited.shape == (128, 128, 3)  # A face crop is edited as it is.


BAD_INPUTS = {
    # name: (call arguments, what the one line must say)
    "decompression bomb": (dict(photo="bomb.png"), "bomb.png: image exceeds the limit"),
    "no face": (dict(photo="wall.png", photo_neutral="wall.png"), "wall.png: no face found"),
    "neutral of another size": (dict(photo="face.png", photo_neutral="small_neutral.png", paste_back=False),
                                "small_neutral.png: neutral face of 64x64 pixels"),
    "not an image": (dict(photo="notes.png"), "notes.png: not a readable image"),
    "empty file": (dict(reference="empty.png"), "empty.png: empty file"),
    "truncated PNG": (dict(photo="truncated.png", paste_back=False), "truncated.png: cannot decode"),
    "no input photo": (dict(photo=None), "Upload an input photo first"),
    "no neutral face": (dict(photo_neutral=None), "upload the input's neutral photo"),
    "no reference": (dict(reference=None), "Upload a reference photo"),
    "NaN intensity": (dict(intensity=float("nan")), "intensity: must be a number from 0 to 2"),
    "unknown expression": (dict(expression="smirking"), "smirking"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_message(app, editor, files, name):
    arguments, expected = BAD_INPUTS[name]
    with pytest.raises(gr.Error) as raised:
        call(app, editor, files, **arguments)
    message = raised.value.message
    assert expected in message and "\n" not in message, message


def test_the_python_api_refuses_a_neutral_of_another_size_without_alignment(app, editor, files, tmp_path):
    """Editor and edit_paths check it (scripts/edit.py did, alone, before). ``app``
    gives the editor its expression bank."""
    from leed_tf.inference.files import edit_paths

    unaligned = copy.copy(editor)
    unaligned.aligner = None
    face, small = str(files / "face.png"), str(files / "small_neutral.png")
    with pytest.raises(ValueError, match="small_neutral.png: neutral face of 64x64 pixels for .*face.png"):
        unaligned.edit(face, expression="happy", input_neutral=small)
    with pytest.raises(ValueError, match="small_neutral.png: neutral face of 64x64"):
        edit_paths(unaligned, face, str(tmp_path / "out.png"), expression="happy", input_neutrals=small)
    assert not (tmp_path / "out.png").exists()
    # Aligned, each photo is framed by its own landmarks: any size will do.
    assert editor.edit(str(files / "astronaut.png"), expression="happy",
                       input_neutral=str(files / "face.png")).shape == (128, 128, 3)


# ---------------------------------------------------------------- the browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(app):
    port = free_port()
    demo.launch(app, port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("Chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the test extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def open_page(browser, url, uploads: dict):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    wait = WebDriverWait(browser, BROWSER_WAIT)
    for element, path in uploads.items():
        selector = f"#{element} input[type=file]"
        wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, selector))
        browser.find_element(By.CSS_SELECTOR, selector).send_keys(str(path))
        wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, f"#{element} img"))
    return wait


def test_in_a_browser_an_upload_and_the_slider_show_the_edited_photo(served, browser, files):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    wait = open_page(browser, served, {"input_photo": files / "astronaut.png",
                                       "input_neutral": files / "astronaut.png",
                                       "reference_photo": files / "face.png",
                                       "reference_neutral": files / "neutral.png"})
    slider = browser.find_element(By.CSS_SELECTOR, "#intensity input[type=range]")
    ActionChains(browser).click_and_hold(slider).move_by_offset(30, 0).release().perform()
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#edited img"))
    image = browser.find_element(By.CSS_SELECTOR, "#edited img")
    size = wait.until(lambda page: page.execute_script(
        "const i = arguments[0]; return i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null;",
        image))
    assert size == [512, 512]  # The whole photo, its face pasted back.
    assert float(slider.get_attribute("value")) != 1.0


def test_in_a_browser_a_non_image_shows_an_error_and_the_server_goes_on(served, browser, files):
    from selenium.webdriver.common.by import By

    wait = open_page(browser, served, {"input_photo": files / "notes.png", "input_neutral": files / "neutral.png",
                                       "reference_photo": files / "face.png",
                                       "reference_neutral": files / "neutral.png"})
    browser.find_element(By.CSS_SELECTOR, "#edit").click()
    wait.until(lambda page: "not a readable image" in page.find_element(By.CSS_SELECTOR, ".toast-wrap").text)
    assert "notes.png" in browser.find_element(By.CSS_SELECTOR, ".toast-wrap").text
    with urllib.request.urlopen(served, timeout=30) as response:
        assert response.status == 200
    # And it still edits.
    wait = open_page(browser, served, {"input_photo": files / "face.png", "input_neutral": files / "neutral.png",
                                       "reference_photo": files / "face.png",
                                       "reference_neutral": files / "neutral.png"})
    browser.find_element(By.CSS_SELECTOR, "#edit").click()
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#edited img"))
