"""The offline mini-ForenSynths: real photo crops and fakes from small CNN generators, in the ForenSynths layout.

Reals are crops (random position, side 1.5-3x the output size, downscaled with Lanczos so no JPEG block grid
survives) of photographs that ship inside installed packages (scikit-image, scikit-learn, matplotlib), or of a
user's folder. Source photos are split so that train, val and test crops never come from the same photo.

Fakes are made by small autoencoders (``networks.generators``) trained briefly to reproduce real crops; each is
then applied to other crops of the same photos, so fakes show the same content and differ by the generator's
fingerprint. One generator (nearest + conv, ProGAN's upsampling) makes the training and validation fakes; the
others are unseen test generators.

Autoencoders blur, so a sharpness statistic alone would separate such sets, and picking sharp-enough fakes
shifts their colours. Every set is therefore matched on both: reals and fakes are drawn in equal numbers from
each cell of a grid over log Laplacian variance, brightness, red-blue balance and greyness. The builder measures
the trivial baselines (sharpness, mean colour, saturation) on every test set and refuses a set they solve.

Layout: ``train/<group>/{0_real,1_fake}``, ``val/<group>/...`` (a group is a set of source photos, the
benchmark's "class"), ``test/<generator>/{0_real,1_fake}``, and ``manifest.json`` (settings, counts, photos,
generators, baselines). The same settings and seed give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from data.datasets import list_images, load_rgb
from data.names import LABEL_FOLDERS
from data.transforms import luma, to_grey
from networks.generators import UPSAMPLERS, autoencoder
from util.errors import UserError
from util.metrics import average_precision

# name -> (package, path inside the package)
PACKAGED_PHOTOS = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "camera": ("skimage", "data/camera.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "brick": ("skimage", "data/brick.png"),
    "motorcycle": ("skimage", "data/motorcycle_left.png"),
    "retina": ("skimage", "data/retina.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "grass": ("skimage", "data/grass.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "coffee": ("skimage", "data/coffee.png"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "moon": ("skimage", "data/moon.png"),
    "gravel": ("skimage", "data/gravel.png"),
}
# Pure textures (grass, brick, gravel) are sharper than any autoencoder output, so they sit in training groups
# next to an ordinary photo; val has one or two photos per group; test photos are their own. Left out because
# no generator output matches their crops: scikit-image's Hubble field (stars on black), its IHC micrograph and
# its coins.
PACKAGED_SPLIT = {
    "train": (("astronaut", "grass"), ("chelsea", "brick"), ("motorcycle", "gravel")),
    "val": (("flower",), ("rocket",), ("camera", "retina")),
    "test": ("china", "coffee", "grace_hopper", "moon"),
}
MAX_BASELINE_AP = 0.65
# Recorded with the settings, so a build from an earlier builder is rebuilt: 2 trains generators on one core each,
# 3 matches grey images with grey images.
BUILDER_VERSION = 3


@dataclass(frozen=True)
class MiniConfig:
    size: int = 64  # image side in pixels (even)
    train_per_class: int = 400  # images per label and group
    val_per_class: int = 50
    # Images per label and generator. The test sets are the instrument: six trainings scored on 200 pairs per set
    # spread by 3.4-5.7 AP points, the same six detectors on 400 pairs by 3.2-3.8 (on 800: 3.1-3.9), so much of
    # that spread was which 200 images were drawn, not the detectors (docs/mini-benchmark.md).
    test_per_set: int = 400
    generator_steps: int = 300
    generator_width: int = 32
    train_generator: str = "nearest"
    test_generators: tuple[str, ...] = ("bilinear", "transposed", "pixelshuffle")
    # Candidates drawn per kept image, so the statistics match can find pairs. Fakes are rarer where the two
    # overlap (generators blur) but cost a generator pass each, reals only a crop: more reals find more pairs per
    # fake (measured: 4,000 fakes matched 965 of 16,000 reals, 8,000 fakes 694 of 8,000).
    real_oversample: float = 20.0
    fake_oversample: float = 5.0
    # Grey reals pair only with grey fakes, and the bilinear generator rarely makes a grey fake that matches: with
    # 5 candidates per image its test set kept 101 of 200 pairs, with 10 it keeps 383 of 400. Test sets are few
    # images, so their candidates cost little.
    test_fake_oversample: float = 10.0
    # Tiny test builds turn both off: with a dozen images per set, neither matching nor the check means much.
    match: bool = True
    max_baseline_ap: float = MAX_BASELINE_AP
    seed: int = 0
    real_dir: str | None = None


# ------------------------------------------------------------------------------------------------ photos
@dataclass(frozen=True)
class Photo:
    name: str
    pixels: np.ndarray  # HxWx3 uint8
    grey: bool


def packaged_photo_path(package: str, inner: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the package {package!r} is not installed (pip install -r requirements.txt)")
    return Path(spec.submodule_search_locations[0]) / inner


def _load_photo(name: str, path: Path | str, size: int) -> Photo:
    pixels = np.asarray(load_rgb(str(path)))
    if min(pixels.shape[:2]) < size:
        raise UserError(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} is smaller than the crop size {size}")
    return Photo(name, pixels, bool(saturation(pixels[None])[0] == 0))


def photo_split(cfg: MiniConfig) -> dict[str, Any]:
    """Photo names per split: train and val as lists of groups, test as one list; plus name -> file."""
    if cfg.real_dir is None:
        return {"train": [list(g) for g in PACKAGED_SPLIT["train"]], "val": [list(g) for g in PACKAGED_SPLIT["val"]],
                "test": list(PACKAGED_SPLIT["test"]),
                "files": {n: packaged_photo_path(*where) for n, where in PACKAGED_PHOTOS.items()}}
    paths = list_images(cfg.real_dir)
    if len(paths) < 3:
        raise UserError(f"--real_dir {cfg.real_dir}: {len(paths)} images; at least 3 photos are needed (train, "
                        f"val and test never share a photo)")
    order = np.random.default_rng((cfg.seed, 7)).permutation(len(paths))
    names = [f"{i:03d}_{Path(paths[i]).stem}" for i in order]
    files = {n: Path(paths[i]) for n, i in zip(names, order, strict=True)}
    n_test = max(1, round(0.3 * len(names)))
    n_val = max(1, round(0.2 * len(names)))
    test, val, train = names[:n_test], names[n_test : n_test + n_val], names[n_test + n_val :]
    groups = max(1, min(4, len(val), len(train)))
    return {"train": [train[g::groups] for g in range(groups)], "val": [val[g::groups] for g in range(groups)],
            "test": test, "files": files}


def random_crops(rng: np.random.Generator, photos: list[Photo], count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` crops (side 1.5-3x ``size`` where the photo allows) downscaled to ``size``, and the index of
    the photo each came from."""
    source = rng.integers(len(photos), size=count)
    windows = []
    for i in range(count):  # every draw first, in a fixed order: the resizes below may run in any order
        pixels = photos[int(source[i])].pixels
        h, w = pixels.shape[:2]
        hi = min(h, w, 3 * size)
        side = int(rng.integers(min(hi, math.ceil(1.5 * size)), hi + 1))
        top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        windows.append(pixels[top : top + side, left : left + side])

    def downscale(window: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(window).resize((size, size), Image.Resampling.LANCZOS))

    out = np.empty((count, size, size, 3), dtype=np.uint8)
    # Pillow resizes without holding the GIL, so threads use every core.
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        for i, crop in enumerate(pool.map(downscale, windows, chunksize=256)):
            out[i] = crop
    return out, source


# --------------------------------------------------------------------------------------------- generators
def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _fit(model: torch.nn.Module, crops: np.ndarray, steps: int, seed: int, progress: tqdm) -> float:
    """Fit an autoencoder to the crops with an L1 loss (Adam, batch 16), on this thread's one core; its last loss."""
    torch.set_num_threads(1)  # per thread: the pool's other threads and the caller keep their own setting
    data = _to_tensor(crops)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    loss = torch.tensor(math.nan)
    for _ in range(steps):
        batch = data[torch.from_numpy(rng.integers(len(data), size=16))]
        loss = (model(batch) - batch).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.update()
    return loss.item()


def train_generators(jobs: list[tuple[str, np.ndarray, int]], steps: int,
                     width: int) -> list[tuple[torch.nn.Module, float]]:
    """Autoencoders of the given (upsampling, crops, seed) fitted to their crops; each with its last loss.

    Each trains on one core, all at once in threads. A generator trained with several intra-op threads sums its
    gradients in an order that depends on the thread count, and 300 steps amplify that into another benchmark;
    on one core each, every machine with any core count builds the same files.
    """
    models = []
    for kind, _, seed in jobs:  # one after the other: initialization draws from torch's global generator
        torch.manual_seed(seed)
        models.append(autoencoder(kind, width))
    threads = torch.get_num_threads()
    try:
        with tqdm(total=steps * len(jobs), desc="generators", leave=False, dynamic_ncols=True) as progress, \
                ThreadPoolExecutor(len(jobs)) as pool:
            losses = list(pool.map(_fit, models, [crops for _, crops, _ in jobs], [steps] * len(jobs),
                                   [seed for _, _, seed in jobs], [progress] * len(jobs)))
    finally:
        torch.set_num_threads(threads)  # the per-thread calls above also change what torch reports
    return [(model.eval(), loss) for model, loss in zip(models, losses, strict=True)]


@torch.no_grad()
def synthesize(model: torch.nn.Module, crops: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """The generator's output for each crop, as uint8; grey inputs give grey outputs (a grey dataset's
    generator makes grey images, and a colour tint must not tell fakes apart)."""
    out = np.concatenate([
        model(_to_tensor(crops[k : k + 64])).add(1.0).mul(127.5).round().clamp(0, 255).byte()
        .permute(0, 2, 3, 1).numpy() for k in range(0, len(crops), 64)
    ])
    out[grey] = to_grey(out[grey])
    return out


# ------------------------------------------------------------------------------------ trivial statistics
def laplacian(grey: np.ndarray) -> np.ndarray:
    """scipy.ndimage.laplace of each float32 image in an (N, H, W) stack, to the bit: each second difference is
    summed in float64 with mirrored edges ('reflect') and rounded to float32, then the two are added."""
    padded = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="symmetric").astype(np.float64)
    centre = padded[:, 1:-1, 1:-1]
    rows = (padded[:, :-2, 1:-1] - 2 * centre + padded[:, 2:, 1:-1]).astype(np.float32)
    columns = (padded[:, 1:-1, :-2] - 2 * centre + padded[:, 1:-1, 2:]).astype(np.float32)
    return rows + columns


def sharpness(images: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Variance of the Laplacian of the luminance, per image (a classic blur measure)."""
    parts = [laplacian(luma(images[k : k + chunk])) for k in range(0, len(images), chunk)]
    return np.concatenate([part.reshape(len(part), -1).var(axis=1) for part in parts]) if parts else np.empty(0)


def colour_statistics(images: np.ndarray) -> np.ndarray:
    """Mean brightness and mean R, G, B per image: (N, 4)."""
    means = images.reshape(len(images), -1, 3).mean(axis=1)
    return np.column_stack([means.mean(axis=1), means])


def saturation(images: np.ndarray) -> np.ndarray:
    """Mean spread of a pixel's three channels (max - min), per image: 0 exactly for a grey image."""
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    # Element-wise over the three planes: numpy's max over an axis of length 3 took 20 s of a 140 s build.
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    return spread.reshape(len(images), -1).mean(axis=1, dtype=np.float64)


def best_direction_ap(labels: np.ndarray, statistic: np.ndarray) -> float:
    """AP of a one-number detector that may call either high or low values fake (whichever is better)."""
    return max(average_precision(labels, statistic), average_precision(labels, -statistic))


# The trivial baselines' manifest keys and names, in trivial_baselines' order.
BASELINES = {"sharpness_ap": "sharpness", "colour_ap": "mean colour", "saturation_ap": "saturation"}


def trivial_baselines(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    labels = np.r_[np.zeros(len(real)), np.ones(len(fake))].astype(np.int64)
    images = np.concatenate([real, fake])
    colours = colour_statistics(images)
    return {"sharpness_ap": best_direction_ap(labels, sharpness(images)),
            "colour_ap": max(best_direction_ap(labels, colours[:, k]) for k in range(colours.shape[1])),
            "saturation_ap": best_direction_ap(labels, saturation(images))}


def matching_features(images: np.ndarray) -> np.ndarray:
    """What a trivial detector could use: log sharpness, brightness and the red-blue balance, per image."""
    colours = colour_statistics(images)  # brightness, R, G, B
    return np.column_stack([np.log1p(sharpness(images)), colours[:, 0], colours[:, 1] - colours[:, 3]])


def match_statistics(rng: np.random.Generator, real: np.ndarray, fake: np.ndarray,
                     count: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of at most ``count`` reals and as many fakes drawn in equal numbers from every cell of a grid
    over ``matching_features`` and greyness, so those statistics cannot tell them apart.

    The bins are quantiles of the fakes, the scarce side where the two overlap (there are more real candidates),
    so the grid is finest where the pairs are: 20 x 3 x 3 cells, each split into grey and colour images; fewer
    fakes get coarser grids so that cells are not empty.
    """
    candidates = min(len(real), len(fake))
    colour_bins = 3 if candidates >= 300 else 1
    bins = (int(np.clip(candidates // 30, 1, 20)), colour_bins, colour_bins)
    real_f, fake_f = matching_features(real), matching_features(fake)
    real_cell = np.zeros(len(real), dtype=np.int64)
    fake_cell = np.zeros(len(fake), dtype=np.int64)
    for column, n in enumerate(bins):
        edges = np.quantile(fake_f[:, column], np.linspace(0, 1, n + 1)[1:-1])
        real_cell = real_cell * n + np.digitize(real_f[:, column], edges)
        fake_cell = fake_cell * n + np.digitize(fake_f[:, column], edges)
    # Grey photos' fakes are grey too, but a grid over colour means alone paired grey fakes with colour reals: the
    # training sets held twice as many grey fakes as grey reals, which taught "grey means fake", and a test set
    # mostly grey reals (builder 2's bilinear set: saturation AP 0.69).
    real_cell = real_cell * 2 + (saturation(real) == 0)
    fake_cell = fake_cell * 2 + (saturation(fake) == 0)
    pairs = []
    for cell in range(2 * int(np.prod(bins))):
        r, f = np.flatnonzero(real_cell == cell), np.flatnonzero(fake_cell == cell)
        k = min(len(r), len(f))
        pairs += zip(rng.choice(r, k, replace=False), rng.choice(f, k, replace=False), strict=True)
    chosen = sorted(rng.choice(len(pairs), min(count, len(pairs)), replace=False))
    return (np.array([pairs[i][0] for i in chosen], dtype=np.int64),
            np.array([pairs[i][1] for i in chosen], dtype=np.int64))


# ------------------------------------------------------------------------------------------------ builder
def _matched_set(rng: np.random.Generator, photos: list[Photo], generator: torch.nn.Module, count: int,
                 cfg: MiniConfig, fake_oversample: float) -> tuple[np.ndarray, np.ndarray]:
    real_count, fake_count = (math.ceil(count * cfg.real_oversample), math.ceil(count * fake_oversample)) \
        if cfg.match else (count, count)
    real, _ = random_crops(rng, photos, real_count, cfg.size)
    inputs, source = random_crops(rng, photos, fake_count, cfg.size)
    fake = synthesize(generator, inputs, np.array([photos[i].grey for i in source], dtype=bool))
    if not cfg.match:
        return real, fake
    real_index, fake_index = match_statistics(rng, real, fake, count)
    if len(real_index) == 0:
        raise UserError(f"mini-benchmark: no real crop of {', '.join(p.name for p in photos)} matches the "
                        f"generator's output in sharpness and colour; train the generators longer")
    return real[real_index], fake[fake_index]


def _write_set(folder: Path, real: np.ndarray, fake: np.ndarray) -> dict[str, int]:
    for (name, _), images in zip(LABEL_FOLDERS.items(), (real, fake), strict=True):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / name / f"{i:05d}.png")
    return {"n_real": len(real), "n_fake": len(fake)}


def _settings(cfg: MiniConfig) -> dict[str, Any]:
    return {**json.loads(json.dumps(dataclasses.asdict(cfg))), "builder": BUILDER_VERSION}


def build(root: Path, cfg: MiniConfig) -> dict[str, Any]:
    """Build the benchmark at ``root`` (atomically) unless one with the same settings is already there."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("settings") == _settings(cfg):
            print(f"mini-benchmark: using the cached build in {root}")
            return manifest
        print(f"mini-benchmark: {root} was built with other settings; rebuilding")
    elif root.exists() and any(root.iterdir()):
        raise UserError(f"{root} exists and is not a mini-benchmark (no manifest.json); choose another --root")
    if cfg.size % 2:
        raise UserError(f"mini-benchmark image size {cfg.size} must be even")
    unknown = [g for g in (cfg.train_generator, *cfg.test_generators) if g not in UPSAMPLERS]
    if unknown:
        raise UserError(f"unknown generators {unknown}; choose from {', '.join(UPSAMPLERS)}")

    start = time.perf_counter()
    split = photo_split(cfg)
    used = {n for key in ("train", "val") for group in split[key] for n in group} | set(split["test"])
    photos = {n: _load_photo(n, split["files"][n], cfg.size) for n in sorted(used)}
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    generators: dict[str, dict[str, Any]] = {}

    print(f"mini-benchmark: building {root} (seed {cfg.seed})", flush=True)
    train_photos = [n for group in split["train"] for n in group]
    kinds = (cfg.train_generator, *cfg.test_generators)
    jobs = []
    for tag, (kind, names) in enumerate(zip(kinds, [train_photos] + [split["test"]] * len(cfg.test_generators),
                                            strict=True)):
        crops, _ = random_crops(np.random.default_rng((cfg.seed, 1, tag)), [photos[n] for n in names], 1024,
                                cfg.size)
        jobs.append((kind, crops, cfg.seed + tag))
        generators[kind] = {"upsampling": kind, "trained_on": names, "role": "train" if tag == 0 else "test"}
    models = train_generators(jobs, cfg.generator_steps, cfg.generator_width)
    for kind, (_, loss) in zip(kinds, models, strict=True):
        generators[kind]["final_l1"] = round(loss, 5)
    generator = models[0][0]
    for split_index, (name, per_class) in enumerate((("train", cfg.train_per_class), ("val", cfg.val_per_class))):
        for group_index, group in enumerate(split[name]):
            rng = np.random.default_rng((cfg.seed, 2, split_index, group_index))
            real, fake = _matched_set(rng, [photos[n] for n in group], generator, per_class, cfg,
                                      cfg.fake_oversample)
            counts[f"{name}/group{group_index}"] = _write_set(tmp / name / f"group{group_index}", real, fake)

    baselines = {}
    test_photos = [photos[n] for n in split["test"]]
    for tag, (kind, (model, _)) in enumerate(zip(kinds, models, strict=True)):
        real, fake = _matched_set(np.random.default_rng((cfg.seed, 3, tag)), test_photos, model, cfg.test_per_set,
                                  cfg, cfg.test_fake_oversample)
        counts[f"test/{kind}"] = _write_set(tmp / "test" / kind, real, fake)
        baselines[kind] = {k: round(v, 4) for k, v in trivial_baselines(real, fake).items()}
        print(f"  test/{kind}: {len(real)} real, {len(fake)} fake; trivial baselines AP: "
              + ", ".join(f"{name} {baselines[kind][key]:.3f}" for key, name in BASELINES.items()), flush=True)

    solved = {k: v for k, v in baselines.items() if max(v.values()) > cfg.max_baseline_ap}
    if solved:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"mini-benchmark rejected: a trivial statistic separates {', '.join(solved)} "
                        f"({solved}; limit {cfg.max_baseline_ap}); try more images per set or another --seed")
    manifest = {
        "settings": _settings(cfg), "counts": counts, "generators": generators, "baselines": baselines,
        "photos": {"train": split["train"], "val": split["val"], "test": split["test"],
                   "files": {n: str(split["files"][n]) for n in sorted(used)}},
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    print(f"mini-benchmark: built in {time.perf_counter() - start:.0f} s", flush=True)
    return manifest
