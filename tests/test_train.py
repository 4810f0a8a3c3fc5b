import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

import engine.training
from data.synthetic import make_upsampling_set
from tests.helpers import AUTHORS_COMMAND, ROOT, free_port, raising_on_call, tiny_args
from train import main
from util.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return make_upsampling_set(tmp_path_factory.mktemp("small"), splits={"train": 8, "val": 4}, size=40)


def test_tiny_network_learns_the_upsampling_fingerprint(tmp_path):
    root = make_upsampling_set(tmp_path / "data", splits={"train": 100, "val": 32}, size=64)
    args = ["--dataroot", str(root), "--checkpoints_dir", str(tmp_path / "ck"), "--name", "tiny", "--arch",
            "resnet18", "--no_pretrained", "--load_size", "64", "--crop_size", "48", "--batch_size", "16",
            "--epochs", "5", "--num_workers", "2", "--lr", "1e-3", "--loss_freq", "5", "--save_latest_freq", "7",
            "--save_epoch_freq", "2"]
    main(args)
    run = tmp_path / "ck" / "tiny"
    names = {p.name for p in run.iterdir()}
    assert {"opt.json", "metrics.jsonl", "latest.pth", "best.pth", "epoch_2.pth", "epoch_4.pth"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["type"] == "val"]
    train = [r for r in records if r["type"] == "train"]
    assert [r["epoch"] for r in val] == [1, 2, 3, 4, 5] and len(train) == 25  # 5 epochs x 25 steps, every 5th
    assert all(r["images_per_s"] > 0 for r in train)
    assert max(r["ap"] for r in val) >= 0.95
    best = load_checkpoint(run / "best.pth")
    best_epoch = max(val, key=lambda r: (r["acc"], -r["epoch"]))["epoch"]
    assert best["progress"]["epochs_done"] == best_epoch and best["early_stopping"]["best_epoch"] == best_epoch
    assert json.loads((run / "opt.json").read_text())["augment"]["crop_size"] == 48


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_at_epoch_end_and_after_a_kill_is_exact(small_set, tmp_path, monkeypatch):
    ck = tmp_path / "ck"
    main(tiny_args(small_set, ck, "straight", "--epochs", "4"))
    straight = _weights(ck / "straight" / "latest.pth")

    main(tiny_args(small_set, ck, "split", "--epochs", "2"))
    main(tiny_args(small_set, ck, "split", "--epochs", "4", "--continue_train"))
    _assert_same(straight, _weights(ck / "split" / "latest.pth"))

    # A kill in epoch 3 (4 steps per epoch): `latest` from step 9 survives and resume replays steps 10-16.
    real_step = engine.training.train_step
    monkeypatch.setattr(engine.training, "train_step", raising_on_call(real_step, 11, SystemExit("killed")))
    with pytest.raises(SystemExit):
        main(tiny_args(small_set, ck, "killed", "--epochs", "4", "--save_latest_freq", "3"))
    monkeypatch.setattr(engine.training, "train_step", real_step)
    progress = load_checkpoint(ck / "killed" / "latest.pth")["progress"]
    assert progress == {"epochs_done": 2, "batches_done": 1, "total_steps": 9, "finished": False}
    main(tiny_args(small_set, ck, "killed", "--epochs", "4", "--save_latest_freq", "3", "--continue_train"))
    _assert_same(straight, _weights(ck / "killed" / "latest.pth"))


def test_cosine_keeps_the_last_epoch_and_a_resume_cannot_change_the_schedule(small_set, tmp_path, capsys):
    main(tiny_args(small_set, tmp_path, "cos", "--epochs", "3", "--lr_schedule", "cosine", "--select_on", "last"))
    best = load_checkpoint(tmp_path / "cos" / "best.pth")
    assert best["progress"]["epochs_done"] == 3  # --select_on last: best.pth is the last epoch
    assert best["early_stopping"] == {"best": 3.0, "best_epoch": 3}  # the LR curve comes from the options
    with pytest.raises(SystemExit) as exc:
        main(tiny_args(small_set, tmp_path, "cos", "--epochs", "4", "--continue_train"))
    assert exc.value.code == 2 and "was trained with other --lr_schedule, --select_on" in capsys.readouterr().err


def test_swa_averages_the_last_epochs_and_a_killed_run_resumes_to_the_same_weights(small_set, tmp_path, monkeypatch,
                                                                                   capsys):
    args = ("--epochs", "4", "--lr_schedule", "cosine", "--select_on", "last", "--swa_epochs", "2",
            "--save_latest_freq", "3", "--save_epoch_freq", "1")
    main(tiny_args(small_set, tmp_path, "straight", *args))
    out = capsys.readouterr().out
    assert "epoch 3: val acc" in out
    assert "epoch 4: weights averaged over epochs 3-4, BatchNorm statistics recomputed on the training set; val" in out
    run = tmp_path / "straight"
    latest, third = load_checkpoint(run / "latest.pth"), load_checkpoint(run / "epoch_3.pth")
    assert third["swa"]["count"] == 1 and latest["swa"]["count"] == 2 and "swa" not in load_checkpoint(
        run / "best.pth")
    for name, value in third["swa"]["params"].items():  # one update: the average is epoch 3's weights
        assert torch.equal(value, third["model"][name]), name
    for name, value in latest["swa"]["params"].items():  # the result is the average
        assert torch.equal(value, latest["model"][name]), name
    assert not torch.equal(latest["model"]["bn1.running_mean"], third["model"]["bn1.running_mean"])
    _assert_same(latest["model"], _weights(run / "best.pth"))

    # A kill in epoch 4 (4 steps per epoch): the resume restores the average of epoch 3 and ends where one run does.
    real_step = engine.training.train_step
    monkeypatch.setattr(engine.training, "train_step", raising_on_call(real_step, 14, SystemExit("killed")))
    with pytest.raises(SystemExit):
        main(tiny_args(small_set, tmp_path, "killed", *args))
    monkeypatch.setattr(engine.training, "train_step", real_step)
    assert load_checkpoint(tmp_path / "killed" / "latest.pth")["swa"]["count"] == 1
    main(tiny_args(small_set, tmp_path, "killed", *args, "--continue_train"))
    _assert_same(latest["model"], _weights(tmp_path / "killed" / "latest.pth"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # best.pth is for use: without the average, no resume from it
        main(tiny_args(small_set, tmp_path, "straight", *args, "--continue_train", "--epoch", "best"))
    assert exc.value.code == 2 and "holds no weight average (best.pth goes without it)" in capsys.readouterr().err


def test_existing_run_needs_continue_train(small_set, tmp_path, capsys):
    main(tiny_args(small_set, tmp_path, "once", "--epochs", "1"))
    with pytest.raises(SystemExit) as exc:
        main(tiny_args(small_set, tmp_path, "once", "--epochs", "1"))
    assert exc.value.code == 2 and "--continue_train" in capsys.readouterr().err


def test_non_finite_loss_stops_with_a_clear_message(small_set, tmp_path, monkeypatch, capsys):
    real_bce = torch.nn.functional.binary_cross_entropy_with_logits
    calls = {"n": 0}

    def nan_at_step_6(logits, target):
        calls["n"] += 1
        loss = real_bce(logits, target)
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(torch.nn.functional, "binary_cross_entropy_with_logits", nan_at_step_6)
    with pytest.raises(SystemExit) as exc:
        main(tiny_args(small_set, tmp_path, "nan", "--epochs", "3", "--save_latest_freq", "4"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "step 6: loss is nan" in err and "latest.pth" in err
    assert load_checkpoint(tmp_path / "nan" / "latest.pth")["total_steps"] == 4  # last good checkpoint kept


def test_authors_command_offline_stops_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit) as exc:
        main(shlex.split(AUTHORS_COMMAND) + ["--checkpoints_dir", str(tmp_path / "ck"), "--dataroot",
                                             str(tmp_path / "no_data_needed")])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and "--pretrained_path" in err and "--no_pretrained" in err


def test_torchrun_two_cpu_processes_match_one_process(small_set, tmp_path):
    """Two processes with batch 8 each see the same global batches as one process with batch 16.

    They differ only in BatchNorm statistics (per-process batches) and float summation order, so the validation
    metrics agree within 0.1 (accuracy and AP over 16 validation images) rather than exactly.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = tiny_args(small_set, tmp_path, "ddp", "--epochs", "2", "--device", "cpu")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(ROOT / "train.py"), *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "ddp"
    assert sorted(p.name for p in run.glob("*.pth")) == ["best.pth", "latest.pth"]
    val_ddp = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"val"' in x]
    assert len(val_ddp) == 2  # one writer: rank 0 only
    assert load_checkpoint(run / "latest.pth")["total_steps"] == 4  # 32 images / (2 x 8) per step, 2 epochs

    single = tiny_args(small_set, tmp_path, "single", "--epochs", "2", "--device", "cpu")
    single[single.index("--batch_size") + 1] = "16"
    main(single)
    val_one = [json.loads(x) for x in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()
               if '"val"' in x]
    for a, b in zip(val_ddp, val_one, strict=True):
        assert abs(a["acc"] - b["acc"]) <= 0.1 and abs(a["ap"] - b["ap"]) <= 0.1


def test_torchrun_with_unreadable_images(tmp_path):
    """Ranks that lose different numbers of images still step together and gather every readable score."""
    data = make_upsampling_set(tmp_path / "data", splits={"train": 8, "val": 4}, size=40)
    (data / "train" / "a" / "1_fake" / "0003.png").write_bytes(b"")
    (data / "val" / "b" / "0_real" / "0001.png").write_text("not an image")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(ROOT / "train.py"), *tiny_args(data, tmp_path, "ddp", "--epochs", "2", "--device", "cpu",
                                              "--max_bad_fraction", "0.1")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (tmp_path / "ddp" / "skipped.csv").read_text().splitlines()
    assert lines[0] == "split,path,reason"
    assert sorted(line.split(",")[0] + ":" + Path(line.split(",")[1]).name for line in lines[1:]) == [
        "train:0003.png", "val:0001.png"]
    val = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines() if '"val"' in x]
    assert len(val) == 2 and all(0.0 <= v["acc"] <= 1.0 for v in val)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_modes_train_and_resume_on_cpu(small_set, tmp_path, amp):
    main(tiny_args(small_set, tmp_path, amp, "--epochs", "1", "--amp", amp, "--device", "cpu"))
    main(tiny_args(small_set, tmp_path, amp, "--epochs", "2", "--amp", amp, "--device", "cpu", "--continue_train"))
    ckpt = load_checkpoint(tmp_path / amp / "latest.pth")
    assert ckpt["progress"]["epochs_done"] == 2
    assert ("scale" in ckpt["scaler"]) == (amp == "fp16")  # only fp16 uses (and saves) a gradient scaler
    assert all(torch.isfinite(v.float()).all() for v in ckpt["model"].values())


def test_completed_run_compares_the_recipe_only(small_set, tmp_path):
    from engine.training import completed_run
    from options import parse_train_options
    from util.checkpoint import save_checkpoint

    args = tiny_args(small_set, tmp_path, "done", "--epochs", "1")
    main(args)
    # Every checkpoint records how the detector is tested: center crops of the training crop size, or whole images.
    assert load_checkpoint(tmp_path / "done" / "best.pth")["test_protocol"] == {"crop_size": 32, "resize": None,
                                                                              "square": False}
    assert completed_run(parse_train_options(args))
    assert completed_run(parse_train_options([*args, "--num_workers", "2", "--max_bad_fraction", "0.5"]))
    assert not completed_run(parse_train_options([*args, "--test_no_crop"]))  # validation follows the protocol
    assert not completed_run(parse_train_options([*args, "--lr", "0.5"]))
    assert not completed_run(parse_train_options([*args[:-1], "2"]))  # --epochs 2: not trained to its end
    # A run saved before an option existed counts as trained with that option's default.
    latest = tmp_path / "done" / "latest.pth"
    checkpoint = load_checkpoint(latest)
    del checkpoint["options"]["class_bal"]
    save_checkpoint(latest, checkpoint)
    assert completed_run(parse_train_options(args))
    assert not completed_run(parse_train_options([*args, "--class_bal"]))


def test_whole_image_detectors_validate_on_whole_images_of_mixed_sizes(tmp_path):
    """--test_no_crop: validation batches whole images by size (no collate error), and the run records it."""
    from PIL import Image

    data = make_upsampling_set(tmp_path / "data", splits={"train": 8, "val": 4}, size=40)
    for path in sorted((data / "val").rglob("*.png"))[::3]:
        with Image.open(path) as img:
            img.resize((48, 40)).save(path)
    main(tiny_args(data, tmp_path, "whole", "--epochs", "1", "--no_resize", "--load_size", "256",
                   "--test_no_crop"))
    checkpoint = load_checkpoint(tmp_path / "whole" / "latest.pth")
    assert checkpoint["test_protocol"] == {"crop_size": None, "resize": None, "square": False}
    val = [json.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines() if '"val"' in x]
    assert len(val) == 1 and 0.0 <= val[0]["acc"] <= 1.0
