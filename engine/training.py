"""Training and validation loops for the detector (the paper's recipe; see train.py for commands).

A run folder ``<checkpoints_dir>/<name>/`` holds ``opt.json`` (and ``opt_resume_step<N>.json`` for each resume),
``metrics.jsonl``, TensorBoard events and the checkpoints ``latest.pth`` (every ``--save_latest_freq`` steps, every
epoch and on Ctrl-C), ``best.pth`` (global best of the ``--select_on`` metric, validation accuracy by default, over
all LR phases) and ``epoch_<k>.pth``
(every ``--save_epoch_freq`` epochs), plus ``skipped.csv`` when some images could not be read (they are left out,
up to ``--max_bad_fraction`` per split) or the folder walk refused entries (hidden files, links out of the folder or
reached twice, folders it may not list: listed and left out, not counted).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from scipy.special import expit
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from data import (
    BadImage,
    ImageDataset,
    Normalization,
    Sample,
    SeededSampler,
    SizeGroupedBatches,
    TrainTransform,
    ValTransform,
    balanced_weights,
    image_size,
    scan_folder,
)
from data.transforms import resized_size
from engine.averaging import WeightAverage, recompute_batchnorm
from engine.configs import TrainConfig, resolve_workers
from engine.early_stopping import CosineDecay, EarlyStopping, StepDecay
from engine.inference import (
    FORWARD_BYTES_PER_PIXEL,
    autocast,
    data_loader,
    input_memory_format,
    memory_budget,
    memory_format,
    normalization_of,
    over_budget,
    predict,
    set_precision,
)
from networks import build_model, family
from networks.backbones import restore
from util import distributed
from util.checkpoint import extract_state_dict, load_checkpoint, save_checkpoint, unwrap
from util.errors import Interrupted, UserError
from util.metrics import binary_metrics, log_loss
from util.records import command_line, config_dict, config_from_record, save_config
from util.report import ENCODING_ERRORS, create_once, warned_note

CACHE_BYTES = 512 * 2**20  # decoded images a dataset keeps in memory when loading in the main process


@dataclass
class Progress:
    """Where training stands; ``epochs_done`` also indexes the sampler's epoch, so resume replays the data."""

    epochs_done: int = 0
    batches_done: int = 0  # within the current epoch, per process
    total_steps: int = 0
    finished: bool = False


def _whole_image_batches(dataset: ImageDataset, sampler: SeededSampler, cfg: TrainConfig,
                         budget: int) -> list[list[Any]]:
    """Validation on whole images (a detector tested so is validated so): this process's share of the sampler,
    batched by image size within ``budget`` bytes (``memory_budget``). An unreadable image forms its own group and
    is reported when loaded; one that alone needs more than the budget is refused (listed, as unreadable ones)."""
    keys = list(sampler)
    sizes = []
    for _, index in keys:
        sample = dataset.samples[index]
        try:
            width, height = image_size(sample.path, dataset.max_pixels)
            size = (width, height) if cfg.augment.no_resize else \
                resized_size(width, height, cfg.augment.load_size, cfg.augment.square_resize)
            too_much = over_budget(*size, budget)
            if too_much:
                dataset.samples[index] = replace(sample, refused=too_much)
                raise BadImage(sample.path, too_much)
            sizes.append(size)
        except BadImage:
            sizes.append((0, 0))
    batches = SizeGroupedBatches(sizes, cfg.batch_size, max_pixels=budget // FORWARD_BYTES_PER_PIXEL)
    return [[keys[i] for i in batch] for batch in batches]


def train_step(model: nn.Module, *, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device, amp: str) -> torch.Tensor:
    """One optimization step; returns the loss as a device scalar. Reading it would wait for the GPU, so the
    caller checks it only every few steps (``LossWindow``)."""
    with autocast(device, amp):
        logits = model(images).squeeze(1)
    loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


class LossWindow:
    """The losses since the last check, summed on the device: one host read per check instead of per step."""

    def __init__(self, first_step: int) -> None:
        self.first_step, self.steps, self.total = first_step, 0, None

    def add(self, loss: torch.Tensor) -> None:
        self.total = loss if self.total is None else self.total + loss
        self.steps += 1

    def mean(self) -> float | None:
        """The window's mean loss, or None when it is empty; raises FloatingPointError if any loss was not
        finite (the weights are then suspect, so no checkpoint may be written from them)."""
        if self.total is None:
            return None
        value = self.total.item() / self.steps
        if not math.isfinite(value):
            last = self.first_step + self.steps - 1
            where = f"at step {last}" if self.steps == 1 else f"between steps {self.first_step} and {last}"
            raise FloatingPointError(f"{where}: loss is {value}")
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


def _listed(path: Path) -> set[tuple[str, str]]:
    """The (split, path) rows of a run's ``skipped.csv`` (a resume's), none when there is none."""
    if not path.is_file():
        return set()
    with open(path, newline="", errors=ENCODING_ERRORS) as f:
        return {(row["split"], row["path"]) for row in csv.DictReader(f)}


def _checkpoint_name(which: str) -> str:
    return f"epoch_{which}.pth" if which.isdigit() else f"{which}.pth"


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer of the parameters that train (the family's spec froze the others)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if cfg.optim == "adam":
        return torch.optim.Adam(parameters, lr=cfg.lr, betas=(cfg.beta1, 0.999))
    return torch.optim.SGD(parameters, lr=cfg.lr, momentum=0.0)


def _datasets(cfg: TrainConfig, workers: int) -> tuple[ImageDataset, ImageDataset, list[tuple[str, Sample]]]:
    """The training and validation sets, and the (split, sample) pairs the folder walk refused (hidden files, links
    out of the folder or reached twice, folders it may not list): listed, but neither trained on nor counted as
    unreadable, so a set unpacked with a ``._name`` beside every image trains.

    Loading in the main process (the CPU default), each set keeps up to CACHE_BYTES of decoded images, so a small
    set is decoded once (the quickstart's first 4 epochs, 2 CPU threads: 43 s, 45 s without). Worker processes
    keep none: each would hold its own copy, and every epoch's shuffle deals an image to another worker."""
    augment = cfg.augment
    scanned = {split: scan_folder(cfg.dataroot / folder, cfg.classes)
               for split, folder in (("train", cfg.train_split), ("val", cfg.val_split))}
    left_out = [(split, s) for split, samples in scanned.items() for s in samples if s.refused]
    train_samples, val_samples = ([s for s in samples if not s.refused] for samples in scanned.values())
    max_pixels = int(cfg.max_megapixels * 1e6)
    cache_bytes = CACHE_BYTES if workers == 0 else 0
    return (ImageDataset(train_samples, TrainTransform(augment), seed=cfg.seed, max_pixels=max_pixels,
                         cache_bytes=cache_bytes),
            ImageDataset(val_samples, ValTransform(augment, perturb=cfg.val_perturb, whole=cfg.test_no_crop),
                         seed=cfg.seed, max_pixels=max_pixels, cache_bytes=cache_bytes),
            left_out)


# Settings that do not change the weights: where and how fast a run computes, when it gives up.
_RUNTIME_FIELDS = ("device", "num_workers", "debug", "max_bad_fraction")


def _saved_options(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The options a checkpoint was trained with (``config_dict``'s layout, whatever the record's); a setting
    added since it was saved takes its default, which keeps the earlier behaviour."""
    return config_dict(config_from_record(TrainConfig, checkpoint.get("options", {})))


def completed_run(cfg: TrainConfig) -> bool:
    """Whether ``cfg``'s run folder holds a run trained to its end with this very recipe (runtime aside)."""
    latest = cfg.run_dir / "latest.pth"
    if not latest.is_file():
        return False
    checkpoint = load_checkpoint(latest)
    recipe = {k: v for k, v in config_dict(cfg).items() if k not in _RUNTIME_FIELDS}
    saved = {k: v for k, v in _saved_options(checkpoint).items() if k not in _RUNTIME_FIELDS}
    progress = checkpoint["progress"]
    return saved == recipe and (progress["finished"] or progress["epochs_done"] >= cfg.epochs)


def _schedule(cfg: TrainConfig) -> EarlyStopping | StepDecay | CosineDecay:
    if cfg.delr_freq:
        return StepDecay(every=cfg.delr_freq, factor=cfg.lr_decay)
    if cfg.lr_schedule == "cosine":
        return CosineDecay(base_lr=cfg.lr, epochs=cfg.epochs)
    return EarlyStopping(patience=cfg.patience)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training as ``cfg`` says; returns the best watched value (``select_on``), its epoch and the
    number of epochs run."""
    process, device = distributed.setup(cfg.device)
    set_precision(device, cfg.amp)
    try:
        return _train(cfg, process, device)
    finally:
        distributed.teardown()


def _train(cfg: TrainConfig, process: distributed.Process, device: torch.device) -> dict[str, Any]:
    run_dir = cfg.run_dir
    resume, resume_path = None, run_dir / _checkpoint_name(cfg.epoch)
    if cfg.continue_train:
        resume = load_checkpoint(resume_path)
        saved = _saved_options(resume)
        fixed = ("lr_schedule", "select_on", "delr_freq", "swa_epochs")
        if cfg.lr_schedule == "cosine" or cfg.swa_epochs:  # their curve and their window follow the run's length
            fixed += ("epochs",)
        changed = [k for k in fixed if saved[k] != getattr(cfg, k)]
        if changed:
            raise UserError(f"{resume_path} was trained with other {', '.join('--' + k for k in changed)}; a resume "
                            f"keeps the schedule and what it watches (start a new run to change them)")
    elif (run_dir / "latest.pth").exists():
        raise UserError(f"{run_dir} already holds a run: pass --continue_train to resume it, or pick another --name")
    if process.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        print(f"train.py {' '.join(command_line(cfg))}\n  recipe {cfg.recipe}; options: {run_dir / 'opt.json'}; "
              f"validation: "
              f"{cfg.describe_validation()}; test protocol (recorded in the checkpoints): "
              f"{cfg.test_protocol().describe()}", flush=True)
        # A resume keeps the run's first opt.json and records its own options beside it.
        name = f"opt_resume_step{resume['progress']['total_steps']}.json" if resume is not None else "opt.json"
        save_config(cfg, run_dir / name)

    # The model comes first so that a failed ImageNet download stops the run before any data is scanned.
    torch.manual_seed(cfg.seed)  # the new head's initialization
    if resume is None:
        model = build_model(cfg.arch, pretrained=not cfg.no_pretrained, pretrained_path=cfg.pretrained_path,
                            init_gain=cfg.init_gain)
    else:
        model = restore(cfg.arch, extract_state_dict(resume), str(resume_path), resume.get("tower"))
    workers = resolve_workers(cfg.num_workers, device)
    train_set, val_set, left_out = _datasets(cfg, workers)
    train_sampler = SeededSampler(
        len(train_set), seed=cfg.seed, shuffle=not cfg.serial_batches,
        weights=balanced_weights(train_set.labels) if cfg.class_bal else None,
        rank=process.rank, world_size=process.world_size,
    )
    val_sampler = SeededSampler(len(val_set), shuffle=False, rank=process.rank, world_size=process.world_size)
    batches_per_epoch = train_sampler.per_rank() // cfg.batch_size
    if batches_per_epoch == 0:
        raise UserError(f"{cfg.dataroot / cfg.train_split}: {train_sampler.per_rank()} images per process, "
                        f"fewer than --batch_size {cfg.batch_size}")
    # A last batch of one image would break BatchNorm in training; the sampler reshuffles every epoch.
    train_loader = data_loader(train_set, workers=workers, device=device, batch_size=cfg.batch_size,
                               sampler=train_sampler, drop_last=True)
    if cfg.test_no_crop:
        val_loader = data_loader(val_set, workers=workers, device=device,
                                 batch_sampler=_whole_image_batches(val_set, val_sampler, cfg,
                                                                    memory_budget(device, cfg.memory_budget)))
    else:
        val_loader = data_loader(val_set, workers=workers, device=device, batch_size=cfg.batch_size,
                                 sampler=val_sampler)

    optimizer = make_optimizer(cfg, model)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    stopper = _schedule(cfg)
    progress = Progress()
    if resume is not None:
        if not cfg.new_optim:
            optimizer.load_state_dict(resume["optimizer"])
            scaler.load_state_dict(resume["scaler"])
        stopper.load_state_dict(resume["early_stopping"])
        progress = Progress(**resume["progress"])
    model.to(device, memory_format=memory_format(device))
    average = WeightAverage(model) if cfg.swa_epochs else None
    if average is not None and resume is not None:
        if "swa" in resume:
            average.load_state_dict(resume["swa"])
        elif progress.epochs_done > cfg.epochs - cfg.swa_epochs:
            raise UserError(f"{resume_path} holds no weight average (best.pth goes without it); resume from "
                            f"latest.pth or an epoch_<k>.pth")
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if process.world_size > 1 else model
    run = _Run(cfg=cfg, process=process, device=device, model=net, optimizer=optimizer, scaler=scaler,
               normalization=normalization_of(family(cfg.arch)), stopper=stopper, progress=progress,
               log=RunLog(run_dir, process.is_main), run_start_epoch=progress.epochs_done, average=average,
               listed=_listed(run_dir / "skipped.csv"))
    if left_out and process.is_main:
        run.write_skipped([(split, sample.path, sample.refused) for split, sample in left_out])
        print(f"left out {len(left_out)} entries the folder walk refuses (hidden, links out of the folder or reached "
              f"twice, folders it may not list), not counted as unreadable: listed in {run_dir / 'skipped.csv'}",
              flush=True)
    try:
        while not progress.finished and progress.epochs_done < cfg.epochs:
            run.train_epoch(train_loader, batches_per_epoch)
            run.end_epoch(val_loader, train_loader)
    except KeyboardInterrupt:
        run.save("latest.pth")
        raise Interrupted(f"interrupted at step {progress.total_steps}: {run_dir / 'latest.pth'} saved; resume "
                          f"with the same command plus --continue_train") from None
    finally:
        run.log.close()
    return {"best": stopper.best, "best_epoch": stopper.best_epoch, "epochs": progress.epochs_done}


def _watched(select_on: str, epoch: int, metrics: dict[str, float]) -> float:
    """The value the schedule tracks, higher being better: the epoch itself for "last" (each epoch beats the one
    before, so best.pth is the last), the negative loss, or the metric."""
    if select_on == "last":
        return float(epoch)
    return -metrics["loss"] if select_on == "loss" else metrics[select_on]


@dataclass(kw_only=True)
class _Run:
    """Everything a training run updates, shared by the steps of its loop."""

    cfg: TrainConfig
    process: distributed.Process
    device: torch.device
    model: nn.Module  # DDP-wrapped under torchrun; checkpoints store the bare network
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    normalization: Normalization  # the network family's
    stopper: EarlyStopping | StepDecay | CosineDecay
    progress: Progress
    log: RunLog
    bad: dict[str, set[int]] = field(default_factory=lambda: {"train": set(), "val": set()})  # unreadable, seen
    started: float = field(default_factory=time.perf_counter)
    run_start_epoch: int = 0  # epochs done when this process started (a resume)
    average: WeightAverage | None = None  # --swa_epochs
    warned: int = 0  # decoder warnings of this process's training images since the last epoch line
    listed: set[tuple[str, str]] = field(default_factory=set)  # (split, path) rows skipped.csv holds

    def skip(self, split: str, dataset: ImageDataset, skipped: Sequence[tuple[int, str]], write: bool = True) -> None:
        """Remember unreadable images and log each once in ``skipped.csv`` (``write``: this process logs them)."""
        new = [(index, reason) for index, reason in skipped if index not in self.bad[split]]
        self.bad[split].update(index for index, _ in new)
        if not new or not write:
            return
        for _, path, reason in self.write_skipped([(split, dataset.samples[i].path, reason) for i, reason in new]):
            tqdm.write(f"skipped {path}: {reason}")

    def write_skipped(self, entries: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """Append the (split, path, reason) rows ``skipped.csv`` does not hold yet (a resume meets the same files
        again); returns them."""
        entries = [entry for entry in entries if entry[:2] not in self.listed]
        if not entries:
            return entries
        self.listed.update(entry[:2] for entry in entries)
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(entries)
        path = self.run_dir / "skipped.csv"
        create_once(path, "split,path,reason\n")
        # One O_APPEND write per batch: whole lines even when several processes log at once.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            # A file name that is not UTF-8 is written as its own bytes (util.report.ENCODING_ERRORS).
            os.write(fd, text.getvalue().encode(errors=ENCODING_ERRORS))
        finally:
            os.close(fd)
        return entries

    def too_many_bad(self, split: str, share: float) -> UserError | None:
        """An error when this process met more unreadable images than --max_bad_fraction of the ``share`` of
        ``split`` it reads."""
        count = len(self.bad[split])
        if count <= self.cfg.max_bad_fraction * share:
            return None
        whose = " (this process's share)" if self.process.world_size > 1 and split == "train" else ""
        return UserError(f"{count} of {share:.0f}{whose} {split} images are unreadable, more than --max_bad_fraction "
                         f"{self.cfg.max_bad_fraction:g} (list: {self.run_dir / 'skipped.csv'}); fix or remove "
                         f"them, or raise the limit")

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    def save(self, name: str) -> None:
        if self.process.is_main:
            spec = family(self.cfg.arch)
            save_checkpoint(self.run_dir / name, {
                # A frozen tower is named, not stored with every epoch's head (Family.tower).
                "model": spec.stored(unwrap(self.model).state_dict()),
                **({"tower": spec.tower.record()} if spec.tower is not None else {}),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "total_steps": self.progress.total_steps,
                "progress": vars(self.progress).copy(), "early_stopping": self.stopper.state_dict(),
                "options": config_dict(self.cfg), "test_protocol": self.cfg.test_protocol().record(),
                # best.pth is for use, not for resuming: it goes without the average
                **({"swa": self.average.state_dict()} if self.average is not None and name != "best.pth" else {}),
            })

    def train_epoch(self, loader: DataLoader, batches_per_epoch: int) -> None:
        cfg, progress = self.cfg, self.progress
        loader.sampler.set_epoch(progress.epochs_done, start=progress.batches_done * cfg.batch_size)
        self.model.train()
        window_start, window_images = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"epoch {progress.epochs_done + 1}", total=batches_per_epoch,
                   initial=progress.batches_done, disable=not self.process.is_main, dynamic_ncols=True)
        layout = input_memory_format(self.model)
        window = LossWindow(progress.total_steps + 1)
        for batch in bar:
            self.skip("train", loader.dataset, batch.skipped)
            self.warned += batch.warnings
            too_many = self.too_many_bad("train", len(loader.dataset) / self.process.world_size)
            usable, stop = self._agree(len(batch.indices) >= 2, too_many is not None)
            if stop:
                raise too_many or UserError("another process met too many unreadable training images")
            if not usable:  # BatchNorm needs two images; the step still counts, for exact resume
                progress.batches_done += 1
                progress.total_steps += 1
                continue
            images = self.normalization(batch.images.to(self.device, non_blocking=True), layout)
            labels = batch.labels.to(self.device, non_blocking=True)
            window.add(train_step(self.model, images=images, labels=labels, optimizer=self.optimizer,
                                  scaler=self.scaler, device=self.device, amp=cfg.amp))
            progress.batches_done += 1
            progress.total_steps += 1
            window_images += len(images) * self.process.world_size
            log = progress.total_steps % cfg.loss_freq == 0
            if log or progress.total_steps % cfg.save_latest_freq == 0:
                loss = self._checked(window)
                window = LossWindow(progress.total_steps + 1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if log:
                elapsed = time.perf_counter() - window_start
                self.log.log("train", progress.total_steps, {
                    "epoch": progress.epochs_done + 1, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                    "images": window_images, "seconds": elapsed, "images_per_s": window_images / max(elapsed, 1e-9),
                    "time": time.time()})
                window_start, window_images = time.perf_counter(), 0
            if progress.total_steps % cfg.save_latest_freq == 0:
                self.save("latest.pth")
        self._checked(window)  # before the epoch's checkpoints

    def _checked(self, window: LossWindow) -> float | None:
        try:
            return window.mean()
        except FloatingPointError as err:
            raise UserError(f"training stopped {err}. The last good checkpoint is {self.run_dir / 'latest.pth'}; "
                            f"try a lower --lr or --amp off") from None

    def _agree(self, usable: bool, stop: bool) -> tuple[bool, bool]:
        """(every process has a usable batch, some process must stop); under DDP all must step, or stop, together."""
        if self.process.world_size == 1:  # no tensor, so no device round trip per step
            return usable, stop
        flags = torch.tensor([int(not usable), int(stop)], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        return not flags[0], bool(flags[1])

    def _time_left(self, epoch: int, action: str) -> str:
        """For a schedule of fixed length: the time the remaining epochs will take at this run's pace so far."""
        if isinstance(self.stopper, EarlyStopping) or action == "stop" or epoch >= self.cfg.epochs:
            return ""
        done_here = epoch - self.run_start_epoch
        seconds = (time.perf_counter() - self.started) / done_here * (self.cfg.epochs - epoch)
        return f"; about {seconds:.0f} s left ({self.cfg.epochs - epoch} epochs)"

    def _average(self, epoch: int, train_loader: DataLoader) -> str:
        """--swa_epochs: add this epoch's weights to the average; after the last epoch, make the average (with its
        BatchNorm statistics) the model. What was done, for the epoch line."""
        cfg = self.cfg
        if self.average is None or epoch <= cfg.epochs - cfg.swa_epochs:
            return ""
        self.average.update(unwrap(self.model), epoch)
        if epoch < cfg.epochs:
            return ""
        averaged = copy.deepcopy(unwrap(self.model))  # an interrupt meanwhile leaves the model as it was
        self.average.copy_to(averaged)
        train_loader.sampler.set_epoch(cfg.epochs, start=0)  # an order of its own, the same on every run
        recompute_batchnorm(averaged, train_loader, self.device, normalization=self.normalization,
                            progress=self.process.is_main)
        unwrap(self.model).load_state_dict(averaged.state_dict())
        return (f"weights averaged over epochs {epoch - self.average.count + 1}-{epoch}, BatchNorm statistics "
                f"recomputed on the training set; ")

    def end_epoch(self, val_loader: DataLoader, train_loader: DataLoader) -> None:
        """Average the weights (--swa_epochs), validate, let early stopping set the LR (or stop), log, and write the
        checkpoints."""
        progress = self.progress
        averaged = self._average(progress.epochs_done + 1, train_loader)
        predictions = predict(self.model, val_loader, self.device, self.cfg.amp, normalization=self.normalization,
                              progress=self.process.is_main)
        # Every process holds the gathered list, so one logs it and all take the same decision.
        self.skip("val", val_loader.dataset, sorted(predictions.skipped.items()), write=self.process.is_main)
        too_many = self.too_many_bad("val", len(val_loader.dataset))
        if too_many:
            raise too_many
        warned = sum(distributed.gather_objects([self.warned])) + predictions.warnings
        self.warned = 0
        metrics = {**binary_metrics(predictions.labels, expit(predictions.logits)),
                   "loss": log_loss(predictions.labels, predictions.logits)}
        epoch = progress.epochs_done + 1
        action, is_best, lr = self.stopper.step(epoch, _watched(self.cfg.select_on, epoch, metrics),
                                                self.optimizer.param_groups[0]["lr"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        progress.epochs_done, progress.batches_done = epoch, 0
        progress.finished = action == "stop"
        self.log.log("val", progress.total_steps, {"epoch": epoch, **metrics, "lr": lr, "action": action,
                                                   "best": is_best})
        if self.process.is_main:
            print(f"epoch {epoch}: {averaged}val acc {metrics['acc']:.4f} ap {metrics['ap']:.4f} loss "
                  f"{metrics['loss']:.4f} (real {metrics['r_acc']:.4f}, fake {metrics['f_acc']:.4f}) -> {action}, "
                  f"lr {lr:g}"
                  + (", new best" if is_best else "") + self._time_left(epoch, action)
                  + (f"; {warned_note(warned)}" if warned else ""))
        self.save("latest.pth")
        if is_best:
            self.save("best.pth")
        if epoch % self.cfg.save_epoch_freq == 0:
            self.save(f"epoch_{epoch}.pth")
