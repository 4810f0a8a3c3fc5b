import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import torch
from torchvision import models

from networks import build_model, family, names
from networks.resnet import resnet
from tests.helpers import ROOT
from util.errors import UserError


# NPR: test_npr.py; UnivFD (300 M tower parameters, 224 px inputs only): test_univfd.py on a tiny tower
@pytest.mark.parametrize("arch", [a for a in names() if family(a).pretrained is not None and family(a).tower is None])
def test_every_arch_has_one_logit_and_a_gaussian_head(arch):
    torch.manual_seed(0)
    model = build_model(arch, pretrained=False, init_gain=0.02).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 1)
    head = model.fc if hasattr(model, "fc") else model.classifier[1]
    assert head.out_features == 1
    assert head.weight.std().item() == pytest.approx(0.02, rel=0.15)


def test_resnet50_keys_match_torchvision_release_layout():
    keys = build_model("resnet50", pretrained=False).state_dict()
    reference = models.resnet50(num_classes=1).state_dict()
    assert list(keys) == list(reference)
    assert keys["fc.weight"].shape == (1, 2048) and keys["fc.bias"].shape == (1,)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_our_resnets_are_torchvisions_weight_for_weight_and_output_for_output(arch):
    torch.manual_seed(0)
    reference = models.get_model(arch, weights=None).eval()
    torch.manual_seed(0)
    ours = resnet(arch).eval()
    theirs = reference.state_dict()
    # Same keys in the same order, and the same seeded initialization to the bit.
    assert list(ours.state_dict()) == list(theirs)
    assert all(torch.equal(value, theirs[key]) for key, value in ours.state_dict().items())
    ours.load_state_dict(theirs)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_eval_and_demo_import_no_torchvision():
    code = ("import sys, commands.demo, commands.app, engine.evaluation; from networks import build_model; "
            "build_model('resnet50', pretrained=False); build_model('npr', pretrained=False); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'sympy') "
            "or m.startswith('torch._dynamo')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_pretrained_path_loads_the_backbone(tmp_path):
    imagenet = models.resnet18(weights=None)
    torch.save(imagenet.state_dict(), tmp_path / "r18.pth")
    model = build_model("resnet18", pretrained_path=tmp_path / "r18.pth")
    torch.testing.assert_close(model.conv1.weight, imagenet.conv1.weight)
    torch.testing.assert_close(model.layer4[1].bn2.running_var, imagenet.layer4[1].bn2.running_var)
    with pytest.raises(UserError, match="not ImageNet weights of resnet34"):
        build_model("resnet34", pretrained_path=tmp_path / "r18.pth")


def test_offline_imagenet_download_fails_at_once_naming_both_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache forces torchvision to download

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserError) as err:
        build_model("resnet18", pretrained=True)
    message = str(err.value)
    assert "--pretrained_path" in message and "--no_pretrained" in message and "resnet18-" in message
