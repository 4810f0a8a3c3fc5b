"""UnivFD: the CLIP image tower against OpenAI's code (vendored by the authors), the ViT-L/14 layout, the released
head, the tower's download and conversion, training that stores only the head, and scoring by eval.py, demo.py
and the page. A tiny tower (32 px, 2 layers) registered by the tests stands in for ViT-L/14, whose weights are not
reachable offline."""

from __future__ import annotations

import hashlib
import importlib.util
import io
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

import demo
import eval as eval_script
from commands.configs import AppConfig, DemoConfig
from commands.demo import run_demo
from data import Normalization, load_rgb
from data.synthetic import make_upsampling_set
from engine.configs import TrainConfig
from engine.inference import load_detector
from engine.training import train_step
from networks import Family, Tower, build_model, family, recognize, register, registry
from networks.clip import ImageTower, UnivFD, convert_archive, fetch_tower, load_tower
from networks.families import univfd
from networks.families.univfd import CLIP_MEAN, CLIP_STD, VIT_L14, VitConfig
from networks.released import RELEASED, Released
from options import parse_quickstart_options
from tests.helpers import random_image, run_main, score_on_page, write_png
from tests.test_download import Server, server  # noqa: F401 (the local HTTP server fixture)
from train import main as train_main
from util.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from util.download import DownloadError, Expected
from util.errors import ConfigError, UserError
from weights.download import main as download_main

TINY = VitConfig(image_size=32, patch_size=8, width=32, layers=2, heads=4, output_dim=16)
SOURCE_SHA256 = hashlib.sha256(b"a stand-in for OpenAI's archive").hexdigest()


def reference(shared: Path) -> ModuleType:
    """OpenAI's CLIP model code as the UnivFD authors vendor it."""
    path = shared / "reference" / "univfd" / "clip_model.py"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    spec = importlib.util.spec_from_file_location("univfd_clip_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_tower_weights(config: VitConfig = TINY) -> dict[str, torch.Tensor]:
    """Fixed "pretrained" weights of a tower of this shape, with OpenAI's ``visual.`` keys and dtype (fp16)."""
    torch.manual_seed(1234)
    tower = ImageTower(**asdict(config))
    return {f"visual.{k}": v.half() for k, v in tower.state_dict().items()}


def write_tower(path: Path, weights: dict[str, torch.Tensor], sha256: str = SOURCE_SHA256) -> None:
    """A tower file as ``convert_archive`` writes it."""
    save_checkpoint(path, {"model": weights, "source": {"url": "http://x/ViT.pt", "sha256": sha256}})


def tiny_family(tmp_path: Path, monkeypatch, config: VitConfig = TINY, name: str = "univfd_tiny") -> Family:
    """A UnivFD family over a tiny tower whose weights file the test writes, registered for one test."""
    tower = Tower(name="a test's CLIP tower", url="http://127.0.0.1:9/ViT.pt", sha256=SOURCE_SHA256,
                  path=tmp_path / f"{name}_tower.pth", get="python -m weights.download univfd")
    write_tower(tower.path, tiny_tower_weights(config))
    monkeypatch.setattr(registry, "FAMILIES", dict(registry.FAMILIES))
    return register(univfd.spec(name, config, tower))


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch) -> Family:
    return tiny_family(tmp_path, monkeypatch)


# ------------------------------------------------------------------------------------------ the network
def test_tower_features_equal_openais_code_on_the_same_weights(shared_reference):
    clip_model = reference(shared_reference.parent)
    torch.manual_seed(0)
    theirs = clip_model.VisionTransformer(input_resolution=32, patch_size=8, width=64, layers=3, heads=4,
                                          output_dim=24).eval()
    ours = ImageTower(image_size=32, patch_size=8, width=64, layers=3, heads=4, output_dim=24).eval()
    ours.load_state_dict(theirs.state_dict())  # strict: the same names and shapes
    images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, features = theirs(images), ours(images)
    assert features.shape == (6, 24) and features.dtype == torch.float32
    assert expected.abs().max() > 0.5  # features of real size, so the tolerance means something
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)
    # The detector is those features into fc, and its tower is in eval mode or train mode alike.
    model = UnivFD(image_size=32, patch_size=8, width=64, layers=3, heads=4, output_dim=24)
    model.visual.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(model.train()(images), model.fc(expected), atol=1e-5, rtol=0)


def test_vit_l14_has_openais_names_and_shapes(shared_reference):
    clip_model = reference(shared_reference.parent)
    with torch.device("meta"):  # shapes without 1.2 GB of memory
        ours = build_model("univfd", pretrained=False).state_dict()
        theirs = clip_model.VisionTransformer(224, 14, 1024, 24, 16, 768).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {f"visual.{k}": tuple(v.shape) for k, v in theirs.items()} \
        | {"fc.weight": (1, 768), "fc.bias": (1,)}
    assert sum(v.numel() for k, v in ours.items() if k.startswith("visual.")) == 303_966_208
    assert (tuple(ours["visual.positional_embedding"].shape), tuple(ours["visual.proj"].shape)) == ((257, 1024),
                                                                                                    (1024, 768))
    assert "visual.transformer.resblocks.23.mlp.c_proj.weight" in ours
    assert asdict(VIT_L14) == {"image_size": 224, "patch_size": 14, "width": 1024, "layers": 24, "heads": 16,
                               "output_dim": 768}


def test_other_input_sizes_are_one_clear_error():
    with pytest.raises(UserError, match="takes 32x32 images, not 40x32: test with a center crop of 32"):
        ImageTower(**asdict(TINY))(torch.zeros(1, 3, 32, 40))


def test_the_spec():
    spec = family("univfd")
    assert (spec.mean, spec.std, spec.recipe, spec.trained) == (CLIP_MEAN, CLIP_STD, "univfd", ("fc.",))
    assert (spec.test_protocol.crop_size, spec.test_protocol.resize, spec.demo_protocol) == (224, None, None)
    assert spec.tower.record() == {"name": "OpenAI CLIP ViT-L/14 image tower",
                                   "sha256": "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"}
    assert spec.tower.sha256 in spec.tower.url  # OpenAI's URL names the file's sha256
    assert recognize({"weight", "bias"}) is spec and recognize({"fc.weight", "fc.bias"}) is spec
    assert recognize({"fc.weight", "fc.bias", "conv1.weight"}) is not spec
    assert RELEASED["univfd"].tower is spec.tower


# ------------------------------------------------------------------------------------------ the weights
def test_the_released_head_loads_as_it_is(shared_reference, tmp_path, monkeypatch):
    head = shared_reference / "univfd" / "fc_weights.pth"
    if not head.is_file():
        pytest.skip(f"{head} is absent")
    assert hashlib.sha256(head.read_bytes()).hexdigest() == RELEASED["univfd"].expected.sha256
    assert head.stat().st_size == RELEASED["univfd"].expected.size
    # A tower as wide as ViT-L/14's output (768 features) but small inside, so the test need not allocate it.
    probe = tiny_family(tmp_path, monkeypatch, VitConfig(28, 14, 32, 1, 2, 768), name="univfd_probe")
    detector = load_detector(head, "univfd_probe", torch.device("cpu"))
    released = torch.load(head, map_location="cpu", weights_only=True)
    assert torch.equal(detector.model.fc.weight, released["weight"]) and detector.model.fc.weight.shape == (1, 768)
    assert torch.equal(detector.model.fc.bias, released["bias"])
    assert torch.equal(detector.model.visual.proj, load_tower(probe.tower)["visual.proj"].float())
    assert (detector.recorded, detector.protocol.crop_size, detector.recipe) == (None, 28, "univfd")


def test_without_the_tower_file_eval_and_demo_name_the_download_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "weights"
    weights.mkdir()
    save_checkpoint(weights / "univfd.pth", {"model": {"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}})
    rng = np.random.default_rng(0)
    image = write_png(tmp_path / "test" / "set" / "1_fake" / "a.png", random_image(rng, 240, 240))
    write_png(tmp_path / "test" / "set" / "0_real" / "a.png", random_image(rng, 240, 240))
    for main, argv in ((eval_script.main, ["-m", "univfd", "--dataroot", str(tmp_path / "test")]),
                       (demo.main, ["-m", "univfd", "-f", str(image)])):
        code, _, err = run_main(main, argv, capsys)
        assert code == 2
        assert err.strip() == ("error: weights/clip_vit_l14_visual.pth: no such file: the weights of OpenAI CLIP "
                               "ViT-L/14 image tower are needed; get them with `python -m weights.download univfd`")
    (weights / "univfd.pth").unlink()
    code, _, err = run_main(demo.main, ["-m", "univfd", "-f", str(image)], capsys)
    assert code == 2 and "Get the released weights with `python -m weights.download univfd`" in err


def test_a_tower_file_made_from_another_download_is_refused(tiny, tmp_path):
    write_tower(tiny.tower.path, tiny_tower_weights(), sha256="0" * 64)
    with pytest.raises(CheckpointError, match=f"made from a file with sha256 {'0' * 64}, not from a test's CLIP "
                                              f"tower \\(sha256 {SOURCE_SHA256}\\); delete it and run"):
        build_model("univfd_tiny")


def _archive(weights: dict[str, torch.Tensor]) -> bytes:
    """A TorchScript archive laid out as OpenAI's: the image tower under ``visual.``, fp16, and a text part."""

    class Clip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = ImageTower(**asdict(TINY))
            self.token_embedding = nn.Embedding(10, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.visual(x)

    model = Clip()
    model.load_state_dict({**weights, "token_embedding.weight": torch.ones(10, 8)})
    buffer = io.BytesIO()
    with pytest.warns((FutureWarning, torch.jit.TracerWarning)):
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, 32, 32)).half(), buffer)
    return buffer.getvalue()


def test_the_tower_is_downloaded_checked_and_kept_as_plain_tensors(server: Server, tmp_path, monkeypatch,  # noqa: F811
                                                                   capsys):
    weights = tiny_tower_weights()
    archive = _archive(weights)
    head = io.BytesIO()
    torch.save({"weight": torch.ones(1, 16), "bias": torch.zeros(1)}, head)
    server.files = {"ViT-T.pt": archive, "fc_weights.pth": head.getvalue()}
    tower = Tower(name="a test's CLIP tower", url=f"{server.url}/ViT-T.pt", sha256=hashlib.sha256(archive).hexdigest(),
                  path=tmp_path / "tower" / "visual.pth", get="python -m weights.download univfd")
    monkeypatch.setitem(RELEASED, "univfd", Released(f"{server.url}/fc_weights.pth",
                                                     Expected(len(head.getvalue())), tower))
    code, out, _ = run_main(download_main, ["univfd", "--dir", str(tmp_path / "w")], capsys)
    assert code == 0 and out.splitlines() == [f"{tmp_path / 'w' / 'univfd.pth'}: sha256 verified",
                                              f"{tower.path}: a test's CLIP tower, made from ViT-T.pt (sha256 "
                                              f"verified)"]
    assert sorted(p.name for p in tower.path.parent.iterdir()) == ["visual.pth"]  # the archive is gone
    stored = torch.load(tower.path, map_location="cpu", weights_only=True)
    assert stored["source"] == {"url": tower.url, "sha256": tower.sha256}
    assert stored["model"].keys() == weights.keys()  # the image tower only, not the text part
    assert all(torch.equal(stored["model"][k], v) and v.dtype == torch.float16 for k, v in weights.items())
    server.requests.clear()
    assert fetch_tower(tower) == tower.path and server.requests == []  # made once

    # A download whose bytes are not the published ones makes no tower file.
    other = Tower(**{**asdict(tower), "path": tmp_path / "other" / "visual.pth", "sha256": "1" * 64})
    with pytest.raises(DownloadError, match="does not match the expected 1111"):
        fetch_tower(other)
    assert not other.path.exists()


def test_a_non_clip_archive_is_refused(tmp_path):
    archive = tmp_path / "x.pt"
    with pytest.warns(FutureWarning):  # TorchScript is deprecated; OpenAI's archives are TorchScript
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), archive)
    tower = Tower(name="t", url="http://x/x.pt", sha256="0" * 64, path=tmp_path / "t.pth", get="get it")
    with pytest.raises(UserError, match="no visual.\\* weights in this archive: not a CLIP model"):
        convert_archive(archive, tower)


# ------------------------------------------------------------------------------------------ training
def test_the_recipe_is_the_authors_code():
    cfg = TrainConfig(recipe="univfd")
    augment = cfg.augment
    assert (cfg.arch, cfg.batch_size, cfg.lr, cfg.beta1, cfg.optim, cfg.epochs, cfg.patience, cfg.lr_schedule) == \
        ("univfd", 256, 1e-4, 0.9, "adam", 100, 5, "plateau")
    assert (augment.load_size, augment.crop_size, augment.square_resize, augment.no_flip) == (256, 224, False, False)
    assert (augment.blur_prob, augment.blur_sig, augment.jpg_prob, augment.jpg_method, augment.jpg_qual) == \
        (0.5, (0.0, 3.0), 0.5, ("cv2", "pil"), (30, 100))
    assert cfg.val_perturb and cfg.test_protocol().describe() == "no resize, center crop 224"
    with pytest.raises(ConfigError, match="checkpoints name rather than hold: it starts from those weights "
                                          "\\(`python -m weights.download univfd`\\); leave out --no_pretrained"):
        TrainConfig(recipe="univfd", no_pretrained=True)


def test_the_quickstart_refuses_univfd_with_the_reason():
    with pytest.raises(SystemExit):
        parse_quickstart_options(["--arch", "univfd"])
    with pytest.raises(ConfigError, match="cannot train it"):
        from commands.quickstart import QuickstartConfig

        QuickstartConfig(arch="univfd")


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_a_train_step_pays_for_the_head_only(tiny, amp):
    torch.manual_seed(0)
    model = build_model("univfd_tiny")
    tower_before = {k: v.clone() for k, v in model.visual.state_dict().items()}
    features: list[torch.Tensor] = []
    model.visual.register_forward_hook(lambda module, inputs, output: features.append(output))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    assert [p.shape for group in optimizer.param_groups for p in group["params"]] == [(1, 16), (1,)]
    head_before = model.fc.weight.detach().clone()
    train_step(model.train(), images=torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 0, 1]),
               optimizer=optimizer, scaler=torch.amp.GradScaler("cpu", enabled=False), device=torch.device("cpu"),
               amp=amp)
    assert not features[0].requires_grad and features[0].grad_fn is None  # no graph through the tower
    assert features[0].dtype == (torch.bfloat16 if amp == "bf16" else torch.float32)
    assert all(p.grad is None for p in model.visual.parameters())
    assert all(torch.equal(v, tower_before[k]) for k, v in model.visual.state_dict().items())
    assert not torch.equal(model.fc.weight, head_before)


def _expected_prob(model: nn.Module, image: np.ndarray, size: int) -> float:
    top = (image.shape[0] - size) // 2
    left = (image.shape[1] - size) // 2
    crop = torch.from_numpy(image[top:top + size, left:left + size].copy())[None]
    with torch.no_grad():
        return float(torch.sigmoid(model(Normalization(CLIP_MEAN, CLIP_STD)(crop))).item())


@pytest.mark.slow
def test_univfd_trains_stores_the_head_resumes_and_scores(tiny, tmp_path, capsys, monkeypatch):
    root = make_upsampling_set(tmp_path / "data", splits={"train": 8, "val": 4}, classes=("a",), size=40)
    argv = ["--recipe", "univfd", "--arch", "univfd_tiny", "--dataroot", str(root), "--checkpoints_dir",
            str(tmp_path / "ck"), "--name", "u", "--load_size", "40", "--crop_size", "32", "--batch_size", "4",
            "--num_workers", "0", "--lr", "1e-2"]
    train_main([*argv, "--niter", "2"])
    run = tmp_path / "ck" / "u"
    checkpoint = load_checkpoint(run / "latest.pth")  # weights_only=True
    assert set(checkpoint["model"]) == {"fc.weight", "fc.bias"}  # the head, not the tower
    assert checkpoint["tower"] == tiny.tower.record()
    assert (checkpoint["options"]["arch"], checkpoint["options"]["recipe"]) == ("univfd_tiny", "univfd")
    assert checkpoint["test_protocol"] == {"crop_size": 32, "resize": None, "square": False}
    assert [len(group["params"]) for group in checkpoint["optimizer"]["param_groups"]] == [2]
    assert (run / "latest.pth").stat().st_size < 20_000

    train_main([*argv, "--niter", "3", "--continue_train"])  # resumes over the same tower
    resumed = load_checkpoint(run / "latest.pth")
    assert resumed["progress"]["epochs_done"] == 3 and set(resumed["model"]) == {"fc.weight", "fc.bias"}

    detector = load_detector(run / "latest.pth", None, torch.device("cpu"))
    assert detector.arch == "univfd_tiny" and detector.protocol_source == "recorded in the checkpoint"
    assert torch.equal(detector.model.fc.weight, resumed["model"]["fc.weight"])
    assert torch.equal(detector.model.visual.proj, tiny_tower_weights()["visual.proj"].float())
    image = str(next((root / "val").rglob("*.png")))
    expected = _expected_prob(detector.model, np.asarray(load_rgb(image)), 32)
    capsys.readouterr()
    assert float(run_demo(DemoConfig(file=image, model_path=run / "latest.pth", num_workers=0)).probs[0]) == \
        pytest.approx(expected, abs=1e-6)
    assert "test protocol: no resize, center crop 32 (recorded in the checkpoint)" in capsys.readouterr().out

    # The page serves it, as demo.py scores it.
    from commands.app import Scorer

    assert "univfd_tiny, recipe univfd" in Scorer(AppConfig(model_path=run / "latest.pth", num_workers=0)).describe()
    served, verdict = score_on_page(run / "latest.pth", image, monkeypatch)
    assert served == pytest.approx(expected, abs=1e-6) and verdict.endswith("at threshold 50%")

    # A head trained over another tower does not load over this one.
    save_checkpoint(tmp_path / "other.pth", {**resumed, "tower": {"name": "x", "sha256": "2" * 64}})
    with pytest.raises(CheckpointError, match="its head was trained over the tower"):
        load_detector(tmp_path / "other.pth", None, torch.device("cpu"))
