"""Running a detector: devices and precision, loading a checkpoint, and scoring samples in dataset order.

Shared by training (validation), evaluation, the demo and the benchmark.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from data import (
    MAX_PIXELS,
    PREFETCH,
    BadImage,
    EvalTransform,
    ImageDataset,
    Normalization,
    Sample,
    SizeGroupedBatches,
    collate,
    image_size,
    init_worker,
)
from engine.configs import TestProtocol, choose_protocol
from networks import Family, Preprocessing, family, names, recognize
from networks.backbones import restore
from networks.released import RELEASED
from util import distributed
from util.checkpoint import CheckpointError, check_checkpoint, extract_state_dict, load_checkpoint

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_precision(device: torch.device, amp: str) -> None:
    """Without autocast, CUDA computes in true fp32: PyTorch lets cuDNN use TF32 for convolutions by default, which
    moves probabilities by about 1e-4 from the CPU's; with it off, Table 2 comes out the same on any device.
    ``--amp bf16`` is the speed setting."""
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = amp != "off"


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def memory_format(device: torch.device) -> torch.memory_format:
    """The default layout of a model on ``device``."""
    # channels_last speeds up convolutions on CUDA tensor cores; on CPU it gains nothing here.
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def input_memory_format(model: nn.Module) -> torch.memory_format:
    """Batches take the layout of the model's first convolution, so that no layer converts them again."""
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    channels_last = weight is not None and not weight.is_contiguous() \
        and weight.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


@dataclass(frozen=True)
class Predictions:
    """Per-sample outputs in dataset order: the readable samples' indices, labels and logits, and the unreadable
    ones' reasons by index."""

    indices: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    skipped: dict[int, str]
    warnings: int = 0
    """Warnings the decoders gave on the way (not printed)."""


@torch.no_grad()
def predict_parts(model: nn.Module, loader: DataLoader, device: torch.device, amp: str, ends: Sequence[int], *,
                  normalization: Normalization, progress: bool = False,
                  desc: str = "validate") -> Iterator[Predictions]:
    """Outputs for consecutive ranges of the loader's dataset, ``[0, ends[0])``, ``[ends[0], ends[1])``, ...: each
    range's, with indices counted from its start, as soon as the loader has moved past it, gathered from all
    processes. The loader's batches come range by range and never straddle two, so one loader (one pool of
    workers) serves a whole suite of test sets."""
    model.eval()
    layout = input_memory_format(model)
    start, part = 0, 0
    indices: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    skipped: list[tuple[int, str]] = []
    warned: list[int] = []

    def finish() -> Predictions:
        nonlocal start, part
        # Labels and indices stayed on the host: copying them with each batch would wait for the device each time.
        empty = torch.empty(0, device=device)
        kept, (labels_all, logits_all) = distributed.gather_by_index(
            torch.cat(indices).to(device) if indices else empty, torch.cat(labels).to(device) if labels else empty,
            torch.cat(logits) if logits else empty)
        skipped_all = {index - start: reason for index, reason in distributed.gather_objects(skipped)}
        if len(kept) + len(skipped_all) != ends[part] - start:
            raise RuntimeError(f"gathered {len(kept)} + {len(skipped_all)} skipped samples of {ends[part] - start}")
        result = Predictions(kept - start, labels_all.astype(np.int64), logits_all.astype(np.float32), skipped_all,
                             sum(distributed.gather_objects(warned)))
        start, part = ends[part], part + 1
        for collected in (indices, labels, logits, skipped, warned):
            collected.clear()
        return result

    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
        first = min([*batch.indices[:1].tolist(), *(index for index, _ in batch.skipped)])
        while first >= ends[part]:
            yield finish()
        skipped.extend(batch.skipped)
        warned.append(batch.warnings)
        if len(batch.indices) == 0:
            continue
        images = normalization(batch.images.to(device, non_blocking=True), layout)
        with autocast(device, amp):
            logits.append(model(images).squeeze(1).float())
        labels.append(batch.labels)
        indices.append(batch.indices)
    while part < len(ends):
        yield finish()


def predict(model: nn.Module, loader: DataLoader, device: torch.device, amp: str, *, normalization: Normalization,
            progress: bool = False, desc: str = "validate") -> Predictions:
    """Outputs for every sample of the loader's dataset, gathered from all processes."""
    (result,) = predict_parts(model, loader, device, amp, [len(loader.dataset)], normalization=normalization,
                              progress=progress, desc=desc)
    return result


def normalization_of(network: Family) -> Normalization:
    """The input normalization of a family's networks, which the data code applies on the device."""
    return Normalization(network.mean, network.std)


# The total stride of the ResNets: a whole image with a shorter side gives their last layer less than one cell.
MIN_WHOLE_SIDE = 32


def size_notes(name: str, samples: Sequence[Sample], protocol: TestProtocol, network: Family,
               probe: int = 100) -> list[str]:
    """Warnings from the first ``probe`` images' sizes (header reads only), each when it concerns more than a tenth
    of them: smaller than the crop (mostly zero padding would be scored), or, scored whole, smaller than
    MIN_WHOLE_SIDE; and, for a network that needs even sides (NPR), odd-sized inputs."""
    small = odd = seen = 0
    transform = protocol.transform()
    least = protocol.crop_size or MIN_WHOLE_SIDE
    for sample in (s for s in samples[:probe] if s.refused is None):
        with contextlib.suppress(BadImage):  # reported when the image is scored
            original = image_size(sample.path)
            size = transform.output_size(*original)
            small += min(original if protocol.crop_size else size) < least
            odd += network.even_sides and any(side % 2 for side in size)
            seen += 1
    notes = []
    if seen and small > seen / 10 and protocol.crop_size and not protocol.tile:
        notes.append(f"note: {small} of {seen} images looked at in {name} are smaller than the {protocol.crop_size} "
                     f"px crop and are zero-padded; --no_crop scores whole images")
    elif seen and small > seen / 10 and not protocol.crop_size:
        notes.append(f"note: {small} of {seen} images looked at in {name} have a side under {MIN_WHOLE_SIDE} px; "
                     f"whole, they are smaller than one cell of the network's coarsest features, and their scores "
                     f"say little")
    if odd:
        notes.append(f"note: {odd} of {seen} images looked at in {name} have an odd side after preprocessing; "
                     f"{network.name} drops their last row or column (its 2x2 blocks must tile the image)")
    return notes


@dataclass(frozen=True)
class ProtocolRequest:
    """What a command's flags ask of the test protocol (see ``engine.configs.choose_protocol``); with none given,
    the checkpoint's record, else the family's default: its ``test_protocol``, or for ``demo`` (demo.py, the page)
    its ``demo_protocol``."""

    crop_size: int | None = None
    no_crop: bool = False
    resize: int | None = None
    preprocess: str | None = None
    suite: Preprocessing | None = None
    """The protocol of the suite being scored (``data.suites.Suite.test_protocol``), above the checkpoint's."""
    demo: bool = False


@dataclass(frozen=True)
class Detector:
    model: nn.Module
    family: Family
    recipe: str
    """The training recipe its checkpoint records, else its family's (wang2020 for the authors' release)."""
    recorded: TestProtocol | None
    """The test protocol its checkpoint records (training runs of this project), None for others."""
    protocol: TestProtocol
    """The test protocol to score with: the request's, else the recorded one, else the family's."""
    protocol_source: str

    @property
    def arch(self) -> str:
        return self.family.name

    @property
    def normalization(self) -> Normalization:
        return normalization_of(self.family)


def _missing_detector(path: Path) -> CheckpointError:
    """The error for a checkpoint that is not there, naming both ways to get a detector."""
    trained = sorted(Path("checkpoints").glob("*/best.pth"))
    mine = f" (here: {', '.join(map(str, trained[:3]))})" if trained else ""
    release = f"`python -m weights.download {path.stem}`" if path.stem in RELEASED else \
        "`python -m weights.download` (the authors' models)"
    return CheckpointError(f"{path}: no such checkpoint file. Get the released weights with {release}, or pass a "
                           f"detector you trained with -m checkpoints/<run>/best.pth{mine}")


def load_detector(path: Path, arch: str | None, device: torch.device,
                  request: ProtocolRequest = ProtocolRequest(), allow_nonfinite: bool = False) -> Detector:
    """The detector in eval mode on ``device``, and the test protocol ``request`` leads to. Its family is ``arch``,
    else the one its checkpoint records, else the one whose spec recognizes its state dict's keys, else the paper's
    ResNet-50 (whose error then says how the weights differ). Everything the checkpoint carries is checked first.
    eval.py, demo.py and the page load detectors so."""
    if not Path(path).exists():
        raise _missing_detector(Path(path))
    checkpoint = load_checkpoint(path)
    state = extract_state_dict(checkpoint)
    check_checkpoint(checkpoint, state, str(path), archs=names(), allow_nonfinite=allow_nonfinite)
    options = checkpoint.get("options", {})
    recognized = recognize(state.keys())
    spec = family(arch or options.get("arch") or (recognized.name if recognized else "resnet50"))
    model = restore(spec.name, state, str(path), checkpoint.get("tower"))
    record = checkpoint.get("test_protocol")
    recorded = TestProtocol(**record) if isinstance(record, dict) else None
    default = (spec.demo_protocol or spec.test_protocol) if request.demo else spec.test_protocol
    protocol, source = choose_protocol(
        crop_size=request.crop_size, no_crop=request.no_crop, resize=request.resize, recorded=recorded,
        fallback=(TestProtocol.of(default), default.source), preprocess=request.preprocess,
        suite=None if request.suite is None else (TestProtocol.of(request.suite), request.suite.source))
    return Detector(model.to(device, memory_format=memory_format(device)).eval(), spec,
                    options.get("recipe", spec.recipe), recorded, protocol, source)


@dataclass(frozen=True)
class Scored:
    """Per-image detector outputs for one set, in sample order."""

    name: str
    samples: list[Sample]
    logits: np.ndarray
    warnings: int = 0
    """Warnings the decoders gave while these images were read (not printed)."""

    @cached_property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @cached_property
    def probs(self) -> np.ndarray:
        # float32 sigmoid, the same values the authors' code passes to scikit-learn.
        return expit(self.logits.astype(np.float32))

    def rows(self) -> list[dict[str, Any]]:
        return [{"set": self.name, "subclass": s.subclass, "path": s.path, "label": s.label,
                 "logit": float(logit), "prob": float(prob)}
                for s, logit, prob in zip(self.samples, self.logits, self.probs, strict=True)]


def data_loader(dataset: ImageDataset, *, workers: int, device: torch.device, batch_size: int | None = None,
                sampler: Iterable[Any] | None = None, batch_sampler: Iterable[list[Any]] | None = None,
                drop_last: bool = False) -> DataLoader:
    """The one way every command loads images: ``workers`` processes (resolved once per run, see
    ``engine.configs.resolve_workers``), each ``PREFETCH`` batches ahead and kept across epochs, batches pinned
    for a CUDA device."""
    return DataLoader(dataset, batch_size=batch_size if batch_sampler is None else 1, sampler=sampler,
                      batch_sampler=batch_sampler, drop_last=drop_last, num_workers=workers, collate_fn=collate,
                      pin_memory=device.type == "cuda", persistent_workers=workers > 0, worker_init_fn=init_worker,
                      prefetch_factor=PREFETCH if workers else None)


# Bytes a forward pass takes per input pixel without gradients: ResNet-50 and NPR, the largest of the networks
# here, took 300-310 at 1 Mpx on CPU (237 at 4 Mpx); the same budget holds for the other networks.
FORWARD_BYTES_PER_PIXEL = 320
# The default memory budget for whole images: half of the memory free on the device, at most this much.
MAX_AUTO_BUDGET = 4 * 2**30


def _available_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/meminfo") as f:
        return 1024 * int(next(line for line in f if line.startswith("MemAvailable:")).split()[1])
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memory_budget(device: torch.device, gib: float | None) -> int:
    """Bytes the activations of one batch of whole images may take: ``gib`` (--memory_budget), or half of the free
    memory of ``device``, at most MAX_AUTO_BUDGET."""
    if gib is not None:
        return int(gib * 2**30)
    return min(MAX_AUTO_BUDGET, _available_memory(device) // 2)


def over_budget(width: int, height: int, budget: int) -> str | None:
    """Why a whole image of this size is not scored, or None."""
    need = width * height * FORWARD_BYTES_PER_PIXEL
    if need <= budget:
        return None
    return (f"{width}x{height} scored whole needs about {need / 2**30:.1f} GiB, over the memory budget of "
            f"{budget / 2**30:.1f} GiB (--memory_budget raises it; a crop needs little)")


def eval_loader(samples: Sequence[Sample], transform: EvalTransform, *, batch_size: int, num_workers: int,
                device: torch.device, sizes: Sequence[tuple[int, int]] | None = None,
                parts: Sequence[int] | None = None, max_pixels: int = MAX_PIXELS,
                budget: int | None = None) -> DataLoader:
    """Batches of ``samples`` of equal output size: whole images of several sizes are grouped by size instead of
    going one at a time, as many as ``budget`` bytes of activations allow. ``sizes``: each sample's image size,
    when already read (else read from the headers). ``parts``: each sample's part (test set), when the samples of
    several follow each other; no batch mixes two. ``max_pixels``: larger images are not decoded."""
    if transform.crop_size is not None:
        sizes = [(transform.crop_size, transform.crop_size)] * len(samples)
    elif sizes is None:
        sizes = [image_size(sample.path, max_pixels) for sample in samples]
    sizes = [transform.output_size(*size) for size in sizes]
    batches = SizeGroupedBatches(sizes, batch_size, parts,
                                 None if budget is None else budget // FORWARD_BYTES_PER_PIXEL)
    return data_loader(ImageDataset(samples, transform, max_pixels=max_pixels), workers=num_workers, device=device,
                       batch_sampler=batches)


def score_sets(model: nn.Module, sets: Sequence[tuple[str, Sequence[Sample]]], transform: EvalTransform, *,
               normalization: Normalization, batch_size: int, num_workers: int, device: torch.device, amp: str,
               progress: bool = True, max_pixels: int = MAX_PIXELS, budget: int | None = None,
               desc: str | None = None) -> Iterator[tuple[Scored, list[tuple[Sample, str]]]]:
    """For each named set, in order and as soon as it is done: logits of its readable samples (in order), and
    (sample, reason) for each unreadable one. One loader, so the workers start once for all the sets. Whole images
    are batched within ``budget`` bytes (``memory_budget``); one that alone needs more is listed instead. The
    progress bar shows ``desc``, else the sets' names."""
    budget = memory_budget(device, None) if budget is None else budget
    readable: list[list[Sample]] = []
    skipped: list[list[tuple[Sample, str]]] = []
    sizes: list[tuple[int, int]] | None = None if transform.crop_size is not None else []
    for _, samples in sets:
        if sizes is None:
            readable.append(list(samples))
            skipped.append([])
            continue
        readable.append([])
        skipped.append([])
        for sample in samples:  # batching by size reads each header first; unreadable files end here
            try:
                if sample.refused:
                    raise BadImage(sample.path, sample.refused)
                size = image_size(sample.path, max_pixels)
                too_much = over_budget(*transform.output_size(*size), budget)
                if too_much:
                    raise BadImage(sample.path, too_much)
                sizes.append(size)
                readable[-1].append(sample)
            except BadImage as err:
                skipped[-1].append((sample, err.reason))
    everything = [sample for part in readable for sample in part]
    ends = np.cumsum([len(part) for part in readable]).tolist()
    parts = [k for k, part in enumerate(readable) for _ in part]
    outputs: Iterator[Predictions] = iter(())
    if everything:
        loader = eval_loader(everything, transform, batch_size=batch_size, num_workers=num_workers, device=device,
                             sizes=sizes, parts=parts, max_pixels=max_pixels, budget=budget)
        names = ", ".join(name for name, _ in sets)
        outputs = predict_parts(model, loader, device, amp, ends, normalization=normalization, progress=progress,
                                desc=desc or (names if len(names) <= 30 else f"{len(sets)} sets"))
    for (name, _), part, unreadable in zip(sets, readable, skipped, strict=True):
        predictions = next(outputs) if everything else None
        logits, kept, warned = np.empty(0, dtype=np.float32), [], 0
        if predictions is not None:
            kept, logits, warned = [part[i] for i in predictions.indices], predictions.logits, predictions.warnings
            unreadable += [(part[i], reason) for i, reason in predictions.skipped.items()]
        yield Scored(name, kept, logits, warned), sorted(unreadable, key=lambda item: item[0].path)


def score_samples(model: nn.Module, samples: Sequence[Sample], transform: EvalTransform, *,
                  normalization: Normalization, batch_size: int, num_workers: int, device: torch.device, amp: str,
                  desc: str = "score", progress: bool = True, max_pixels: int = MAX_PIXELS, budget: int | None = None,
                  ) -> tuple[Scored, list[tuple[Sample, str]]]:
    """Logits of the readable samples (in order), and (sample, reason) for each unreadable one."""
    (result,) = score_sets(model, [(desc, samples)], transform, normalization=normalization, batch_size=batch_size,
                           num_workers=num_workers, device=device, amp=amp, progress=progress, max_pixels=max_pixels,
                           budget=budget)
    return result
