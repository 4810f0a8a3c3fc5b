"""NPR (Tan et al., CVPR 2024): the residual by hand, the network, its recipe and its test protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data.augment import AugmentConfig
from data.synthetic import make_upsampling_set
from engine.configs import PREPROCESSING, RECIPES, TrainConfig
from engine.early_stopping import StepDecay
from networks import build_model
from networks.npr import NPR, even_crop, npr_residual
from options import parse_eval_options, parse_train_options
from tests.helpers import write_png
from train import main as train_main
from util.checkpoint import load_checkpoint
from util.errors import UserError


def test_residual_of_a_constant_2x2_block_is_zero_and_of_a_checkerboard_is_not():
    blocks = torch.tensor([[1.0, 1.0, 5.0, 5.0], [1.0, 1.0, 5.0, 5.0], [2.0, 2.0, 7.0, 7.0], [2.0, 2.0, 7.0, 7.0]])
    assert torch.equal(npr_residual(blocks.expand(1, 3, 4, 4)), torch.zeros(1, 3, 4, 4))
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2  # 0 at the top-left of every block
    residual = npr_residual(checker.float().expand(1, 1, 4, 4))[0, 0]
    # Each pixel minus the top-left pixel of its block: the block's diagonal partners stay 0, the others become 1.
    assert torch.equal(residual, checker.float())


def test_residual_by_hand_on_a_small_array():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    expected = torch.tensor([[0, 1, 0, 1], [4, 5, 4, 5], [0, 1, 0, 1], [4, 5, 4, 5]], dtype=torch.float32)
    assert torch.equal(npr_residual(x)[0, 0], expected)


def test_odd_sides_are_cropped_to_even():
    assert even_crop(torch.zeros(1, 3, 33, 35)).shape == (1, 3, 32, 34)
    assert even_crop(torch.zeros(1, 3, 32, 34)).shape == (1, 3, 32, 34)
    model = NPR().eval()
    x = torch.randn(1, 3, 33, 35)
    with torch.no_grad():  # the extra row and column are dropped, not used
        assert torch.equal(model(x), model(x[..., :32, :34]))


def test_parameter_count_and_layout():
    model = build_model("npr", pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == 1_437_761  # "about 1.44 M"
    keys = model.state_dict()
    assert keys["conv1.weight"].shape == (64, 3, 3, 3)  # a 3x3 stride-2 stem
    assert keys["fc1.weight"].shape == (1, 512) and not any(k.startswith(("layer3", "layer4", "fc.")) for k in keys)
    assert len([k for k in keys if k.endswith("conv3.weight")]) == 3 + 4  # Bottlenecks in layer1 and layer2
    assert model.conv1.stride == (2, 2)


def test_a_bare_npr_state_dict_loads_without_arch(tmp_path: Path):
    from engine.inference import load_detector

    torch.manual_seed(0)
    model = NPR()
    torch.save(model.state_dict(), tmp_path / "NPR.pth")  # the authors' release: a bare state dict
    detector = load_detector(tmp_path / "NPR.pth", None, torch.device("cpu"))
    assert detector.arch == "npr" and detector.recorded is None and detector.recipe == "npr"
    # No record: NPR's own test protocol, as --preprocess npr (the paper's crop before families had one).
    assert (detector.protocol, detector.protocol_source) == (PREPROCESSING["npr"],
                                                              "NPR's test.py; the checkpoint records none")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(detector.model(x), model.eval()(x))


def test_npr_has_no_imagenet_weights():
    with pytest.raises(UserError, match="trained from scratch"):
        build_model("npr", pretrained=True)


def test_step_decay_follows_the_authors_loop():
    schedule, lr, lrs = StepDecay(every=10, factor=0.9), 2e-4, []
    for epoch in range(1, 51):
        action, _, lr = schedule.step(epoch, 0.5, lr)
        assert action != "stop"
        lrs.append(lr)
    # The authors decay at the end of epoch index 10, 20, 30, 40 (counting from 0): four times in 50 epochs.
    assert [e + 1 for e in range(1, 50) if lrs[e] != lrs[e - 1]] == [11, 21, 31, 41]
    assert lrs[-1] == pytest.approx(2e-4 * 0.9 ** 4)


def test_recipe_npr_fills_its_defaults_and_explicit_flags_win():
    cfg = parse_train_options(["--recipe", "npr"])
    assert (cfg.arch, cfg.no_pretrained, cfg.lr, cfg.batch_size, cfg.epochs) == ("npr", True, 2e-4, 32, 50)
    aug = cfg.augment
    assert (cfg.delr_freq, cfg.lr_decay, aug.square_resize, aug.blur_prob, aug.jpg_prob) == (10, 0.9, True, 0, 0)
    assert cfg.classes == ("car", "cat", "chair", "horse") and (aug.load_size, aug.crop_size) == (256, 224)
    assert cfg.test_protocol() == PREPROCESSING["npr"]
    mine = parse_train_options(["--recipe", "npr", "--lr", "1e-3", "--niter", "3", "--classes", "car,cat",
                                "--batch_size", "32"])
    assert (mine.lr, mine.epochs, mine.classes, mine.protocol, mine.batch_size) == (1e-3, 3, ("car", "cat"), None, 32)
    assert mine.delr_freq == 10  # not given: the recipe's
    # A flag that asks for something else in place of a recipe value replaces it too.
    stopping = parse_train_options(["--recipe", "npr", "--patience", "3", "--no_resize", "--arch", "resnet18"])
    assert (stopping.patience, stopping.delr_freq) == (3, 0)
    assert (stopping.augment.square_resize, stopping.augment.no_resize) == (False, True)
    paper = parse_train_options([])
    assert paper.recipe == "wang2020" and paper == parse_train_options(["--recipe", "wang2020"])
    assert (paper.arch, paper.lr, paper.delr_freq, paper.augment.square_resize) == ("resnet50", 1e-4, 0, False)
    assert set(RECIPES["npr"]) <= set(TrainConfig.__dataclass_fields__) | set(AugmentConfig.__dataclass_fields__)


@pytest.mark.parametrize(("argv", "message"), [
    (["--arch", "npr"], "--arch npr is trained from scratch: add --no_pretrained (or use --recipe npr)"),
    (["--recipe", "npr", "--pretrained_path", "w.pth"],
     "--arch npr is trained from scratch: no ImageNet weights apply to it; leave out --pretrained_path"),
    (["--recipe", "npr", "--init_gain", "0.1"], "--init_gain has no effect with --arch npr"),
    (["--recipe", "npr", "--delr_freq", "5", "--patience", "3"], "--patience has no effect with --delr_freq"),
    (["--lr_decay", "0.5"], "--lr_decay has no effect with no --delr_freq"),
])
def test_recipe_conflicts_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_train_options(argv)
    assert message in capsys.readouterr().err


def test_preprocess_npr_resizes_to_256_square_without_crop(tmp_path: Path):
    cfg = parse_eval_options(["--preprocess", "npr"])
    protocol = PREPROCESSING[cfg.preprocess]
    assert protocol.describe() == "resize to 256x256, whole image"
    arr = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    out = protocol.transform()(Image.fromarray(arr))
    expected = np.asarray(Image.fromarray(arr).resize((256, 256), Image.Resampling.BILINEAR))
    assert np.array_equal(out, expected)
    with pytest.raises(SystemExit):
        parse_eval_options(["--preprocess", "npr", "--no_crop"])


def test_tiny_npr_run_learns_the_upsampling_task(tmp_path: Path):
    root = make_upsampling_set(tmp_path / "data", splits={"train": 60, "val": 24}, size=32)
    train_main(["--recipe", "npr", "--dataroot", str(root), "--classes", "a,b", "--checkpoints_dir",
                str(tmp_path / "ck"), "--name", "npr", "--load_size", "32", "--crop_size", "32", "--niter", "3",
                "--delr_freq", "1", "--batch_size", "16", "--lr", "1e-3", "--num_workers", "0", "--loss_freq", "5"])
    run = tmp_path / "ck" / "npr"
    val = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in val if r["type"] == "val"]
    assert max(r["ap"] for r in val) >= 0.9
    assert [r["lr"] for r in val] == pytest.approx([1e-3, 0.9e-3, 0.81e-3])  # decayed after epochs 2 and 3
    opt = json.loads((run / "opt.json").read_text())
    assert (opt["recipe"], opt["arch"], opt["augment"]["square_resize"], opt["no_pretrained"]) == (
        "npr", "npr", True, True)
    best = load_checkpoint(run / "best.pth")
    assert best["test_protocol"] == {"crop_size": None, "resize": 32, "square": True}
    assert best["model"]["fc1.weight"].shape == (1, 512)


def test_npr_genimage_recipe_trains_on_tiled_crops_and_records_them(tmp_path: Path):
    """16 px images in the recipe's class folder: tiled up to the 32 px crop in training and validation, and the
    checkpoints record that test protocol."""
    root = make_upsampling_set(tmp_path / "data", splits={"train": 8, "val": 4}, classes=("sdv4",), size=16)
    train_main(["--recipe", "npr_genimage", "--dataroot", str(root), "--crop_size", "32", "--batch_size", "8",
                "--checkpoints_dir", str(tmp_path / "ck"), "--name", "sdv4", "--num_workers", "0"])
    run = tmp_path / "ck" / "sdv4"
    opt = json.loads((run / "opt.json").read_text())
    assert (opt["recipe"], opt["classes"], opt["epochs"], opt["seed"]) == ("npr_genimage", ["sdv4"], 1, 70)
    assert opt["augment"]["tile"] and opt["augment"]["no_resize"]
    assert load_checkpoint(run / "best.pth")["test_protocol"] == {"crop_size": 32, "resize": None, "square": False,
                                                                  "tile": True}
    # ... and eval.py, demo.py and the page load it with that protocol.
    from engine.inference import ProtocolRequest, load_detector

    detector = load_detector(run / "best.pth", None, torch.device("cpu"), ProtocolRequest())
    assert detector.protocol.tile and detector.protocol.describe() == \
        "no resize, a side under 32 tiled up to it, center crop 32"


def test_eval_of_an_npr_checkpoint_uses_its_protocol(tmp_path: Path, capsys):
    from demo import main as demo_main
    from eval import main as eval_main
    from util.checkpoint import save_checkpoint

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for label in ("0_real", "1_fake"):
        for i in range(3):
            write_png(tmp_path / "test" / "set" / label / f"{i}.png", rng.integers(0, 256, (37, 41, 3), np.uint8))
    save_checkpoint(tmp_path / "npr.pth", {"model": NPR().state_dict(), "options": {"arch": "npr"},
                                           "test_protocol": {"crop_size": None, "resize": 32, "square": True}})
    eval_main(["--dataroot", str(tmp_path / "test"), "-m", str(tmp_path / "npr.pth"), "--results_dir",
               str(tmp_path / "results"), "--num_workers", "0"])
    out = capsys.readouterr().out
    assert "test protocol: resize to 32x32, whole image (recorded in the checkpoint)" in out
    assert "set: 6 images" in out and "odd side" not in out
    demo_main(["-m", str(tmp_path / "npr.pth"), "-f", str(tmp_path / "test" / "set"), "--no_crop"])
    assert "note: 6 of 6 images looked at in" in capsys.readouterr().out  # 37x41: odd sides, cropped to 36x40


def test_quickstart_trains_npr_with_the_same_recipe_in_its_own_run():
    from commands.quickstart import train_config
    from options import parse_quickstart_options

    paper, npr = parse_quickstart_options([]), parse_quickstart_options(["--arch", "npr"])
    assert (paper.run_name, npr.run_name) == ("quickstart_default_seed0", "quickstart_default_seed0_npr")
    a, b = train_config(paper), train_config(npr)
    assert (a.arch, b.arch, b.no_pretrained) == ("resnet18", "npr", True)
    differing = {k for k in a.__dataclass_fields__ if getattr(a, k) != getattr(b, k)}
    assert differing == {"arch", "name"}  # the same data, seed and training settings
