"""A tiny generated real/fake set with a known fingerprint, for tests and smoke runs.

Reals are smooth random colour fields with fine sensor-like noise. Fakes are drawn the same way at half the
resolution and enlarged by nearest-neighbour 2x upsampling, so they carry the periodic 2x2 pattern of a
CNN generator's upsampling layer and nothing else distinguishes them.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from data.names import LABEL_FOLDERS


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    base = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
    noise = rng.normal(0.0, 30.0, (size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def upsampled_image(rng: np.random.Generator, size: int) -> np.ndarray:
    return smooth_image(rng, size // 2).repeat(2, axis=0).repeat(2, axis=1)


def _write_images(path_and_key: tuple[str, tuple[int, ...], bool, int]) -> None:
    path, key, fake, size = path_and_key
    rng = np.random.default_rng(key)
    Image.fromarray(upsampled_image(rng, size) if fake else smooth_image(rng, size)).save(path)


def make_upsampling_set(root: Path, *, splits: dict[str, int], classes: tuple[str, ...] = ("a", "b"),
                        size: int = 64, seed: int = 0, workers: int = 1) -> Path:
    """Write ``<root>/<split>/<class>/{0_real,1_fake}/*.png`` with ``splits[split]`` images per label and class.
    Each image has its own seed, so ``workers`` processes write the same files as one."""
    jobs = []
    for split_index, (split, count) in enumerate(splits.items()):
        for class_index, cls in enumerate(classes):
            for folder, label in LABEL_FOLDERS.items():
                out = root / split / cls / folder
                out.mkdir(parents=True, exist_ok=True)
                jobs += [(str(out / f"{i:04d}.png"), (seed, split_index, class_index, label, i), bool(label), size)
                         for i in range(count)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_images, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    else:
        for job in jobs:
            _write_images(job)
    return root
