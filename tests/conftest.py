from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.minibench import MiniConfig, build

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
# The mini-benchmark at test size: 32 px photo crops and generator fakes, unmatched (too few images to match).
TINY_BENCH = MiniConfig(size=32, train_per_class=12, val_per_class=4, test_per_set=8, generator_steps=40,
                        generator_width=8, match=False, max_baseline_ap=1.0)


@pytest.fixture
def shared_reference() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (the reference fixtures live beside the checkout)")
    return SHARED


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture
def labeled_tree(tmp_path: Path):
    """Builds <root>/<split>/<class>/{0_real,1_fake}/*.png with random content; returns a builder."""

    def build(classes=("cat", "dog"), per_label=3, size=(40, 48), split="train", seed=0) -> Path:
        rng = np.random.default_rng(seed)
        root = tmp_path / "data"
        for cls in classes:
            for folder in ("0_real", "1_fake"):
                for i in range(per_label):
                    write_png(root / split / cls / folder / f"{i:03d}.png", random_image(rng, *size))
        return root

    return build


@pytest.fixture(scope="session")
def mini_bench(tmp_path_factory) -> Path:
    """Realistic images for tests: a tiny mini-benchmark, built once per session."""
    root = tmp_path_factory.mktemp("minibench") / "mini"
    build(root, TINY_BENCH)
    return root


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
