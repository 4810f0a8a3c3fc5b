"""Folder datasets in the ForenSynths layout, and a seeded sampler that makes every draw reproducible.

Layouts (label 0 = ``0_real``, 1 = ``1_fake``; images found recursively below each label folder):

- training / validation: ``<root>/<split>/<class>/{0_real,1_fake}``
- test sets: ``<root>/<set>/{0_real,1_fake}`` or ``<root>/<set>/<subclass>/{0_real,1_fake}`` (pooled)

Randomness: the sampler yields ``(epoch, index)`` keys, and the dataset seeds a fresh generator from
``(seed, epoch, index)`` for each image. The draws therefore do not depend on worker count, worker
persistence or process rank, and resuming at any step replays the same images with the same augmentation.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import os
import stat as stat_module
import sys
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError, features
from torch.utils.data import Dataset, Sampler

from data.names import LABEL_FOLDERS, PAPER_TEST_SETS
from data.transforms import to_rgb
from util.errors import UserError

_BUILTIN_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
# Formats that need an optional plugin, and how to get it.
PLUGIN_FORMATS = {".heic": "pip install pillow-heif", ".heif": "pip install pillow-heif",
                  ".avif": "pip install -U pillow (11.3 or newer reads AVIF)"}


# The only decoders PIL may use, whatever a file's extension says: others (EPS runs Ghostscript, for one) never run.
_BUILTIN_FORMATS = ("PNG", "JPEG", "PPM", "BMP", "TIFF", "WEBP", "GIF")


@functools.cache
def _readable() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(extensions, PIL formats) read here: the common ones, plus HEIC/HEIF when pillow-heif is installed (it
    registers itself with PIL) and AVIF when this Pillow reads it."""
    extensions, formats = _BUILTIN_EXTENSIONS, _BUILTIN_FORMATS
    with contextlib.suppress(ImportError):
        from pillow_heif import register_heif_opener

        register_heif_opener()
        extensions, formats = extensions + (".heic", ".heif"), formats + ("HEIF",)
    if features.check("avif"):
        extensions, formats = extensions + (".avif",), formats + ("AVIF",)
    return extensions, formats


def image_extensions() -> tuple[str, ...]:
    """The file extensions read as images here."""
    return _readable()[0]


# Decoded pixels at most, checked in the header before decoding (--max_megapixels): 64 Mpx is 192 MB as RGB.
MAX_PIXELS = 64_000_000


def left_out_note(paths: Sequence[str]) -> str | None:
    """One line on files that are not read as images, by extension, with how to read the plugin formats."""
    if not paths:
        return None
    counts = Counter(os.path.splitext(p)[1].lower() or "no extension" for p in paths)
    kinds = ", ".join(f"{ext} ({PLUGIN_FORMATS[ext]} to read them)" if ext in PLUGIN_FORMATS else ext
                      for ext, _ in counts.most_common())
    return f"{len(paths)} {'file' if len(paths) == 1 else 'files'} left out (not images): {kinds}"


class DatasetError(UserError):
    """A dataset folder that does not have the expected layout."""


@dataclass(frozen=True)
class Sample:
    path: str
    label: int
    subclass: str  # "" for a set without sub-class folders
    refused: str | None = None
    """Why the walk listed this entry instead of reading it (see ``walk_files``); it is reported as skipped."""


class Walk(NamedTuple):
    images: list[str]
    others: list[str]
    """Files that are not images by their extension."""
    refused: list[tuple[str, str]]
    """(path, reason): hidden files, links that leave the folder or reach a file or folder a second time,
    folders that cannot be listed."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def walk_files(folder: Path | str) -> Walk:
    """Every entry below ``folder``, sorted, each real file and folder reached once: links are followed only
    within ``folder`` (resolved paths), so a link can neither count a file twice nor bring in files of another
    label, and a link loop ends. Whether a file is readable is decided when it is loaded."""
    root = os.path.realpath(folder)
    images, others, refused = [], [], []
    seen_folders, seen_files = {root}, set()
    extensions = image_extensions()

    def unreadable(err: OSError) -> None:
        refused.append((str(err.filename), f"folder not listed ({err.strerror or type(err).__name__}): its files are "
                                           f"not counted"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        # Real folders before links to them, so that the link is the one left out.
        for name in sorted(dirnames, key=lambda name: os.path.islink(os.path.join(dirpath, name))):
            path = os.path.join(dirpath, name)
            real = os.path.realpath(path)
            reason = _hidden(name, "folder") or _link_problem(path, real, root, seen_folders, "folder")
            if reason:
                dirnames.remove(name)
                refused.append((path, reason))
            seen_folders.add(real)
        for name in sorted(filenames, key=lambda name: os.path.islink(os.path.join(dirpath, name))):
            path = os.path.join(dirpath, name)
            real = os.path.realpath(path)
            reason = _hidden(name, "file") or _link_problem(path, real, root, seen_files, "file")
            if reason:
                refused.append((path, reason))
            else:
                (images if name.lower().endswith(extensions) else others).append(path)
            seen_files.add(real)
    return Walk(sorted(images), sorted(others), sorted(refused))


def _hidden(name: str, kind: str) -> str | None:
    return f"hidden {kind} (left out)" if name.startswith(".") else None


def _link_problem(path: str, real: str, root: str, seen: set[str], kind: str) -> str | None:
    if real in seen:
        return f"{kind} reached a second time, through a link (left out)"
    if os.path.islink(path) and not _inside(real, root):
        return f"link to a {kind} outside the folder walked (left out)"
    return None


def list_images(folder: Path | str) -> list[str]:
    """Every image file below ``folder`` (see ``walk_files``)."""
    return walk_files(folder).images


def _is_labeled(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in LABEL_FOLDERS)


def walked_samples(folder: Path | str, label: int, subclass: str = "") -> list[Sample]:
    """The images below ``folder`` as samples, and what its walk refused as samples to report (see walk_files)."""
    walk = walk_files(folder)
    return [*(Sample(path, label, subclass) for path in walk.images),
            *(Sample(path, label, subclass, reason) for path, reason in walk.refused)]


def _labeled_samples(folder: Path, subclass: str) -> list[Sample]:
    return [sample for name, label in LABEL_FOLDERS.items() if (folder / name).is_dir()
            for sample in walked_samples(folder / name, label, subclass)]


def scan_folder(root: Path | str, classes: Sequence[str] | None = None) -> list[Sample]:
    """Samples of one split or test set, detecting whether it has sub-class folders.

    ``classes`` keeps only those sub-classes (an error names any that are missing).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if _is_labeled(root):
        if classes:
            raise DatasetError(f"{root} holds 0_real/1_fake directly, so it has no classes to select")
        nested = sorted(p.name for p in root.iterdir() if p.is_dir() and _is_labeled(p))
        if nested:
            raise DatasetError(f"{root} mixes levels: it holds 0_real/1_fake and also sub-class folders that do "
                               f"({', '.join(nested)}); keep one level")
        samples = _labeled_samples(root, "")
    else:
        subfolders = sorted(p for p in root.iterdir() if p.is_dir() and _is_labeled(p))
        if classes:
            available = {p.name: p for p in subfolders}
            missing = [c for c in classes if c not in available]
            if missing:
                raise DatasetError(f"{root}: class folders not found: {', '.join(missing)}")
            subfolders = [available[c] for c in classes]
        if not subfolders:
            raise DatasetError(f"{root}: expected 0_real/1_fake folders, directly or one level down")
        samples = [s for sub in subfolders for s in _labeled_samples(sub, sub.name)]
    if not any(s.refused is None for s in samples):
        raise DatasetError(f"{root}: no images found (extensions: {' '.join(image_extensions())})")
    return samples


def is_set_folder(folder: Path) -> bool:
    """A test set: ``0_real``/``1_fake`` directly or in sub-class folders."""
    return _is_labeled(folder) or any(p.is_dir() and _is_labeled(p) for p in folder.iterdir())


def find_test_sets(root: Path | str, names: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """(name, folder) of the test sets under ``root``: those named, in that order, or every set found, in
    Table 2's order and then alphabetically. A ``root`` that is itself one set is returned alone."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if _is_labeled(root):
        return [(root.name, root)]
    found = {p.name: p for p in root.iterdir() if p.is_dir() and is_set_folder(p)}
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise DatasetError(f"{root}: test sets not found: {', '.join(missing)} "
                               f"(found: {', '.join(sorted(found)) or 'none'})")
        return [(n, found[n]) for n in names]
    if not found:
        raise DatasetError(f"{root}: no test sets (folders with 0_real/1_fake, directly or one level down)")
    order = [n for n in PAPER_TEST_SETS if n in found] + sorted(n for n in found if n not in PAPER_TEST_SETS)
    return [(n, found[n]) for n in order]


class BadImage(UserError):
    """A file that cannot be used as an image; ``reason`` says why in a few words."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: cannot read the image ({reason})")
        self.path, self.reason = path, reason


def _reason(path: str, err: BaseException) -> str:
    if isinstance(err, Image.DecompressionBombError):
        return f"decompression bomb: {err}"
    if isinstance(err, FileNotFoundError) and os.path.islink(path):
        return "dangling symlink"
    if isinstance(err, OSError) and err.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, UnidentifiedImageError):
        return "empty file" if os.path.getsize(path) == 0 else \
            f"not an image format we read ({', '.join(_readable()[1])})"
    if isinstance(err, MemoryError):
        return "out of memory while decoding"
    # A message may quote the file's path (or a server's): the reason names the file already.
    text = str(err).strip().splitlines()[0].replace(path, "<file>") if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def too_large(width: int, height: int, max_pixels: int) -> str | None:
    """Why an image of this size is not decoded, or None."""
    if width * height <= max_pixels:
        return None
    return (f"{width}x{height} is {width * height / 1e6:.1f} megapixels, over the limit of {max_pixels / 1e6:g} "
            f"(--max_megapixels raises it)")


_STDERR_SWAP = threading.Lock()


class _Warnings(logging.Handler):
    """Warnings a decode gave, counted instead of printed: Python's, Pillow's log records, and what libtiff writes
    to the process's stderr itself (``sink``: that file descriptor, sent to a temporary file while a TIFF
    decodes)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    @contextmanager
    def caught(self) -> Iterator[None]:
        pil = logging.getLogger("PIL")
        propagate, pil.propagate = pil.propagate, False
        pil.addHandler(self)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield
            self.count += len(caught)
        finally:
            pil.removeHandler(self)
            pil.propagate = propagate

    @contextmanager
    def sink(self) -> Iterator[None]:
        # The descriptor is the process's: two threads decoding at once (the page) must not swap it back and forth.
        with _STDERR_SWAP, tempfile.TemporaryFile() as captured:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                self.count += captured.read().count(b"\n")


@contextmanager
def _opened(path: str, max_pixels: int, counted: _Warnings | None = None) -> Iterator[Image.Image]:
    """The image file, open, or BadImage. Only regular files are opened (a FIFO would block forever), only with
    the decoders of the formats we read, and only when the header's size is within ``max_pixels``. Decoder
    warnings are not printed (a damaged file shows as a damaged image or as a BadImage); ``counted`` counts them."""
    counted = counted or _Warnings()
    try:
        if not stat_module.S_ISREG(os.stat(path).st_mode):
            raise BadImage(path, "not a regular file")
        with counted.caught(), Image.open(path, formats=_readable()[1]) as img:
            reason = too_large(*img.size, max_pixels)
            if reason:
                raise BadImage(path, reason)
            yield img
    except BadImage:
        raise
    # Any exception of a decoder is about this file, whatever its type: the file is reported, the run goes on.
    except Exception as err:
        raise BadImage(path, _reason(path, err)) from None


def image_size(path: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with _opened(path, max_pixels) as img:
        return img.size


def decode_rgb(path: str, max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, int]:
    """The image as 8-bit RGB, and how many warnings its decoders gave. Its first frame when it has several
    (animated GIF, multi-page TIFF). The EXIF orientation is not applied, as in the authors' code: the detector
    sees the pixels as stored."""
    counted = _Warnings()
    with _opened(path, max_pixels, counted) as img:
        # decode now (the file closes when this block ends); only libtiff writes to stderr itself
        with counted.sink() if img.format == "TIFF" else contextlib.nullcontext():
            img.load()
        try:
            rgb = to_rgb(img)
        except ValueError as err:
            raise BadImage(path, f"colour mode {img.mode}: {err}") from None
    return rgb, counted.count


def load_rgb(path: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image as ``decode_rgb`` gives it, its decoders' warnings dropped."""
    return decode_rgb(path, max_pixels)[0]


Transform = Callable[[Image.Image, np.random.Generator], np.ndarray]  # -> HxWx3 uint8


class ImageDataset(Dataset):
    """Samples + a transform called with a per-image generator seeded by (seed, epoch, index).

    Keys are ``(epoch, index)`` pairs from ``SeededSampler``; a plain integer index means epoch 0. Items are
    ``(image, label, index, None)`` so that scores can be matched back to files after a distributed gather, or
    ``(None, label, index, reason)`` for a file that cannot be read (``collate`` takes it out of the batch).
    """

    def __init__(self, samples: Sequence[Sample], transform: Transform, seed: int = 0,
                 max_pixels: int = MAX_PIXELS, cache_bytes: int = 0) -> None:
        """``cache_bytes``: decoded images stay in this process's memory until they fill that many bytes, so a
        set read every epoch that fits is decoded once (the transform still runs on every read)."""
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed
        self.max_pixels = max_pixels
        self._cache: dict[int, tuple[Image.Image, int]] = {}
        self._cache_left = cache_bytes

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def __getitem__(self, key: int | tuple[int, int]) -> Item:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample = self.samples[index]
        rng = np.random.default_rng((self.seed, epoch, index))
        if sample.refused:
            return Item(None, sample.label, index, sample.refused)
        try:
            image, warned = self._decoded(index)
            return Item(self.transform(image, rng), sample.label, index, None, warned)
        except BadImage as err:
            return Item(None, sample.label, index, err.reason)
        except Exception as err:  # a transform failing on one odd image must not end the run
            return Item(None, sample.label, index, _reason(sample.path, err))

    def _decoded(self, index: int) -> tuple[Image.Image, int]:
        decoded = self._cache.get(index)
        if decoded is None:
            decoded = decode_rgb(self.samples[index].path, self.max_pixels)
            size = decoded[0].width * decoded[0].height * 4  # PIL stores an RGB pixel in 4 bytes
            if size <= self._cache_left:
                self._cache[index] = decoded
                self._cache_left -= size
        return decoded


class Item(NamedTuple):
    image: np.ndarray | None
    """HxWx3 uint8; None when the file cannot be used (``reason`` says why)."""
    label: int
    index: int
    reason: str | None
    warnings: int = 0
    """Warnings its decoders gave (not printed)."""


@dataclass
class Batch:
    """The readable images of a batch as uint8 BxHxWx3 (``data.transforms.Normalization`` makes the network input),
    the (index, reason) of the ones that could not be read, and how many decoder warnings the batch gave."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    skipped: list[tuple[int, str]]
    warnings: int = 0

    def pin_memory(self) -> Batch:
        """Called by the DataLoader's pin_memory thread, so copies to the GPU can overlap compute."""
        return Batch(self.images.pin_memory(), self.labels.pin_memory(), self.indices.pin_memory(), self.skipped,
                     self.warnings)


def collate(items: Sequence[Item]) -> Batch:
    """Stack the readable items; an unreadable image leaves the batch and is reported instead of failing it."""
    good = [item for item in items if item.reason is None]
    images = torch.from_numpy(np.stack([item.image for item in good])) if good else torch.empty(0, dtype=torch.uint8)
    return Batch(images=images,
                 labels=torch.tensor([item.label for item in good], dtype=torch.int64),
                 indices=torch.tensor([item.index for item in good], dtype=torch.int64),
                 skipped=[(item.index, item.reason) for item in items if item.reason is not None],
                 warnings=sum(item.warnings for item in items))


# Batches each loader worker keeps ready: enough to ride out a slow image, few enough to bound host memory.
PREFETCH = 4


def init_worker(_: int) -> None:
    """DataLoader workers parallelize over images: OpenCV's own threads in each would oversubscribe the cores."""
    cv2.setNumThreads(1)


class SeededSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` for one process of ``world_size``.

    The order is a pure function of (seed, epoch): shuffled, in file order, or drawn with replacement by
    ``weights``. It is padded by wrapping around to a multiple of ``world_size`` so every rank gets equally
    many items (drop the duplicates, which carry repeated indices, before computing metrics).
    ``set_epoch(epoch, start)`` also skips the first ``start`` items of this rank, for exact resume.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def per_rank(self) -> int:
        return math.ceil(self.num_samples / self.world_size)

    def _order(self) -> np.ndarray:
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.weights is not None:
            return rng.choice(self.num_samples, size=self.num_samples, replace=True, p=self.weights)
        if self.shuffle:
            return rng.permutation(self.num_samples)
        return np.arange(self.num_samples)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        total = self.per_rank() * self.world_size
        order = np.resize(order, total)  # wraps around
        mine = order[self.rank : total : self.world_size]
        return iter([(self.epoch, int(i)) for i in mine[self.start :]])

    def __len__(self) -> int:
        return self.per_rank() - self.start


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights giving each label the same total probability (the authors' --class_bal)."""
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    return 1.0 / counts[labels]


class SizeGroupedBatches(Sampler[list[int]]):
    """Batches of indices whose images share a size, so whole images of mixed sizes batch without padding.

    Groups keep the order in which their first image appears, and indices stay in order within a group.
    ``parts``: each index's part (a test set, numbered in order); a batch never mixes two.
    ``max_pixels``: a batch holds at most this many pixels in all (but always one image), so that memory is bounded
    by a budget and not by the images' size.
    """

    def __init__(self, sizes: Sequence[tuple[int, int]], batch_size: int,
                 parts: Sequence[int] | None = None, max_pixels: int | None = None) -> None:
        groups: dict[tuple[int, int, int], list[int]] = {}
        for index, size in enumerate(sizes):
            groups.setdefault((0 if parts is None else parts[index], *size), []).append(index)
        self.batches = []
        for (_, width, height), members in groups.items():
            fit = batch_size if max_pixels is None else max_pixels // max(1, width * height)
            per_batch = max(1, min(batch_size, fit))
            self.batches += [members[k : k + per_batch] for k in range(0, len(members), per_batch)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
