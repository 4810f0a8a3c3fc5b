from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data.minibench import build
from tests.helpers import SHARED, TINY_BENCH, random_image, write_png


@pytest.fixture
def shared_reference() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (the reference fixtures live beside the checkout)")
    return SHARED


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
