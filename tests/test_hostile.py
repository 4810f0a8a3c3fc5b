"""The hostile corpus (tests/hostile.py) through eval.py and demo.py: no traceback, every entry scored or listed,
memory bounded by a budget; and checkpoints that carry bad fields, each refused in one line."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import demo
import eval as eval_script
from data import SizeGroupedBatches, image_size, load_rgb
from data.datasets import BadImage, decode_rgb, walk_files
from networks import build_model
from tests.helpers import ROOT, random_image, run_main, tiny_args, write_png
from tests.hostile import EPS, Expected, bad_exif_tiff, build, huge_jpeg
from util.checkpoint import save_checkpoint


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, Expected]]:
    root = tmp_path_factory.mktemp("corpus")
    expected = build(root, seed=0, mutants=12)
    torch.manual_seed(0)
    save_checkpoint(root / "tiny.pth", {"model": build_model("resnet18", pretrained=False).state_dict(),
                                        "options": {"arch": "resnet18"}})
    return root, expected


def _accounted(expected: dict[str, Expected], scored: list[str], listed: dict[str, str]) -> None:
    """Every entry scored or listed, once, as it must be."""
    assert len(scored) == len(set(scored)) and not set(scored) & set(listed)
    assert sorted([*scored, *listed]) == sorted(expected)
    for path, want in expected.items():
        if want.outcome == "scored":
            assert path in scored, (path, listed.get(path))
        elif want.outcome == "listed":
            assert path in listed and re.search(want.reason, listed[path]), (path, listed.get(path))


@pytest.mark.parametrize("crop", [["--crop_size", "32"], ["--no_crop"]])
def test_eval_scores_or_lists_every_entry(corpus, tmp_path, capfd, crop):
    root, expected = corpus
    # capfd: libtiff writes to the process's stderr (file descriptor 2) itself, past Python's sys.stderr
    code, out, err = run_main(eval_script.main, ["--dataroot", str(root), "--model_path", str(root / "tiny.pth"),
                                                 "--results_dir", str(tmp_path), "--num_workers", "0", *crop], capfd)
    assert code == 0, err
    scores = _read(tmp_path / "tiny" / "scores.csv")
    skipped = {r["path"]: r["reason"] for r in _read(tmp_path / "tiny" / "skipped.csv")}
    _accounted(expected, [r["path"] for r in scores], skipped)
    # The name that is not UTF-8 is written as its own bytes, and said so.
    raw = [r["path"] for r in scores if "caf" in r["path"]]
    assert len(raw) == 2 and all(os.fsencode(p).endswith(b"caf\xe9_latin1.png") for p in raw)
    assert "2 file names are not valid UTF-8" in out
    # No server or decoder noise: warnings are counted, not printed, and reasons do not repeat the path.
    assert "Warning" not in err and "Decod" not in err and "TIFF" not in err
    warned = sum(decode_rgb(row["path"])[1] for row in scores)
    assert warned >= 1 and f"{warned} decoder warning" in out
    assert not any(path in reason for path, reason in skipped.items())


def test_demo_folder_with_out_and_a_strict_locale(corpus, tmp_path, capsys):
    root, expected = corpus
    out_csv = tmp_path / "demo.csv"
    code, out, err = run_main(demo.main, ["-f", str(root / "hostile"), "-m", str(root / "tiny.pth"),
                                          "--num_workers", "0", "--out", str(out_csv)], capsys)
    assert code == 0, err
    listed = {r["path"]: r["reason"] for r in _read(tmp_path / "demo_skipped.csv")}
    _accounted(expected, [r["path"] for r in _read(out_csv)], listed)
    assert "caf\\udce9_latin1.png" in out  # the byte 0xe9 as Python escapes it (PEP 383), whatever the locale
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.csv", "demo_skipped.csv"]  # and nothing else
    assert re.search(r"note: \d+ decoder warnings? \(damaged files", out)


def test_a_tiny_file_claiming_a_huge_image_is_never_decoded(tmp_path):
    path = tmp_path / "huge.jpg"
    path.write_bytes(huge_jpeg(np.random.default_rng(0)))
    assert path.stat().st_size < 2000
    with pytest.raises(BadImage, match=r"12000x12000 is 144.0 megapixels, over the limit of 64 \(--max_megapixels"):
        load_rgb(str(path))
    assert image_size(str(path), max_pixels=200_000_000) == (12000, 12000)


def test_formats_outside_the_allowlist_are_never_opened(tmp_path, monkeypatch):
    import subprocess

    path = tmp_path / "figure.jpg"
    path.write_bytes(EPS)

    def no_programs(*args, **kwargs):
        raise AssertionError(f"an external program ran: {args}")

    monkeypatch.setattr(subprocess, "check_call", no_programs)
    monkeypatch.setattr(subprocess, "Popen", no_programs)
    with pytest.raises(BadImage, match="not an image format we read"):
        load_rgb(str(path))


def test_any_error_of_a_decoder_lists_the_file(tmp_path, monkeypatch):
    path = tmp_path / "odd.png"
    Image.new("RGB", (8, 8)).save(path)

    def broken(img):
        raise KeyError("an unexpected key in a decoder")

    monkeypatch.setattr("data.datasets.to_rgb", broken)
    with pytest.raises(BadImage, match="KeyError"):
        load_rgb(str(path))


def test_whole_images_are_batched_within_the_memory_budget():
    sizes = [(100, 100)] * 5 + [(10, 10)] * 3
    batches = list(SizeGroupedBatches(sizes, batch_size=64, max_pixels=25_000))
    assert batches == [[0, 1], [2, 3], [4], [5, 6, 7]]
    assert list(SizeGroupedBatches([(300, 300)], batch_size=4, max_pixels=10)) == [[0]]  # alone when over


def test_a_whole_image_over_the_budget_is_listed_with_the_flag(corpus, tmp_path, capsys):
    root, _ = corpus
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (64, 64)).save(folder / "big.png")
    Image.new("RGB", (8, 8)).save(folder / "small.png")
    code, out, _ = run_main(demo.main, ["-f", str(folder), "-m", str(root / "tiny.pth"), "--num_workers", "0",
                                        "--no_crop", "--memory_budget", "0.00002"], capsys)
    assert code == 0
    assert re.search(r"big.png +skipped: 64x64 scored whole needs about .* GiB, over the memory budget .* "
                     r"\(--memory_budget raises it", out)
    assert re.search(r"small.png +[\d.]+%", out)


def test_links_never_leave_the_folder_nor_count_twice(tmp_path):
    for label in ("0_real", "1_fake"):
        (tmp_path / "set" / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "set" / label / "a.png")
    (tmp_path / "set" / "0_real" / "up").symlink_to("..")
    (tmp_path / "set" / "0_real" / "b.png").symlink_to(tmp_path / "set" / "0_real" / "a.png")
    walk = walk_files(tmp_path / "set" / "0_real")
    assert walk.images == [str(tmp_path / "set" / "0_real" / "a.png")]
    assert [(Path(p).name, reason) for p, reason in walk.refused] == [
        ("b.png", "file reached a second time, through a link (left out)"),
        ("up", "link to a folder outside the folder walked (left out)")]


def test_a_run_stopped_by_an_error_keeps_its_files_and_says_why(corpus, tmp_path, capsys, monkeypatch):
    import engine.evaluation

    root, _ = corpus

    def failing(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(engine.evaluation, "set_row", failing)
    code, _, err = run_main(eval_script.main, ["--dataroot", str(root), "--model_path", str(root / "tiny.pth"),
                                               "--results_dir", str(tmp_path), "--num_workers", "0",
                                               "--crop_size", "32"], capsys)
    assert code == 2
    assert err.splitlines()[-1].startswith("error: stopped by an error (RuntimeError: DefaultCPUAllocator")
    assert (tmp_path / "tiny" / "scores.csv").is_file() and _read(tmp_path / "tiny" / "skipped.csv")


# ----------------------------------------------------------------------------------------------- checkpoints
def _checkpoint(path: Path, **fields) -> Path:
    torch.manual_seed(0)
    save_checkpoint(path, {"model": build_model("resnet18", pretrained=False).state_dict(), **fields})
    return path


@pytest.mark.parametrize(("fields", "message"), [
    ({"options": ["resnet18"]}, "'options' is a list, not a dict"),
    ({"options": {"arch": "vgg"}}, "options.arch 'vgg' is none of"),
    ({"options": {"arch": "resnet18"}, "test_protocol": {"crop_size": 224, "flip": True}},
     "test_protocol has an unknown field 'flip'"),
    ({"options": {"arch": "resnet18"}, "test_protocol": {"crop_size": -5}},
     "test_protocol.crop_size -5 is not a positive number of pixels"),
])
def test_checkpoint_fields_are_checked_before_use(tmp_path, capsys, fields, message):
    path = _checkpoint(tmp_path / "odd.pth", **fields)
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    code, out, err = run_main(demo.main, ["-f", str(image), "-m", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err and str(path) in err


def test_nonfinite_weights_are_refused_unless_allowed(tmp_path, capsys):
    model = build_model("resnet18", pretrained=False)
    state = model.state_dict()
    state["fc.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    save_checkpoint(path, {"model": state, "options": {"arch": "resnet18"}})
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    code, _, err = run_main(demo.main, ["-f", str(image), "-m", str(path)], capsys)
    assert code == 2 and "1 weight tensors hold NaN or infinite values (e.g. fc.weight)" in err
    assert "--allow_nonfinite" in err
    code, out, _ = run_main(demo.main, ["-f", str(image), "-m", str(path), "--allow_nonfinite"], capsys)
    assert code == 0 and "nan%" in out


def test_checkpoint_messages_say_what_was_wrong(tmp_path, monkeypatch):
    from util.checkpoint import CheckpointError, load_checkpoint

    empty = tmp_path / "empty.pth"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(CheckpointError, match="an empty zip archive"):
        load_checkpoint(empty)
    path = _checkpoint(tmp_path / "ok.pth")

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(torch, "load", no_memory)
    with pytest.raises(CheckpointError, match="not enough memory to load it"):
        load_checkpoint(path)


def test_the_page_never_shows_a_path(tmp_path, capsys):
    from commands.app import not_scored

    err = OSError("Unable to locate Ghostscript on paths; gs -q -sOutputFile=/srv/uploads/tmp1234.png /srv/x.eps")
    text = not_scored(err, "/srv/uploads/abc/photo.jpg", "photo.jpg")
    assert "/srv" not in text and text == "not scored: the server failed on it (OSError)"
    bad = BadImage("/srv/uploads/abc/photo.jpg", "SyntaxError: broken data in /usr/lib/decoder/x")
    assert not_scored(bad, "/srv/uploads/abc/photo.jpg", "photo.jpg") == "not scored: SyntaxError: broken data in " \
                                                                         "<path>"
    assert capsys.readouterr().err.count("\n") == 2  # one line in the log each


def test_demo_prints_names_that_are_not_utf8_under_a_utf8_locale(corpus, tmp_path):
    root, _ = corpus
    folder = tmp_path / "raw"
    folder.mkdir()
    Image.new("RGB", (32, 32)).save(os.fsdecode(bytes(folder) + b"/caf\xe9.png"))
    result = subprocess.run([sys.executable, "demo.py", "-f", str(folder), "-m", str(root / "tiny.pth"),
                             "--num_workers", "0", "--out", str(tmp_path / "x.csv")], cwd=ROOT, capture_output=True,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr.decode()
    assert b"caf\\udce9.png" in result.stdout
    assert b"caf\xe9.png" in (tmp_path / "x.csv").read_bytes() and not (tmp_path / "x.csv.tmp").exists()


@pytest.mark.slow
def test_training_lists_a_bad_file_whose_name_is_not_utf8_and_counts_decoder_warnings(tmp_path, capsys):
    from data.synthetic import make_upsampling_set
    from train import main as train_main

    root = make_upsampling_set(tmp_path / "data", splits={"train": 8, "val": 4}, size=40)
    raw = os.fsdecode(bytes(root / "train" / "a" / "1_fake") + b"/caf\xe9.png")
    Path(raw).write_bytes(b"not an image")
    warned = root / "val" / "a" / "1_fake" / "bad_exif.tif"
    warned.write_bytes(bad_exif_tiff(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)))
    train_main(tiny_args(root, tmp_path / "ck", "run", "--epochs", "1", "--max_bad_fraction", "0.2"))
    assert [r["path"] for r in _read(tmp_path / "ck" / "run" / "skipped.csv")] == [raw]
    count = decode_rgb(str(warned))[1]
    assert count >= 1 and f"; {count} decoder warning" in capsys.readouterr().out


@pytest.mark.slow
def test_training_validates_whole_images_within_the_memory_budget(tmp_path, capsys):
    from data.synthetic import make_upsampling_set
    from train import main as train_main

    root = make_upsampling_set(tmp_path / "data", splits={"train": 8, "val": 4}, size=40)
    big = root / "val" / "a" / "0_real" / "big.png"
    write_png(big, random_image(np.random.default_rng(0), 64, 64))
    # 40x40 needs 0.49 MiB, 64x64 1.25 MiB: a budget of 1 MiB takes one small image per batch, and no big one.
    args = tiny_args(root, tmp_path / "ck", "run", "--epochs", "1", "--no_resize", "--test_no_crop",
                     "--memory_budget", str(1 / 1024), "--max_bad_fraction", "0.2")
    at = args.index("--load_size")
    train_main(args[:at] + args[at + 2 :])
    ((row),) = _read(tmp_path / "ck" / "run" / "skipped.csv")
    assert row["path"] == str(big) and "64x64 scored whole needs about" in row["reason"] \
        and "over the memory budget" in row["reason"]
    assert f"skipped {big}: 64x64" in capsys.readouterr().out
