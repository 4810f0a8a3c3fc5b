import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import expit
from torch.utils.data import DataLoader

import demo
import eval as eval_script
from data import EvalTransform, Sample, scan_folder
from engine.evaluation import mean_row, set_row
from engine.inference import Scored, load_detector, score_samples
from networks import build_model
from tests.helpers import ROOT, run_main
from util.checkpoint import save_checkpoint
from util.metrics import binary_metrics

MIXED_SIZES = [(36, 44), (44, 36), (40, 40)]


@pytest.fixture(scope="module")
def bench(mini_bench, tmp_path_factory) -> Path:
    """A test root from the mini-benchmark: a sub-class set (its val split), a single set (one test generator),
    a set of mixed sizes (resized crops); its training split for calibration; a checkpoint."""
    root = tmp_path_factory.mktemp("bench")
    shutil.copytree(mini_bench / "val", root / "test" / "progan")
    shutil.copytree(mini_bench / "test" / "bilinear", root / "test" / "biggan")
    shutil.copytree(mini_bench / "train", root / "val")
    for folder in ("0_real", "1_fake"):
        (root / "test" / "mixed" / folder).mkdir(parents=True)
        for i in range(6):
            with Image.open(mini_bench / "test" / "transposed" / folder / f"{i:05d}.png") as img:
                img.resize(MIXED_SIZES[i % 3]).save(root / "test" / "mixed" / folder / f"{i}.png")
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained=False)
    save_checkpoint(root / "tiny.pth", {"model": model.state_dict(), "options": {"arch": "resnet18"}})
    return root


def run_eval(bench: Path, results: Path, *extra: str) -> Path:
    eval_script.main(["--dataroot", str(bench / "test"), "--model_path", str(bench / "tiny.pth"),
                      "--results_dir", str(results), "--num_workers", "0", "--batch_size", "4", *extra])
    return results / "tiny"


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def evaluated(bench, tmp_path_factory) -> Path:
    return run_eval(bench, tmp_path_factory.mktemp("results"), "--crop_size", "32", "--calibrate_on",
                    str(bench / "val"))


def test_eval_writes_every_file_with_the_right_counts(evaluated):
    assert {p.name for p in evaluated.iterdir()} == {"scores.csv", "summary.csv", "summary.md", "opt.json",
                                                     "calibration.json", "skipped.csv"}
    assert read_csv(evaluated / "skipped.csv") == []  # every image was readable
    scores = read_csv(evaluated / "scores.csv")
    assert list(scores[0]) == ["set", "subclass", "path", "label", "logit", "prob"]
    assert [r["set"] for r in scores] == ["progan"] * 24 + ["biggan"] * 16 + ["mixed"] * 12  # Table 2 order first
    assert {r["subclass"] for r in scores if r["set"] == "progan"} == {"group0", "group1", "group2"}
    assert {r["subclass"] for r in scores if r["set"] != "progan"} == {""}
    for r in scores:
        assert float(r["prob"]) == pytest.approx(float(expit(np.float32(r["logit"]))), abs=1e-7)
        assert r["label"] == ("1" if "1_fake" in r["path"] else "0")

    summary = read_csv(evaluated / "summary.csv")
    assert list(summary[0]) == ["set", "n_real", "n_fake", "n_skipped", "ap", "acc", "r_acc", "f_acc", "auc",
                                "acc_calibrated"]
    assert [(r["set"], r["n_real"], r["n_fake"], r["n_skipped"]) for r in summary] == [
        ("progan", "12", "12", "0"), ("biggan", "8", "8", "0"), ("mixed", "6", "6", "0"), ("mean", "26", "26", "0")]
    for row in summary[:-1]:  # the summary is the metric functions applied to scores.csv
        rows = [r for r in scores if r["set"] == row["set"]]
        expected = binary_metrics(np.array([int(r["label"]) for r in rows]), np.array([float(r["prob"]) for r in rows]))
        for key, value in expected.items():
            assert float(row[key]) == pytest.approx(value, abs=1e-7)
        assert 0.0 <= float(row["acc_calibrated"]) <= 1.0
    for key in ("ap", "acc", "auc", "acc_calibrated"):
        assert float(summary[-1][key]) == pytest.approx(np.mean([float(r[key]) for r in summary[:-1]]), abs=1e-7)

    table = (evaluated / "summary.md").read_text()
    assert "| set | real | fake | AP % |" in table and "| mean | 26 | 26 |" in table
    assert "calibrated threshold" in table and "center crop 32" in table


def test_one_loader_scores_every_set_as_if_each_were_scored_alone(bench, tmp_path, monkeypatch):
    import engine.inference

    loaders = []

    class Counted(DataLoader):
        def __init__(self, *args, **kwargs) -> None:
            loaders.append(kwargs["num_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(engine.inference, "DataLoader", Counted)
    out = run_eval(bench, tmp_path, "--no_crop", "--num_workers", "1")  # 3 sets, whole images of several sizes
    assert loaders == [1]  # one pool of workers for the run
    scores = read_csv(out / "scores.csv")
    detector = load_detector(bench / "tiny.pth", None, torch.device("cpu"))
    for name in ("progan", "biggan", "mixed"):
        alone, _ = score_samples(detector.model, scan_folder(bench / "test" / name), EvalTransform(crop_size=None),
                                 normalization=detector.normalization, batch_size=4, num_workers=0,
                                 device=torch.device("cpu"), amp="off", progress=False)
        assert [(r["path"], np.float32(r["logit"])) for r in scores if r["set"] == name] == \
            [(s.path, logit) for s, logit in zip(alone.samples, alone.logits, strict=True)]


def test_threshold_is_never_chosen_on_a_test_set_it_scores(bench, tmp_path):
    out = run_eval(bench, tmp_path, "--crop_size", "32", "--calibrate_on", "biggan", "--sets", "biggan,mixed")
    summary = {r["set"]: r for r in read_csv(out / "summary.csv")}
    assert summary["biggan"]["acc_calibrated"] == "" and summary["mixed"]["acc_calibrated"] != ""


def test_no_crop_batched_equals_batch_size_one(bench, tmp_path):
    batched = read_csv(run_eval(bench, tmp_path / "b8", "--no_crop", "--batch_size", "8") / "scores.csv")
    single = read_csv(run_eval(bench, tmp_path / "b1", "--no_crop", "--batch_size", "1") / "scores.csv")
    assert [r["path"] for r in batched] == [r["path"] for r in single]
    diff = max(abs(float(a["logit"]) - float(b["logit"])) for a, b in zip(batched, single, strict=True))
    assert diff <= 1e-5


@pytest.mark.parametrize("crop", [None, 32])
def test_demo_and_eval_agree_on_one_image(bench, tmp_path, capsys, crop):
    image = bench / "test" / "mixed" / "1_fake" / "1.png"  # 44 x 36
    flags = ["--no_crop"] if crop is None else ["--crop_size", str(crop)]
    scores = read_csv(run_eval(bench, tmp_path / "eval", "--sets", "mixed", *flags) / "scores.csv")
    eval_prob = next(float(r["prob"]) for r in scores if r["path"] == str(image))
    capsys.readouterr()
    demo.main(["-f", str(image), "-m", str(bench / "tiny.pth"), "--use_cpu", "--out", str(tmp_path / "d.csv"),
               *([] if crop is None else ["-c", str(crop)])])
    protocol = "whole image (the authors' demo; the checkpoint records none)" if crop is None else \
        f"center crop {crop} (set by the flags)"
    verdict = "synthetic" if eval_prob > 0.5 else "real"
    assert capsys.readouterr().out == (f"test protocol: no resize, {protocol}\nprobability of being synthetic: "
                                       f"{100 * eval_prob:.2f}% ({verdict} at threshold 50%)\n")
    assert float(read_csv(tmp_path / "d.csv")[0]["prob"]) == pytest.approx(eval_prob, abs=1e-6)


def test_demo_folder_reports_metrics_and_glob_lists_images(bench, tmp_path, capsys):
    demo.main(["-f", str(bench / "test" / "biggan"), "-m", str(bench / "tiny.pth"), "--num_workers", "0",
               "--out", str(tmp_path / "folder.csv")])
    out = capsys.readouterr().out
    assert "16 images (8 real, 8 fake): AP" in out
    rows = read_csv(tmp_path / "folder.csv")
    assert len(rows) == 16 and {r["label"] for r in rows} == {"0", "1"}
    demo.main(["-f", str(bench / "test" / "mixed" / "*" / "0.png"), "-m", str(bench / "tiny.pth"),
               "--num_workers", "0", "--out", str(tmp_path / "glob.csv")])
    rows = read_csv(tmp_path / "glob.csv")
    assert len(rows) == 2 and {r["label"] for r in rows} == {""}
    assert "2 images," in capsys.readouterr().out


def test_an_interrupted_folder_demo_keeps_the_parts_it_finished(bench, tmp_path, capsys, monkeypatch):
    import commands.demo

    folder = tmp_path / "set"
    shutil.copytree(bench / "test" / "biggan", folder)
    (folder / "0_real" / "000_empty.png").write_bytes(b"")  # in the first part

    def run(out: str) -> tuple[int, str]:
        code, _, err = run_main(demo.main, ["-f", str(folder), "-m", str(bench / "tiny.pth"), "--num_workers", "0",
                                            "--out", str(tmp_path / out)], capsys)
        return code, err

    assert run("whole.csv")[0] == 0
    whole = {r["path"]: r["prob"] for r in read_csv(tmp_path / "whole.csv")}
    (folder / "0_real" / "000_empty.png").unlink()
    assert run("whole.csv")[0] == 0 and not (tmp_path / "whole_skipped.csv").exists()  # the earlier list is gone
    (folder / "0_real" / "000_empty.png").write_bytes(b"")
    monkeypatch.setattr(commands.demo, "PART", 5)
    real_score_sets = commands.demo.score_sets

    def score_sets(*args, **kwargs):  # Ctrl-C while the third part is scored
        parts = real_score_sets(*args, **kwargs)
        yield next(parts)
        yield next(parts)
        raise KeyboardInterrupt

    monkeypatch.setattr(commands.demo, "score_sets", score_sets)
    code, err = run("part.csv")
    assert code == 130
    assert f"error: interrupted after 10 of 17 images; {tmp_path / 'part.csv'} holds their scores\n" in err
    rows = read_csv(tmp_path / "part.csv")  # the first two parts: 9 scored, 1 unreadable
    assert len(whole) == 16 and [r["path"] for r in rows] == list(whole)[:9]
    assert [Path(r["path"]).name for r in read_csv(tmp_path / "part_skipped.csv")] == ["000_empty.png"]
    # The scores of one go, up to the float rounding of other batch compositions.
    np.testing.assert_allclose([float(r["prob"]) for r in rows], [float(whole[r["path"]]) for r in rows], atol=1e-6)


def test_sweep_writes_table_scores_and_plot(bench, tmp_path):
    out = run_eval(bench, tmp_path, "--crop_size", "32", "--sweep", "blur", "0,1,2", "--sets", "progan,biggan")
    rows = read_csv(out / "sweep_blur.csv")
    assert [(r["value"], r["set"]) for r in rows] == [
        (v, s) for v in ("0", "1", "2") for s in ("progan", "biggan", "mean")]
    assert len(read_csv(out / "sweep_blur_scores.csv")) == 3 * (24 + 16)
    unperturbed = read_csv(run_eval(bench, tmp_path / "plain", "--crop_size", "32", "--sets", "progan,biggan")
                           / "summary.csv")
    assert [r["ap"] for r in rows[:3]] == [r["ap"] for r in unperturbed]  # sigma 0 is no blur
    assert rows[3]["ap"] != rows[0]["ap"]
    with Image.open(out / "sweep_blur.png") as png:
        assert png.size[0] > 1000 and png.size[1] > 700  # 7 x 4.5 inches at 200 dpi
    assert (out / "sweep_blur.pdf").read_bytes().startswith(b"%PDF")
    assert "| progan |" in (out / "sweep_blur.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--model_path", "missing.pth"], "missing.pth: no such checkpoint file"),
    (["--sets", "stylegan"], "test sets not found: stylegan"),
    (["--arch", "resnet50"], "weights do not fit --arch resnet50"),
    (["--calibrate_on", "nowhere"], "--calibrate_on nowhere: neither a set"),
])
def test_eval_errors_are_one_line(bench, tmp_path, capsys, argv, message):
    base = ["--dataroot", str(bench / "test"), "--model_path", str(bench / "tiny.pth"), "--results_dir",
            str(tmp_path), "--num_workers", "0"]
    with pytest.raises(SystemExit) as exc:
        eval_script.main(base + argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_demo_bad_inputs_are_one_line(bench, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    for target, message in ((bad, "cannot read the image"), (tmp_path / "none.png", "no such file or folder")):
        with pytest.raises(SystemExit) as exc:
            demo.main(["-f", str(target), "-m", str(bench / "tiny.pth")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_summary_mean_skips_undefined_metrics():
    one_label = Scored("fakes_only", [Sample("f.png", 1, "")], np.array([2.0], dtype=np.float32))
    both = Scored("both", [Sample("r.png", 0, ""), Sample("f.png", 1, "")], np.array([-1.0, 1.0], np.float32))
    rows = [set_row(one_label), set_row(both)]
    rows.append(mean_row(rows))
    assert math.isnan(rows[0]["ap"]) and rows[1]["ap"] == 1.0
    assert rows[2]["ap"] == 1.0 and rows[2]["acc_calibrated"] is None


def test_release_format_loads_as_resnet50_and_demo_reads_the_authors_examples(shared_reference, tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("resnet50", pretrained=False)
    # The authors' files: {'model', 'optimizer', 'total_steps'}, no architecture recorded.
    torch.save({"model": model.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "total_steps": 7},
               tmp_path / "blur_jpg_prob0.5.pth")
    capsys.readouterr()
    demo.main(["-f", str(shared_reference / "examples"), "-m", str(tmp_path / "blur_jpg_prob0.5.pth"),
               "--num_workers", "0"])
    out = capsys.readouterr().out
    assert "real.png" in out and "fake.png" in out and "2 images," in out


def test_bf16_autocast_scores_close_to_float32(bench, tmp_path):
    plain = read_csv(run_eval(bench, tmp_path / "fp32", "--crop_size", "32", "--sets", "biggan") / "scores.csv")
    bf16 = read_csv(run_eval(bench, tmp_path / "bf16", "--crop_size", "32", "--sets", "biggan", "--amp", "bf16")
                    / "scores.csv")
    diffs = [abs(float(a["logit"]) - float(b["logit"])) for a, b in zip(plain, bf16, strict=True)]
    assert 0 < max(diffs) < 0.05  # autocast really ran, and bf16 rounding stays small


def _run_checkpoint(tmp_path: Path, protocol: dict | None) -> Path:
    """best.pth in a run folder as train.py writes it: tiny.pth's weights, its options and a test protocol."""
    run = tmp_path / "checkpoints" / "myrun"
    run.mkdir(parents=True)
    (run / "opt.json").write_text("{}")
    torch.manual_seed(0)
    payload = {"model": build_model("resnet18", pretrained=False).state_dict(), "options": {"arch": "resnet18"}}
    if protocol is not None:
        payload["test_protocol"] = protocol
    save_checkpoint(run / "best.pth", payload)
    return run / "best.pth"


def test_a_checkpoint_carries_its_test_protocol(bench, tmp_path, capsys):
    checkpoint = _run_checkpoint(tmp_path, {"crop_size": None, "resize": None})
    capsys.readouterr()
    eval_script.main(["--dataroot", str(bench / "test"), "-m", str(checkpoint), "--sets", "mixed",
                      "--results_dir", str(tmp_path / "res"), "--num_workers", "0"])
    out = capsys.readouterr().out
    assert "test protocol: no resize, whole image (recorded in the checkpoint)" in out
    recorded = read_csv(tmp_path / "res" / "myrun_best" / "scores.csv")  # named after the run, not best.pth
    flags = read_csv(run_eval(bench, tmp_path / "flags", "--sets", "mixed", "--no_crop") / "scores.csv")
    assert [r["prob"] for r in recorded] == [r["prob"] for r in flags]

    image = bench / "test" / "mixed" / "0_real" / "0.png"
    demo.main(["-f", str(image), "-m", str(checkpoint)])
    assert "test protocol: no resize, whole image (recorded in the checkpoint)" in capsys.readouterr().out
    demo.main(["-f", str(image), "-m", str(checkpoint.parent)])  # a run folder means its best.pth
    assert "(recorded in the checkpoint)" in capsys.readouterr().out
    demo.main(["-f", str(image), "-m", str(checkpoint), "-c", "16"])
    assert "center crop 16 (set by the flags)" in capsys.readouterr().out


def test_released_weights_keep_the_paper_protocol_and_small_images_are_flagged(bench, tmp_path, capsys):
    run_eval(bench, tmp_path, "--sets", "biggan")  # 32 px images, no crop flag, no record
    out = capsys.readouterr().out
    assert "test protocol: no resize, center crop 224 (the paper's; the checkpoint records none)" in out
    assert "note: 16 of 16 images looked at in biggan are smaller than the 224 px crop and are zero-padded; " \
           "--no_crop scores whole images" in out
    run_eval(bench, tmp_path / "b", "--sets", "biggan", "--crop_size", "32")
    assert "note:" not in capsys.readouterr().out
    run_eval(bench, tmp_path / "c", "--sets", "biggan", "--no_crop")  # 32 px whole: as small as it may be
    assert "note:" not in capsys.readouterr().out


def test_a_whole_image_smaller_than_the_network_stride_gets_a_note(bench, tmp_path, capsys):
    Image.new("RGB", (1, 1), "gray").save(tmp_path / "dot.png")
    demo.main(["-f", str(tmp_path / "dot.png"), "-m", str(bench / "tiny.pth"), "--no_crop"])
    assert "note: 1 of 1 images looked at in " + str(tmp_path / "dot.png") + " have a side under 32 px; whole, " \
           "they are smaller than one cell of the network's coarsest features" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["text", "png", "folder", "missing_release"])
def test_checkpoint_errors_say_what_the_file_is(bench, tmp_path, capsys, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    if kind == "text":
        path = ROOT / "README.md"
        message = f"{path}: not a checkpoint (it holds text;"
    elif kind == "png":
        path = tmp_path / "model.pth"
        shutil.copy(bench / "test" / "mixed" / "0_real" / "0.png", path)
        message = f"{path}: not a checkpoint (it holds a PNG image;"
    elif kind == "folder":  # a run that has not finished an epoch: a run folder means its best.pth, here absent
        path = _run_checkpoint(tmp_path, None).parent
        (path / "best.pth").rename(path / "latest.pth")
        message = f"{path}: a folder, not a checkpoint file; pass {path / 'latest.pth'}"
    else:
        _run_checkpoint(tmp_path, None)
        path = Path("weights/blur_jpg_prob0.5.pth")
        message = ("weights/blur_jpg_prob0.5.pth: no such checkpoint file. Get the released weights with "
                   "`python -m weights.download blur_jpg_prob0.5`, or pass a detector you trained with "
                   "-m checkpoints/<run>/best.pth (here: checkpoints/myrun/best.pth)")
    code, _, err = run_main(demo.main, ["-f", str(bench / "test" / "mixed"), "-m", str(path)], capsys)
    assert code == 2 and err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1
