"""Average frequency spectra of high-pass filtered images, real and fake side by side (the paper's Fig. 7).

As the paper (after Zhang et al.): each image's luma minus its 3x3 median-filtered version, Fourier amplitude with
the zero frequency in the center, averaged over up to ``max_images`` images per set and label (2000 in the paper;
a seeded random choice). Images are center-cropped to one common side so that every spectrum has the same grid;
images smaller than that side, and unreadable files, are left out and counted.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter
from tqdm import tqdm

from commands.configs import SpectraConfig
from data import BadImage, Sample, find_test_sets, image_size, load_rgb, scan_folder
from data.transforms import LUMA, center_crop
from util.errors import UserError
from util.plots import pyplot, save_figure
from util.report import claim_folder

MAX_SIDE = 256  # the paper's test images are 256 px; bigger ones are center-cropped to this


def highpass(gray: np.ndarray) -> np.ndarray:
    """The image minus its 3x3 median blur: the smooth content goes, the generator's pixel-level traces stay."""
    return gray - median_filter(gray, size=3, mode="reflect")


def amplitude_spectrum(image: np.ndarray) -> np.ndarray:
    """|FFT| of a 2-D array, zero frequency moved to the center."""
    return np.abs(np.fft.fftshift(np.fft.fft2(image)))


def image_residual_spectrum(path: str, side: int) -> np.ndarray:
    gray = np.asarray(load_rgb(path), dtype=np.float64) @ LUMA
    return amplitude_spectrum(highpass(center_crop(gray, side)))


@dataclass(frozen=True)
class MeanSpectrum:
    mean: np.ndarray  # (side, side), float64; zeros when no image was used
    used: int
    too_small: int
    unreadable: int


def mean_spectrum(paths: Sequence[str], side: int, desc: str | None = None) -> MeanSpectrum:
    total = np.zeros((side, side))
    used = too_small = unreadable = 0
    for path in tqdm(paths, desc=desc, disable=desc is None, leave=False):
        try:
            if min(image_size(path)) < side:
                too_small += 1
                continue
            total += image_residual_spectrum(path, side)
            used += 1
        except BadImage as err:
            tqdm.write(f"skipped {err}")
            unreadable += 1
    return MeanSpectrum(total / max(used, 1), used, too_small, unreadable)


def choose(samples: Sequence[Sample], label: int, max_images: int, seed: int) -> list[str]:
    """Up to ``max_images`` paths of one label, a seeded random choice kept in file order."""
    paths = [s.path for s in samples if s.label == label]
    if len(paths) <= max_images:
        return paths
    keep = np.random.default_rng(seed).choice(len(paths), size=max_images, replace=False)
    return [paths[i] for i in sorted(keep)]


def common_side(chosen: Sequence[str], side: int | None) -> int:
    """``side``, or the smallest side among the chosen images (at most MAX_SIDE)."""
    if side is not None:
        return side
    if not chosen:
        raise UserError("no images to analyse")
    sides = []
    for path in chosen:
        with contextlib.suppress(BadImage):  # counted when the spectra are computed
            sides.append(min(image_size(path)))
    if not sides:
        raise UserError("none of the chosen images can be read")
    return min(MAX_SIDE, *sides)


def plot_spectra(path: Path, spectra: dict[str, tuple[MeanSpectrum, MeanSpectrum]], title: str) -> None:
    """One row per set, real and fake side by side, log10 amplitude on one colour scale for every panel."""
    plt = pyplot()
    logs = {name: [np.log10(s.mean + 1e-6) for s in pair] for name, pair in spectra.items()}
    shown = np.concatenate([log.ravel() for pair in logs.values() for log in pair])
    vmin, vmax = np.percentile(shown, [1, 99.9])
    fig, axes = plt.subplots(len(logs), 2, figsize=(5.5, 2.6 * len(logs)), squeeze=False, constrained_layout=True)
    for row, (name, pair) in enumerate(logs.items()):
        for col, (log, label, spectrum) in enumerate(zip(pair, ("real", "fake"), spectra[name], strict=True)):
            axis = axes[row, col]
            image = axis.imshow(log, cmap="viridis", vmin=vmin, vmax=vmax)
            axis.set_title(f"{name} {label} (n={spectrum.used})", fontsize="small")
            axis.set_xticks([])
            axis.set_yticks([])
    fig.colorbar(image, ax=axes, shrink=0.6, label="log10 mean amplitude")
    fig.suptitle(title)
    save_figure(fig, path)


def run_spectra(cfg: SpectraConfig) -> dict[str, dict[str, int]]:
    """analyze.py spectra: writes <out>/spectra.png, <set>_{real,fake}.npy and spectra.json (counts, side)."""
    sets = [(name, scan_folder(folder)) for name, folder in find_test_sets(cfg.dataroot, cfg.sets)]
    chosen = {name: (choose(samples, 0, cfg.max_images, cfg.seed), choose(samples, 1, cfg.max_images, cfg.seed))
              for name, samples in sets}
    side = common_side([p for pair in chosen.values() for paths in pair for p in paths], cfg.crop_size)
    claim_folder(cfg.out, ("spectra.png", "spectra.pdf", "spectra.json", "*_real.npy", "*_fake.npy"), cfg.overwrite,
                 elsewhere="--out")
    spectra, record = {}, {"side": side, "max_images": cfg.max_images, "seed": cfg.seed, "sets": {}}
    for name, (reals, fakes) in chosen.items():
        pair = (mean_spectrum(reals, side, f"{name} real"), mean_spectrum(fakes, side, f"{name} fake"))
        for label, spectrum in zip(("real", "fake"), pair, strict=True):
            np.save(cfg.out / f"{name}_{label}.npy", spectrum.mean.astype(np.float32))
        spectra[name] = pair
        record["sets"][name] = {f"{label}_{k}": getattr(s, k) for label, s in zip(("real", "fake"), pair, strict=True)
                                for k in ("used", "too_small", "unreadable")}
        small, unreadable = pair[0].too_small + pair[1].too_small, pair[0].unreadable + pair[1].unreadable
        print(f"{name}: {pair[0].used} real, {pair[1].used} fake images"
              + (f"; {small} smaller than {side} px left out" if small else "")
              + (f"; {unreadable} unreadable left out" if unreadable else ""))
    plot_spectra(cfg.out / "spectra.png", spectra, f"Mean spectra of high-pass residuals ({side} px)")
    (cfg.out / "spectra.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {cfg.out / 'spectra.png'} and the arrays")
    return record["sets"]
