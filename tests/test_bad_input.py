"""Hostile input: every kind of bad file beside good ones, odd folders, reruns, interrupts, kills during a save."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import demo
import engine.training
import eval as eval_script
from data import BadImage, DatasetError, list_images, load_rgb, scan_folder
from data.synthetic import make_upsampling_set
from networks import build_model
from tests.helpers import ROOT, raising_on_call, run_main, tiny_args
from train import main as train_main
from util.checkpoint import load_checkpoint, save_checkpoint

AS_ROOT = os.geteuid() == 0  # root reads files whatever their permissions


def _png_bytes(arr: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png() -> bytes:
    """A PNG header that announces 40000 x 40000 pixels (over PIL's decompression-bomb limit) and little data."""
    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 100)) \
        + _chunk(b"IEND", b"")


def _good_and_odd(folder: Path, rng: np.random.Generator) -> list[str]:
    """Readable files, some of them unusual; all must be scored."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    Image.fromarray(rgb(40, 40)).save(folder / "plain.png")
    Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)).save(folder / "gray16.png")
    Image.fromarray(rgb(40, 40)).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb(40, 40)).convert("LA").save(folder / "gray_alpha.png")
    frames = [Image.fromarray(rgb(40, 40)) for _ in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    frames[0].save(folder / "pages.tiff", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": not applied (the authors' code does not apply it either)
    Image.fromarray(rgb(30, 40)).save(folder / "rotated.jpg", exif=exif)
    Image.fromarray(rgb(3, 3)).save(folder / "tiny.png")  # smaller than the crop: zero-padded
    return sorted(str(p) for p in folder.iterdir())


def _bad(folder: Path, rng: np.random.Generator) -> dict[str, str]:
    """One file of each bad kind; returns name -> the reason that must be reported."""
    good_png = _png_bytes(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(good_png[: len(good_png) // 2])
    (folder / "corrupt.png").write_bytes(good_png[:40] + bytes(rng.integers(0, 256, 400, dtype=np.uint8)))
    (folder / "text.jpg").write_text("this is not a JPEG\n")
    (folder / "bomb.png").write_bytes(_bomb_png())
    (folder / "dangling.png").symlink_to(folder / "missing.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    os.mkfifo(folder / "pipe.png")  # opening it would block forever
    expected = {"empty.png": "empty file", "truncated.png": "truncated",
                "corrupt.png": "not an image format|Truncated File Read",
                "text.jpg": "not an image format", "bomb.png": "decompression bomb", "dangling.png": "dangling symlink",
                "loop.png": "symlink loop", "pipe.png": "not a regular file"}
    if not AS_ROOT:
        (folder / "locked.png").write_bytes(good_png)
        (folder / "locked.png").chmod(0)
        expected["locked.png"] = "permission denied"
    return expected


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, list[str], dict[str, str]]:
    """<root>/hostile/{0_real,1_fake}: good and odd images in both, every bad kind in 1_fake, a folder loop."""
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    good = _good_and_odd(root / "hostile" / "0_real", rng) + _good_and_odd(root / "hostile" / "1_fake", rng)
    bad = _bad(root / "hostile" / "1_fake", rng)
    (root / "hostile" / "0_real" / "again").symlink_to(root / "hostile" / "0_real")  # a folder loop
    torch.manual_seed(0)
    save_checkpoint(root / "tiny.pth", {"model": build_model("resnet18", pretrained=False).state_dict(),
                                        "options": {"arch": "resnet18"}})
    return root, good, bad


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


# The folder loop's link is walked once, and listed: what a walk refuses is reported as skipped.
LOOP = {"again": "folder reached a second time"}


def test_each_bad_file_gives_its_reason(hostile):
    root, _, bad = hostile
    for name, reason in bad.items():
        with pytest.raises(BadImage, match=reason):
            load_rgb(str(root / "hostile" / "1_fake" / name))


def test_folder_loops_are_walked_once(hostile):
    root, good, _ = hostile
    listed = list_images(root / "hostile" / "0_real")
    assert listed == [p for p in good if "/0_real/" in p]


@pytest.mark.parametrize("crop", [["--crop_size", "32"], ["--no_crop"]])
@pytest.mark.parametrize("workers", ["0", "2"])
def test_eval_scores_the_good_and_lists_the_bad(hostile, tmp_path, capsys, crop, workers):
    root, good, bad = hostile
    argv = ["--dataroot", str(root), "--model_path", str(root / "tiny.pth"), "--results_dir", str(tmp_path),
            "--batch_size", "4", "--num_workers", workers, *crop]
    code, out, _ = run_main(eval_script.main, argv, capsys)
    assert code == 0
    assert sorted(r["path"] for r in _read(tmp_path / "tiny" / "scores.csv")) == good
    skipped = {Path(r["path"]).name: r["reason"] for r in _read(tmp_path / "tiny" / "skipped.csv")}
    listed = {**bad, **LOOP}
    assert skipped.keys() == listed.keys()
    for name, reason in listed.items():
        assert re.search(reason, skipped[name]), name
    (summary, _mean) = _read(tmp_path / "tiny" / "summary.csv")
    assert (int(summary["n_real"]), int(summary["n_fake"]), int(summary["n_skipped"])) == (8, 8, len(listed))
    assert f"{len(listed)} unreadable skipped" in out

    assert f"results: {tmp_path / 'tiny'}" in out
    # The same command again must not replace these results: it writes beside them, and says where.
    code, out, _ = run_main(eval_script.main, argv, capsys)
    assert code == 0 and f"writing to {tmp_path / 'tiny_2'}" in out and f"results: {tmp_path / 'tiny_2'}" in out
    assert _read(tmp_path / "tiny_2" / "scores.csv") == _read(tmp_path / "tiny" / "scores.csv")
    assert json.loads((tmp_path / "tiny_2" / "opt.json").read_text())["name"] == "tiny_2"
    code, _, err = run_main(eval_script.main, [*argv, "--overwrite", "--strict"], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{len(bad) + 1} images could not be read" in err
    assert (tmp_path / "tiny" / "skipped.csv").is_file()


def test_demo_folder_reports_skips_and_single_bad_files_fail_in_one_line(hostile, tmp_path, capsys):
    root, good, bad = hostile
    folder = root / "hostile"
    code, out, _ = run_main(demo.main, ["-f", str(folder), "-m", str(root / "tiny.pth"), "--num_workers", "0",
                                    "--out", str(tmp_path / "demo.csv")], capsys)
    assert code == 0
    listed = {**bad, **LOOP}
    assert out.count("skipped: ") == len(listed)
    assert f"{len(good)} images (8 real, 8 fake; {len(listed)} unreadable" in out
    assert {Path(r["path"]).name for r in _read(tmp_path / "demo_skipped.csv")} == set(listed)
    code, _, err = run_main(demo.main, ["-f", str(folder), "-m", str(root / "tiny.pth"), "--num_workers", "0",
                                    "--strict"], capsys)
    assert code == 2 and "--strict" in err

    for name, reason in bad.items():
        code, out, err = run_main(demo.main, ["-f", str(folder / "1_fake" / name), "-m", "unused.pth"], capsys)
        assert code == 2 and out == "", name
        assert err.count("\n") == 1 and name in err and re.search(reason, err), name
    with pytest.raises(BadImage):  # --debug shows the traceback instead
        demo.main(["-f", str(folder / "1_fake" / "empty.png"), "-m", "unused.pth", "--debug"])


def test_folder_problems_name_the_path(tmp_path, capsys):
    rng = np.random.default_rng(0)
    model = tmp_path / "tiny.pth"
    save_checkpoint(model, {"model": build_model("resnet18", pretrained=False).state_dict(),
                            "options": {"arch": "resnet18"}})
    one_label = tmp_path / "test" / "onlyfake" / "1_fake"
    one_label.mkdir(parents=True)
    (tmp_path / "test" / "onlyfake" / "0_real").mkdir()  # an empty class folder
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(one_label / f"{i}.png")
    (tmp_path / "test" / "notes").mkdir()  # not a set: ignored, and said so
    argv = ["--dataroot", str(tmp_path / "test"), "--model_path", str(model), "--results_dir", str(tmp_path / "r"),
            "--num_workers", "0", "--crop_size", "32"]
    code, out, _ = run_main(eval_script.main, argv, capsys)
    assert code == 0 and "ignored" in out and "notes" in out
    (row, _mean) = _read(tmp_path / "r" / "tiny" / "summary.csv")
    assert (row["n_real"], row["n_fake"], row["ap"], row["auc"]) == ("0", "3", "nan", "nan")  # undefined, no crash

    code, _, err = run_main(eval_script.main, [*argv[:1], str(tmp_path / "absent"), *argv[2:]], capsys)
    assert code == 2 and str(tmp_path / "absent") in err and "no such folder" in err
    mixed = tmp_path / "mixed"
    for folder in ("0_real", "car/0_real"):
        (mixed / folder).mkdir(parents=True)
    with pytest.raises(DatasetError, match=f"{mixed} mixes levels"):
        scan_folder(mixed)


# ------------------------------------------------------------------------------------------------- training
@pytest.fixture
def training_set(tmp_path) -> Path:
    return make_upsampling_set(tmp_path / "data", splits={"train": 8, "val": 4}, size=40)


@pytest.mark.slow
def test_training_skips_and_logs_bad_images_and_stops_when_too_many(training_set, tmp_path, capsys):
    fake = training_set / "train" / "a" / "1_fake"
    (fake / "0000.png").write_bytes(b"")
    (fake / "0001.png").write_text("not an image")
    images = sorted(training_set.glob("*/*/*/*.png"))
    for image in images:  # what a zip made on a Mac holds: a ._name beside every file, more than all the bad allowed
        (image.parent / f"._{image.name}").write_bytes(b"\x00\x05\x16\x07")
    ck = tmp_path / "ck"
    train_main(tiny_args(training_set, ck, "tolerant", "--epochs", "2", "--max_bad_fraction", "0.1"))
    rows = _read(ck / "tolerant" / "skipped.csv")  # once each, over two epochs
    bad = [(r["split"], Path(r["path"]).name) for r in rows if not Path(r["path"]).name.startswith("._")]
    assert sorted(bad) == [("train", "0000.png"), ("train", "0001.png")]
    hidden = [r for r in rows if Path(r["path"]).name.startswith("._")]
    assert len(hidden) == len(images) and {r["reason"] for r in hidden} == {"hidden file (left out)"}
    assert f"left out {len(images)} entries the folder walk refuses" in capsys.readouterr().out
    assert load_checkpoint(ck / "tolerant" / "latest.pth")["progress"]["epochs_done"] == 2
    train_main(tiny_args(training_set, ck, "tolerant", "--epochs", "3", "--max_bad_fraction", "0.1",
                         "--continue_train"))
    resumed = _read(ck / "tolerant" / "skipped.csv")  # the resume meets them all again and lists none twice
    assert sorted(r["path"] for r in resumed) == sorted(r["path"] for r in rows)

    with pytest.raises(SystemExit) as exc:
        train_main(tiny_args(training_set, ck, "strict", "--epochs", "1", "--max_bad_fraction", "0.05"))
    assert exc.value.code == 2
    assert "2 of 32 train images are unreadable" in capsys.readouterr().err


def _append_below_header(path: Path, line: str, barrier) -> None:
    from util.report import create_once

    barrier.wait()  # every process at the same moment, as ranks meeting their first unreadable image
    create_once(path, "split,path,reason\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, line.encode())
    os.close(fd)


def test_skipped_csv_header_is_written_once_by_racing_processes(tmp_path):
    import multiprocessing

    path = tmp_path / "skipped.csv"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    workers = [context.Process(target=_append_below_header, args=(path, f"train,{k}.png,truncated\n", barrier))
               for k in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0] * 8
    lines = path.read_text().splitlines()
    assert lines[0] == "split,path,reason" and sorted(lines[1:]) == sorted(f"train,{k}.png,truncated" for k in range(8))
    assert [p.name for p in tmp_path.iterdir()] == ["skipped.csv"]  # nothing left aside


def test_create_once_when_another_process_wins_or_links_are_missing(tmp_path, monkeypatch):
    import errno

    from util.report import create_once

    path = tmp_path / "skipped.csv"
    path.write_text("split,path,reason\ntrain,a.png,truncated\n")
    # Another rank created the file between this one's check and its link: the link fails, the file stays.
    monkeypatch.setattr(Path, "exists", lambda self: False)
    create_once(path, "split,path,reason\n")
    assert path.read_text() == "split,path,reason\ntrain,a.png,truncated\n"

    def no_link(*_):
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(os, "link", no_link)  # such a file system: an exclusive create instead
    create_once(path, "split,path,reason\n")
    create_once(tmp_path / "other.csv", "h\n")
    assert path.read_text().count("split,path,reason") == 1 and (tmp_path / "other.csv").read_text() == "h\n"

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", full)  # any other failure is the caller's to see
    with pytest.raises(OSError, match="No space left"):
        create_once(tmp_path / "third.csv", "h\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv", "skipped.csv"]  # nothing left aside


@pytest.mark.slow
def test_ctrl_c_saves_latest_and_resume_finishes(training_set, tmp_path, monkeypatch, capsys):
    real_step = engine.training.train_step
    monkeypatch.setattr(engine.training, "train_step", raising_on_call(real_step, 6, KeyboardInterrupt()))
    ck = tmp_path / "ck"
    with pytest.raises(SystemExit) as exc:
        train_main(tiny_args(training_set, ck, "run", "--epochs", "3", "--save_latest_freq", "100"))
    assert exc.value.code == 130
    last = capsys.readouterr().err.strip().split("\n")[-1]  # after the progress bars
    assert last.startswith("error: interrupted at step 5:") and last.endswith("--continue_train")
    assert load_checkpoint(ck / "run" / "latest.pth")["progress"]["total_steps"] == 5
    monkeypatch.setattr(engine.training, "train_step", real_step)
    train_main(tiny_args(training_set, ck, "run", "--epochs", "3", "--continue_train"))
    assert load_checkpoint(ck / "run" / "latest.pth")["progress"]["epochs_done"] == 3
    # The resume recorded its options beside the run's first opt.json instead of replacing it.
    assert not json.loads((ck / "run" / "opt.json").read_text())["continue_train"]
    assert json.loads((ck / "run" / "opt_resume_step5.json").read_text())["continue_train"]


_SLOW_SAVE = """
import sys, time, torch
import util.checkpoint
real_save = torch.save
count = {"n": 0}
def slow_save(obj, f):
    count["n"] += 1
    if count["n"] == 3:  # the third checkpoint write: stall half-way and wait to be killed
        f.write(b"half a checkpoint")
        f.flush()
        open(sys.argv[1], "w").close()
        time.sleep(600)
    real_save(obj, f)
util.checkpoint.torch.save = slow_save
from train import main
main(sys.argv[2:])
"""


@pytest.mark.slow
def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(training_set, tmp_path):
    ck = tmp_path / "ck"
    marker = tmp_path / "writing"
    args = tiny_args(training_set, ck, "run", "--epochs", "3", "--save_latest_freq", "100")
    process = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(marker), *args], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, "training ended before the third save"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Writes 1 and 2 were latest.pth and best.pth of epoch 1; write 3 (epoch 2's latest) died half-way.
    assert load_checkpoint(ck / "run" / "latest.pth")["progress"]["epochs_done"] == 1
    train_main([*args, "--continue_train"])
    assert load_checkpoint(ck / "run" / "latest.pth")["progress"]["epochs_done"] == 3


def test_ctrl_c_in_eval_leaves_valid_scores_of_the_finished_sets(tmp_path, monkeypatch, capsys):
    import engine.evaluation

    rng = np.random.default_rng(0)
    for set_name in ("first", "second"):
        for label in ("0_real", "1_fake"):
            folder = tmp_path / "test" / set_name / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    save_checkpoint(tmp_path / "tiny.pth", {"model": build_model("resnet18", pretrained=False).state_dict(),
                                            "options": {"arch": "resnet18"}})
    # Ctrl-C as the second set's scores arrive.
    monkeypatch.setattr(engine.evaluation, "set_row", raising_on_call(engine.evaluation.set_row, 2,
                                                                      KeyboardInterrupt()))
    code, _, err = run_main(eval_script.main, ["--dataroot", str(tmp_path / "test"), "--model_path",
                                           str(tmp_path / "tiny.pth"), "--results_dir", str(tmp_path / "r"),
                                           "--num_workers", "0", "--crop_size", "32"], capsys)
    assert code == 130 and err.split("\r")[-1].startswith("error: interrupted:")  # after the progress bar
    out = tmp_path / "r" / "tiny"
    assert f"{out / 'scores.csv'} holds the finished sets (first); summary.csv and summary.md were not written. " \
           "Run the same command with --name tiny --resume" in err
    assert not (out / "summary.csv").exists()
    rows = _read(out / "scores.csv")
    assert [r["set"] for r in rows] == ["first"] * 4 and all(r["prob"] for r in rows)

    # --resume keeps the first set and scores the second: the same files as one uninterrupted run.
    monkeypatch.undo()
    argv = ["--dataroot", str(tmp_path / "test"), "--model_path", str(tmp_path / "tiny.pth"), "--num_workers", "0",
            "--crop_size", "32"]
    code, printed, _ = run_main(eval_script.main, [*argv, "--results_dir", str(tmp_path / "r"), "--resume"], capsys)
    assert code == 0 and "first: 4 images" in printed and "(scored by the interrupted run)" in printed
    assert run_main(eval_script.main, [*argv, "--results_dir", str(tmp_path / "whole")], capsys)[0] == 0
    for name in ("scores.csv", "summary.csv", "summary.md"):
        assert (out / name).read_text() == (tmp_path / "whole" / "tiny" / name).read_text(), name
    assert not (out / "progress.json").exists()
    code, _, err = run_main(eval_script.main, [*argv, "--results_dir", str(tmp_path / "r"), "--resume"], capsys)
    assert code == 2 and "no interrupted run to resume" in err
    code, _, err = run_main(eval_script.main, [*argv, "--results_dir", str(tmp_path / "whole"), "--overwrite",
                                               "--resume"], capsys)
    assert code == 2 and "--resume continues a plain run; it excludes --overwrite and --sweep" in err
