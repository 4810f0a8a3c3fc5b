"""app.py: the page in a real browser (headless Chromium), the API through Gradio's client, bad inputs and eight
concurrent clients, against one server started as a user starts it."""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from commands.configs import DemoConfig
from commands.demo import run_demo
from data.synthetic import smooth_image, upsampled_image
from networks import build_model
from options import parse_app_options
from tests.helpers import ROOT, free_port, run_main, write_png
from util.checkpoint import save_checkpoint

gradio_client = pytest.importorskip("gradio_client")


@dataclass
class Server:
    url: str
    checkpoint: Path
    images: dict[str, Path]
    log: Path


def _images(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    images = {"real": write_png(folder / "real.png", smooth_image(rng, 64)),
              "fake": write_png(folder / "fake.png", upsampled_image(rng, 64))}
    for i in range(8):
        images[f"many{i}"] = write_png(folder / f"many{i}.png", smooth_image(rng, 48 + 2 * i))
    (folder / "notes.png").write_text("a text file named like an image\n")
    images["text"] = folder / "notes.png"
    whole = (folder / "real.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    images["truncated"] = folder / "truncated.png"
    Image.new("1", (20000, 20000)).save(folder / "bomb.png")  # 400 megapixels in a few kilobytes
    images["bomb"] = folder / "bomb.png"
    deep = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep16.png")
    images["deep16"] = folder / "deep16.png"
    frames = [Image.fromarray(smooth_image(rng, 40)) for _ in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    images["animated"] = folder / "animated.gif"
    Image.new("RGB", (7100, 7100)).save(folder / "huge.png")  # 50.4 megapixels, compressed to ~150 kB
    images["huge"] = folder / "huge.png"
    (folder / "big.png").write_bytes(np.random.default_rng(1).bytes(1_500_000))  # over the 1 MB upload cap
    images["big"] = folder / "big.png"
    return images


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("app")
    torch.manual_seed(0)
    checkpoint = folder / "tiny.pth"
    save_checkpoint(checkpoint, {"model": build_model("resnet18", pretrained=False).state_dict(),
                                 "options": {"arch": "resnet18", "recipe": "wang2020"},
                                 "test_protocol": {"crop_size": None, "resize": None, "square": False}})
    images = _images(folder / "images")
    port = free_port()
    log = folder / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(folder / "uploads")}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py", "-m", str(checkpoint), "--port", str(port),
                                    "--max_upload_mb", "1", "--num_workers", "0"], cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"app.py did not start:\n{log.read_text()}")
            time.sleep(0.5)
    yield Server(url, checkpoint, images, log)
    process.terminate()
    process.wait(timeout=30)


def _demo(server: Server, name: str) -> float:
    """demo.py's probability for one of the test images."""
    return float(run_demo(DemoConfig(file=str(server.images[name]), model_path=server.checkpoint,
                                     num_workers=0)).probs[0])


def _api(server: Server, name: str) -> tuple[float, str]:
    client = gradio_client.Client(server.url, verbose=False)
    return client.predict(gradio_client.handle_file(str(server.images[name])), api_name="/score")


# ------------------------------------------------------------------------------------------------------ API
def test_api_score_equals_demo(server: Server):
    for name in ("real", "fake"):
        prob, verdict = _api(server, name)
        assert isinstance(prob, float) and 0 <= prob <= 1
        assert prob == pytest.approx(_demo(server, name), abs=1e-6)
        assert verdict.endswith("at threshold 50%")


@pytest.mark.parametrize(("name", "message"), [
    ("text", "not scored: not an image format we read"),
    ("truncated", "not scored: "),
    ("bomb", "not scored: decompression bomb"),
    ("huge", "7100x7100 is 50.4 megapixels, more than this server scores whole (16); score it with demo.py"),
])
def test_api_bad_input_is_a_clear_message_and_the_next_request_works(server: Server, name: str, message: str):
    with pytest.raises(Exception, match=re.escape(message)) as err:  # the client raises AppError with the page's text
        _api(server, name)
    assert "/tmp" not in str(err.value) and str(server.images[name].parent) not in str(err.value)
    assert _api(server, "real")[0] == pytest.approx(_demo(server, "real"), abs=1e-6)
    assert "Traceback" not in server.log.read_text()  # a refused upload is one line in the log


@pytest.mark.parametrize("name", ["deep16", "animated"])
def test_api_scores_what_demo_scores(server: Server, name: str):
    assert _api(server, name)[0] == pytest.approx(_demo(server, name), abs=1e-6)


def test_uploads_over_the_cap_are_refused(server: Server):
    with pytest.raises(Exception, match="(?i)exceed|too large|413"):
        _api(server, "big")
    assert _api(server, "fake")[0] == pytest.approx(_demo(server, "fake"), abs=1e-6)


def test_eight_concurrent_clients_each_get_their_answer(server: Server):
    names = [f"many{i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: _api(server, n)[0], names))
    assert answers == pytest.approx([_demo(server, n) for n in names], abs=1e-6)
    assert len(set(answers)) == 8  # eight different images, eight different answers


# ---------------------------------------------------------------------------------------------- in process
def test_only_uploaded_files_are_read(tmp_path: Path, monkeypatch):
    import gradio.utils

    from commands.app import Refused, _uploaded

    monkeypatch.setattr(gradio.utils, "get_upload_folder", lambda: str(tmp_path / "uploads"))
    inside = write_png(tmp_path / "uploads" / "abc" / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert _uploaded(str(inside)) == str(inside)
    for outside in (tmp_path / "secret.png", tmp_path / "uploads" / ".." / "secret.png"):
        with pytest.raises(Refused, match="only uploaded files are scored"):
            _uploaded(str(outside))


def test_without_a_detector_the_message_names_both_ways(tmp_path: Path, monkeypatch):
    from commands.app import default_model
    from util.errors import UserError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"python quickstart\.py.*python -m weights\.download"):
        default_model()
    for run in ("quickstart_small_seed3", "quickstart_default_seed0"):
        (tmp_path / "checkpoints" / run).mkdir(parents=True)
        (tmp_path / "checkpoints" / run / "best.pth").touch()
    assert default_model() == Path("checkpoints/quickstart_default_seed0/best.pth")


def test_a_taken_port_is_one_clear_error(server: Server, capsys):
    from app import main

    port = server.url.rsplit(":", 1)[1].strip("/")
    code, _, err = run_main(main, ["-m", str(server.checkpoint), "--port", port, "--num_workers", "0"], capsys)
    assert code == 2 and err.startswith(f"error: cannot serve on 127.0.0.1:{port} (Cannot find empty port")
    assert "choose another --port" in err and "Traceback" not in err


def test_calibrated_threshold_and_the_loopback_default(tmp_path: Path, monkeypatch):
    from commands.app import calibrated_threshold

    (tmp_path / "calibration.json").write_text('{"threshold": 0.3125}')
    assert calibrated_threshold(tmp_path / "calibration.json") == (0.3125, "calibrated in calibration.json")
    assert calibrated_threshold(None) == (0.5, "the default")
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    assert parse_app_options([]).host == "127.0.0.1"


def test_a_space_sets_host_and_port_through_gradios_variables(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    cfg = parse_app_options([])
    assert (cfg.host, cfg.port) == ("0.0.0.0", 7999)
    assert parse_app_options(["--host", "127.0.0.1"]).host == "127.0.0.1"


# ------------------------------------------------------------------------------------------------- browser
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver; .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1700"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)


def _csv_from_page(browser) -> dict[str, dict[str, str]]:
    """The table as the page's CSV link holds it (6 decimals), by file name."""
    from selenium.webdriver.common.by import By

    link = browser.find_element(By.CSS_SELECTOR, "#csv a")
    assert link.get_attribute("download") == "scores.csv"
    header, _, data = link.get_attribute("href").partition(",")
    assert header == "data:text/csv;base64"  # the CSV itself, no server path to fetch it from
    return {row["file"]: row for row in csv.DictReader(io.StringIO(base64.b64decode(data).decode()))}


def test_page_in_a_real_browser(server: Server, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 90)
        wait.until(lambda b: "recipe wang2020" in b.find_element(By.ID, "model-info").text)
        info = browser.find_element(By.ID, "model-info").text
        assert "resnet18" in info and "no resize, whole image (recorded in the checkpoint)" in info
        upload = browser.find_element(By.CSS_SELECTOR, "#files input[type=file]")
        upload.send_keys("\n".join(str(server.images[n]) for n in ("real", "fake", "truncated")))
        wait.until(lambda b: "truncated" in b.find_element(By.ID, "files").text)  # the uploads are listed
        browser.find_element(By.ID, "score").click()
        wait.until(lambda b: "scored" in b.find_element(By.ID, "status").text)
        rows = _csv_from_page(browser)
        table = browser.find_element(By.ID, "scores").text
        for name in ("real", "fake"):
            prob = _demo(server, name)
            assert float(rows[f"{name}.png"]["probability_synthetic"]) == pytest.approx(prob, abs=1e-6)
            assert f"{100 * prob:.2f}" in table  # the table shows percentages with 2 decimals
        assert rows["truncated.png"]["probability_synthetic"] == ""
        assert "not scored: " in rows["truncated.png"]["note"] and "not scored: " in table
        assert "2 of 3 scored" in browser.find_element(By.ID, "status").text
        evidence = browser.find_elements(By.CSS_SELECTOR, "#evidence figure.evidence")
        assert len(evidence) == 2 and all(len(f.find_elements(By.TAG_NAME, "img")) == 2 for f in evidence)
        assert "/tmp/" not in browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(tmp_path / "app.png"))
        assert Image.open(tmp_path / "app.png").size[0] >= 1000
    finally:
        browser.quit()
