"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
from PIL import Image

from data.minibench import MiniConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
# The mini-benchmark at test size: 32 px photo crops and generator fakes, unmatched (too few images to match).
TINY_BENCH = MiniConfig(size=32, train_per_class=12, val_per_class=4, test_per_set=8, generator_steps=40,
                        generator_width=8, match=False, max_baseline_ap=1.0)
# The authors' training command, verbatim.
AUTHORS_COMMAND = (
    "--name blur_jpg_prob0.5 --blur_prob 0.5 --blur_sig 0.0,3.0 --jpg_prob 0.5 --jpg_method cv2,pil "
    "--jpg_qual 30,100 --dataroot ./dataset/ --classes airplane,bird,bicycle,boat,bottle,bus,car,cat,cow,chair,"
    "diningtable,dog,person,pottedplant,motorbike,tvmonitor,train,sheep,sofa,horse"
)


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def tiny_args(root: Path, ckpt: Path, name: str, *extra: str) -> list[str]:
    """train.py flags for a ResNet-18 on 32 px crops, every augmentation on, a few steps."""
    return ["--dataroot", str(root), "--checkpoints_dir", str(ckpt), "--name", name, "--arch", "resnet18",
            "--no_pretrained", "--load_size", "40", "--crop_size", "32", "--batch_size", "8", "--num_workers", "0",
            "--lr", "1e-3", "--blur_prob", "0.5", "--blur_sig", "0,2", "--jpg_prob", "0.5", "--jpg_method", "cv2,pil",
            "--jpg_qual", "60,100", "--val_perturb", "--loss_freq", "1", *extra]


def run_main(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """A script's main() as the shell sees it: (exit status, stdout, stderr)."""
    code = 0
    try:
        main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def raising_on_call(real, n: int, error: BaseException):
    """``real``, except that its ``n``-th call raises ``error`` (a kill or Ctrl-C at a chosen moment)."""
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise error
        return real(*args, **kwargs)

    return wrapper


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def score_on_page(model_path: Path, image: Path, monkeypatch) -> tuple[float, str]:
    """(probability, verdict) that the page serving ``model_path`` answers for ``image``, through its API."""
    import pytest

    gradio_client = pytest.importorskip("gradio_client")
    from commands.app import Scorer, build
    from commands.configs import AppConfig

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    app = build(Scorer(AppConfig(model_path=model_path, num_workers=0)))
    port = free_port()
    app.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        return client.predict(gradio_client.handle_file(image), api_name="/score")
    finally:
        app.close()
