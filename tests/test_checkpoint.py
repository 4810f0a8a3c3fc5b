import pickle
from pathlib import Path

import pytest
import torch
from torchvision import models

from networks import build_model
from util.checkpoint import CheckpointError, extract_state_dict, load_checkpoint, load_weights, save_checkpoint


def _release_checkpoint(path: Path) -> torch.nn.Module:
    """A file in the authors' release format: {'model', 'optimizer', 'total_steps'} with Adam moments."""
    torch.manual_seed(0)
    model = models.resnet50(num_classes=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "total_steps": 123}, path)
    return model


def test_release_format_loads_strictly(tmp_path):
    reference = _release_checkpoint(tmp_path / "blur_jpg_prob0.5.pth")
    ckpt = load_checkpoint(tmp_path / "blur_jpg_prob0.5.pth")
    assert ckpt["total_steps"] == 123 and "exp_avg" in ckpt["optimizer"]["state"][0]
    model = build_model("resnet50", pretrained=False)
    load_weights(model, extract_state_dict(ckpt), "release", "resnet50")
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.", "_orig_mod.module."])
def test_bare_and_prefixed_state_dicts(tmp_path, prefix):
    model = build_model("resnet18", pretrained=False)
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, tmp_path / "w.pth")
    other = build_model("resnet18", pretrained=False)
    load_weights(other, extract_state_dict(load_checkpoint(tmp_path / "w.pth")), "w.pth", "resnet18")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True))


def test_save_load_round_trip_is_exact_and_plain(tmp_path):
    model = build_model("resnet18", pretrained=False)
    optimizer = torch.optim.Adam(model.parameters())
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "total_steps": 7, "epoch": 2,
               "options": {"lr": 1e-4, "blur_sig": [0.0, 3.0], "classes": None}}
    save_checkpoint(tmp_path / "latest.pth", payload)
    back = load_checkpoint(tmp_path / "latest.pth")
    assert back["format_version"] == 1 and back["total_steps"] == 7 and back["options"]["blur_sig"] == [0.0, 3.0]
    for key, value in payload["model"].items():
        assert torch.equal(back["model"][key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]  # no temp files left
    with pytest.raises(ValueError, match="'model'"):
        save_checkpoint(tmp_path / "x.pth", {"optimizer": {}})


def test_wrong_architecture_is_one_clear_line(tmp_path):
    torch.save({"model": build_model("resnet18", pretrained=False).state_dict()}, tmp_path / "r18.pth")
    with pytest.raises(CheckpointError) as err:
        load_weights(build_model("resnet50", pretrained=False),
                     extract_state_dict(load_checkpoint(tmp_path / "r18.pth")), "r18.pth", "resnet50")
    message = str(err.value)
    assert "\n" not in message and "do not fit --arch resnet50" in message and "missing keys" in message


class _Payload:
    """Unpickling this creates a file: a stand-in for a checkpoint that runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()  # the payload is live when unpickled without restrictions
    marker = tmp_path / "pwned"
    torch.save({"model": {"fc.weight": torch.zeros(1)}, "extra": _Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def test_corrupt_truncated_and_missing_files(tmp_path):
    torch.save({"model": {"w": torch.ones(1000)}}, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint")
    for name in ("cut.pth", "junk.pth"):
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a tensor"):
        extract_state_dict({"model": {"a": 1}})


def test_crash_during_save_keeps_the_previous_file(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "latest.pth", {"model": {"w": torch.zeros(3)}, "total_steps": 1})

    def crash(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "latest.pth", {"model": {"w": torch.ones(3)}, "total_steps": 2})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "latest.pth")["total_steps"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]
