"""Training and validation loops for the detector (the paper's recipe; see train.py for commands).

A run folder ``<checkpoints_dir>/<name>/`` holds ``opt.json`` (and ``opt_resume_step<N>.json`` for each resume),
``metrics.jsonl``, TensorBoard events and the checkpoints ``latest.pth`` (every ``--save_latest_freq`` steps, every
epoch and on Ctrl-C), ``best.pth`` (global best validation accuracy over all LR phases) and ``epoch_<k>.pth``
(every ``--save_epoch_freq`` epochs), plus ``skipped.csv`` when some images could not be read (they are left out,
up to ``--max_bad_fraction`` per split).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from data import (
    ImageDataset,
    SeededSampler,
    TrainTransform,
    ValTransform,
    augment_config,
    balanced_weights,
    collate,
    scan_folder,
)
from networks import build_model
from options.options import describe_options, options_dict, save_options, train_parser
from util import distributed
from util.checkpoint import extract_state_dict, load_checkpoint, load_weights, save_checkpoint, unwrap
from util.early_stopping import EarlyStopping
from util.errors import Interrupted, UserError
from util.metrics import binary_metrics

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Progress:
    """Where training stands; ``epochs_done`` also indexes the sampler's epoch, so resume replays the data."""

    epochs_done: int = 0
    batches_done: int = 0  # within the current epoch, per process
    total_steps: int = 0
    finished: bool = False


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def make_loader(dataset: ImageDataset, sampler: SeededSampler, opt: argparse.Namespace, device: torch.device,
                train: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=opt.batch_size,
        sampler=sampler,
        num_workers=opt.num_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=opt.num_workers > 0,
        # A last batch of one image would break BatchNorm in training; the sampler reshuffles every epoch.
        drop_last=train,
    )


@dataclass(frozen=True)
class Predictions:
    """Per-sample outputs in dataset order: the readable samples' indices, labels and logits, and the unreadable
    ones' reasons by index."""

    indices: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    skipped: dict[int, str]


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, amp: str,
            progress: bool = False, desc: str = "validate") -> Predictions:
    """Outputs for every sample of the loader's dataset, gathered from all processes."""
    model.eval()
    layout = input_memory_format(model)
    indices, labels, logits, skipped = [], [], [], []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
        skipped.extend(batch.skipped)
        if len(batch.indices) == 0:
            continue
        images = batch.images.to(device, non_blocking=True, memory_format=layout)
        with autocast(device, amp):
            logits.append(model(images).squeeze(1).float())
        labels.append(batch.labels.to(device))
        indices.append(batch.indices.to(device))
    empty = torch.empty(0, device=device)
    kept, (labels_all, logits_all) = distributed.gather_by_index(
        torch.cat(indices) if indices else empty, torch.cat(labels) if labels else empty,
        torch.cat(logits) if logits else empty)
    skipped_all = dict(distributed.gather_objects(skipped))
    if len(kept) + len(skipped_all) != len(loader.dataset):
        raise RuntimeError(f"gathered {len(kept)} + {len(skipped_all)} skipped samples of {len(loader.dataset)}")
    return Predictions(kept, labels_all.astype(np.int64), logits_all.astype(np.float32), skipped_all)


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


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device, amp: str) -> float:
    """One optimization step; returns the loss, refusing to step on a non-finite one."""
    with autocast(device, amp):
        logits = model(images).squeeze(1)
    loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return value


class RunLog:
    """metrics.jsonl + TensorBoard; a no-op in every process but the main one."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # slow to import; only the writing process needs it

            self.jsonl = open(run_dir / "metrics.jsonl", "a")
            self.writer = SummaryWriter(log_dir=str(run_dir))

    def log(self, kind: str, step: int, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"type": kind, "step": step, **record}) + "\n")
        self.jsonl.flush()
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{kind}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.writer.close()


def _checkpoint_name(which: str) -> str:
    return f"epoch_{which}.pth" if which.isdigit() else f"{which}.pth"


def _make_optimizer(opt: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    if opt.optim == "adam":
        return torch.optim.Adam(model.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
    return torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=0.0)


def _datasets(opt: argparse.Namespace) -> tuple[ImageDataset, ImageDataset]:
    cfg = augment_config(opt)
    train_samples = scan_folder(opt.dataroot / opt.train_split, opt.classes)
    val_samples = scan_folder(opt.dataroot / opt.val_split, opt.classes)
    return (ImageDataset(train_samples, TrainTransform(cfg), seed=opt.seed),
            ImageDataset(val_samples, ValTransform(cfg, perturb=opt.val_perturb), seed=opt.seed))


# Options that change where or how fast a run computes, or when it gives up, not its weights.
_RUNTIME_OPTIONS = ("device", "num_workers", "debug", "max_bad_fraction")


def completed_run(opt: argparse.Namespace) -> bool:
    """Whether ``opt``'s run folder holds a run trained to its end with these very options (runtime aside)."""
    latest = opt.checkpoints_dir / opt.name / "latest.pth"
    if not latest.is_file():
        return False
    checkpoint = load_checkpoint(latest)
    recipe = {k: v for k, v in options_dict(opt).items() if k not in _RUNTIME_OPTIONS}
    # An option added since the run was saved counts as its default, which keeps the earlier behaviour.
    saved = {**options_dict(train_parser().parse_args([])), **checkpoint["options"]}
    saved = {k: v for k, v in saved.items() if k not in _RUNTIME_OPTIONS}
    progress = checkpoint["progress"]
    return saved == recipe and (progress["finished"] or progress["epochs_done"] >= opt.epochs)


def train(opt: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) training as the options say; returns the best validation accuracy and its epoch."""
    process, device = distributed.setup(opt.device)
    try:
        return _train(opt, process, device)
    finally:
        distributed.teardown()


def _train(opt: argparse.Namespace, process: distributed.Process, device: torch.device) -> dict[str, Any]:
    run_dir = opt.checkpoints_dir / opt.name
    resume, resume_path = None, run_dir / _checkpoint_name(opt.epoch)
    if opt.continue_train:
        resume = load_checkpoint(resume_path)
    elif (run_dir / "latest.pth").exists():
        raise UserError(f"{run_dir} already holds a run: pass --continue_train to resume it, or pick another --name")
    if process.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        print(describe_options(train_parser(), opt))
        # A resume keeps the run's first opt.json and records its own options beside it.
        name = f"opt_resume_step{resume['progress']['total_steps']}.json" if resume is not None else "opt.json"
        save_options(opt, run_dir / name)

    # The model comes first so that a failed ImageNet download stops the run before any data is scanned.
    torch.manual_seed(opt.seed)  # the new head's initialization
    model = build_model(opt.arch, pretrained=not opt.no_pretrained and resume is None,
                        pretrained_path=opt.pretrained_path if resume is None else None, init_gain=opt.init_gain)
    train_set, val_set = _datasets(opt)
    train_sampler = SeededSampler(
        len(train_set), seed=opt.seed, shuffle=not opt.serial_batches,
        weights=balanced_weights(train_set.labels) if opt.class_bal else None,
        rank=process.rank, world_size=process.world_size,
    )
    val_sampler = SeededSampler(len(val_set), shuffle=False, rank=process.rank, world_size=process.world_size)
    batches_per_epoch = train_sampler.per_rank() // opt.batch_size
    if batches_per_epoch == 0:
        raise UserError(f"{opt.dataroot / opt.train_split}: {train_sampler.per_rank()} images per process, "
                        f"fewer than --batch_size {opt.batch_size}")
    train_loader = make_loader(train_set, train_sampler, opt, device, train=True)
    val_loader = make_loader(val_set, val_sampler, opt, device, train=False)

    optimizer = _make_optimizer(opt, model)
    scaler = torch.amp.GradScaler(device.type, enabled=opt.amp == "fp16")
    stopper = EarlyStopping(patience=opt.patience)
    progress = Progress()
    if resume is not None:
        load_weights(model, extract_state_dict(resume), str(resume_path), opt.arch)
        if not opt.new_optim:
            optimizer.load_state_dict(resume["optimizer"])
            scaler.load_state_dict(resume["scaler"])
        stopper.load_state_dict(resume["early_stopping"])
        progress = Progress(**resume["progress"])
    model.to(device, memory_format=memory_format(device))
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if process.world_size > 1 else model
    run = _Run(opt, process, device, run_dir, model, net, optimizer, scaler, stopper, progress,
               RunLog(run_dir, process.is_main))
    try:
        while not progress.finished and progress.epochs_done < opt.epochs:
            run.train_epoch(train_loader, batches_per_epoch)
            run.end_epoch(val_loader)
    except KeyboardInterrupt:
        run.save("latest.pth")
        raise Interrupted(f"interrupted at step {progress.total_steps}: {run_dir / 'latest.pth'} saved; resume "
                          f"with the same command plus --continue_train") from None
    finally:
        run.log.close()
    return {"best_acc": stopper.best_acc, "best_epoch": stopper.best_epoch, "epochs": progress.epochs_done}


@dataclass
class _Run:
    """Everything a training run updates, shared by the steps of its loop."""

    opt: argparse.Namespace
    process: distributed.Process
    device: torch.device
    run_dir: Path
    model: nn.Module  # the bare network (what checkpoints store)
    net: nn.Module  # the network the loop calls (DDP-wrapped under torchrun)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    stopper: EarlyStopping
    progress: Progress
    log: RunLog
    bad: dict[str, set[int]] = field(default_factory=lambda: {"train": set(), "val": set()})  # unreadable, seen

    def skip(self, split: str, dataset: ImageDataset, skipped: Sequence[tuple[int, str]], write: bool = True) -> None:
        """Remember unreadable images and log each once in ``skipped.csv`` (``write``: this process logs them)."""
        new = [(index, reason) for index, reason in skipped if index not in self.bad[split]]
        self.bad[split].update(index for index, _ in new)
        if not new or not write:
            return
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        for index, reason in new:
            path = dataset.samples[index].path
            tqdm.write(f"skipped {path}: {reason}")
            rows.writerow((split, path, reason))
        # One O_APPEND write per batch: whole lines even when several processes log at once.
        fd = os.open(self.run_dir / "skipped.csv", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (("split,path,reason\n" if os.fstat(fd).st_size == 0 else "") + text.getvalue()).encode())
        finally:
            os.close(fd)

    def too_many_bad(self, split: str, share: float) -> UserError | None:
        """An error when this process met more unreadable images than --max_bad_fraction of the ``share`` of
        ``split`` it reads."""
        count = len(self.bad[split])
        if count <= self.opt.max_bad_fraction * share:
            return None
        whose = " (this process's share)" if self.process.world_size > 1 and split == "train" else ""
        return UserError(f"{count} of {share:.0f}{whose} {split} images are unreadable, more than --max_bad_fraction "
                         f"{self.opt.max_bad_fraction:g} (list: {self.run_dir / 'skipped.csv'}); fix or remove "
                         f"them, or raise the limit")

    def save(self, name: str) -> None:
        if self.process.is_main:
            save_checkpoint(self.run_dir / name, {
                "model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "total_steps": self.progress.total_steps,
                "progress": vars(self.progress).copy(), "early_stopping": self.stopper.state_dict(),
                "options": options_dict(self.opt),
            })

    def train_epoch(self, loader: DataLoader, batches_per_epoch: int) -> None:
        opt, progress = self.opt, self.progress
        loader.sampler.set_epoch(progress.epochs_done, start=progress.batches_done * opt.batch_size)
        self.net.train()
        window_start, window_images = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"epoch {progress.epochs_done + 1}", total=batches_per_epoch,
                   initial=progress.batches_done, disable=not self.process.is_main, dynamic_ncols=True)
        layout = input_memory_format(self.model)
        for batch in bar:
            self.skip("train", loader.dataset, batch.skipped)
            too_many = self.too_many_bad("train", len(loader.dataset) / self.process.world_size)
            usable, stop = self._agree(len(batch.indices) >= 2, too_many is not None)
            if stop:
                raise too_many or UserError("another process met too many unreadable training images")
            if not usable:  # BatchNorm needs two images; the step still counts, for exact resume
                progress.batches_done += 1
                progress.total_steps += 1
                continue
            images = batch.images.to(self.device, non_blocking=True, memory_format=layout)
            labels = batch.labels.to(self.device, non_blocking=True)
            try:
                loss = train_step(self.net, images, labels, self.optimizer, self.scaler, self.device, opt.amp)
            except FloatingPointError as err:
                raise UserError(f"training stopped at step {progress.total_steps + 1}: {err}. The last good "
                                f"checkpoint is {self.run_dir / 'latest.pth'}; try a lower --lr or --amp off") from None
            progress.batches_done += 1
            progress.total_steps += 1
            window_images += len(images) * self.process.world_size
            if progress.total_steps % opt.loss_freq == 0:
                elapsed = time.perf_counter() - window_start
                self.log.log("train", progress.total_steps, {
                    "epoch": progress.epochs_done + 1, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                    "images_per_s": window_images / max(elapsed, 1e-9)})
                window_start, window_images = time.perf_counter(), 0
            bar.set_postfix(loss=f"{loss:.4f}")
            if progress.total_steps % opt.save_latest_freq == 0:
                self.save("latest.pth")

    def _agree(self, usable: bool, stop: bool) -> tuple[bool, bool]:
        """(every process has a usable batch, some process must stop); under DDP all must step, or stop, together."""
        if self.process.world_size == 1:  # no tensor, so no device round trip per step
            return usable, stop
        flags = torch.tensor([int(not usable), int(stop)], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        return not flags[0], bool(flags[1])

    def end_epoch(self, val_loader: DataLoader) -> None:
        """Validate, let early stopping set the LR (or stop), log, and write the checkpoints."""
        progress = self.progress
        predictions = predict(self.net, val_loader, self.device, self.opt.amp, progress=self.process.is_main)
        # Every process holds the gathered list, so one logs it and all take the same decision.
        self.skip("val", val_loader.dataset, sorted(predictions.skipped.items()), write=self.process.is_main)
        too_many = self.too_many_bad("val", len(val_loader.dataset))
        if too_many:
            raise too_many
        metrics = binary_metrics(predictions.labels, expit(predictions.logits))
        epoch = progress.epochs_done + 1
        action, is_best, lr = self.stopper.step(epoch, metrics["acc"], self.optimizer.param_groups[0]["lr"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        progress.epochs_done, progress.batches_done = epoch, 0
        progress.finished = action == "stop"
        self.log.log("val", progress.total_steps, {"epoch": epoch, **metrics, "lr": lr, "action": action,
                                                   "best": is_best})
        if self.process.is_main:
            print(f"epoch {epoch}: val acc {metrics['acc']:.4f} ap {metrics['ap']:.4f} "
                  f"(real {metrics['r_acc']:.4f}, fake {metrics['f_acc']:.4f}) -> {action}, lr {lr:g}"
                  + (", new best" if is_best else ""))
        self.save("latest.pth")
        if is_best:
            self.save("best.pth")
        if epoch % self.opt.save_epoch_freq == 0:
            self.save(f"epoch_{epoch}.pth")
