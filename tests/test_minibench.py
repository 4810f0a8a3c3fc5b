import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data import scan_folder
from data.minibench import (
    MiniConfig,
    build,
    match_statistics,
    matching_features,
    synthesize,
    train_generators,
    trivial_baselines,
)
from networks.generators import UPSAMPLERS, autoencoder
from tests.helpers import TINY_BENCH as TINY
from tests.helpers import write_png
from util.errors import UserError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tiny(mini_bench) -> Path:
    return mini_bench


def test_layout_and_manifest_counts(tiny):
    manifest = json.loads((tiny / "manifest.json").read_text())
    assert sorted(p.name for p in (tiny / "test").iterdir()) == sorted(UPSAMPLERS)
    assert sorted(p.name for p in (tiny / "train").iterdir()) == [f"group{i}" for i in range(3)]
    for key, counts in manifest["counts"].items():
        samples = scan_folder(tiny / key)
        labels = np.array([s.label for s in samples])
        assert (int((labels == 0).sum()), int((labels == 1).sum())) == (counts["n_real"], counts["n_fake"])
        assert counts["n_real"] == counts["n_fake"] > 0
    assert manifest["generators"]["nearest"]["role"] == "train"
    assert set(manifest["baselines"]) == set(UPSAMPLERS)
    photos = manifest["photos"]
    train = {n for group in photos["train"] for n in group}
    val = {n for group in photos["val"] for n in group}
    assert not (train & val) and not (train & set(photos["test"])) and not (val & set(photos["test"]))


def test_same_seed_gives_identical_bytes_other_seed_differs(tiny, tmp_path):
    again = tmp_path / "again"
    build(again, TINY)
    assert _files(again) == _files(tiny)
    other = tmp_path / "other"
    build(other, MiniConfig(**{**TINY.__dict__, "seed": 1}))
    assert _files(other)["test/nearest/0_real/00000.png"] != _files(tiny)["test/nearest/0_real/00000.png"]


def test_cached_build_is_reused_and_foreign_folders_are_refused(tiny, tmp_path, capsys):
    before = (tiny / "manifest.json").stat().st_mtime_ns
    build(tiny, TINY)
    assert "using the cached build" in capsys.readouterr().out
    assert (tiny / "manifest.json").stat().st_mtime_ns == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a mini-benchmark"):
        build(foreign, TINY)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_user_photo_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):  # smooth colour fields: "photos" a tiny generator can imitate
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        write_png(tmp_path / "photos" / f"p{i}.png", np.asarray(coarse.resize((90, 80), Image.Resampling.BICUBIC)))
    manifest = build(tmp_path / "bench", MiniConfig(**{**TINY.__dict__, "real_dir": str(tmp_path / "photos")}))
    photos = manifest["photos"]
    assert len(photos["test"]) == 2 and sum(len(g) for g in photos["val"]) == 1
    assert sum(len(g) for g in photos["train"]) == 3
    with pytest.raises(UserError, match="at least 3 photos"):
        build(tmp_path / "b2", MiniConfig(**{**TINY.__dict__, "real_dir": str(tmp_path / "none")}))


@pytest.mark.parametrize("kind", UPSAMPLERS)
def test_generators_keep_the_image_size(kind):
    assert autoencoder(kind, width=8)(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def test_generators_are_the_same_under_any_thread_count():
    crops = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    jobs = [("nearest", crops, 0), ("transposed", crops[::-1].copy(), 1)]
    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fitted = train_generators(jobs, steps=20, width=16)
            assert torch.get_num_threads() == threads
            weights.append([torch.cat([p.flatten() for p in model.state_dict().values()]) for model, _ in fitted])
    finally:
        torch.set_num_threads(before)
    # Bit-equal: with the intra-op threads of the caller, the weights differ by up to 2e-4 after 20 steps.
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
    assert not torch.equal(weights[0][0][:10], weights[0][1][:10])


def test_grey_inputs_give_grey_fakes():
    torch.manual_seed(0)
    crops = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    crops[:2] = crops[:2, :, :, :1]  # the first two are grey
    out = synthesize(autoencoder("nearest", width=8).eval(), crops, np.array([True, True, False, False]))
    assert (out[:2, ..., 0] == out[:2, ..., 2]).all() and not (out[2:, ..., 0] == out[2:, ..., 2]).all()


def test_matching_removes_what_trivial_statistics_see():
    rng = np.random.default_rng(0)
    # Reals are brighter and noisier (sharper) on average than fakes, with overlap: unmatched, both stats win.
    def images(mean_lo, mean_hi, std_lo, std_hi):
        mean = rng.uniform(mean_lo, mean_hi, (600, 1, 1, 1))
        std = rng.uniform(std_lo, std_hi, (600, 1, 1, 1))
        return np.clip(mean + std * rng.standard_normal((600, 16, 16, 3)), 0, 255).astype(np.uint8)

    real, fake = images(90, 170, 15, 60), images(70, 140, 5, 40)
    before = trivial_baselines(real[:200], fake[:200])
    assert before["sharpness_ap"] > 0.75 and before["colour_ap"] > 0.65
    r, f = match_statistics(rng, real, fake, count=200)
    assert len(r) == len(f) > 50
    after = trivial_baselines(real[r], fake[f])
    assert after["sharpness_ap"] < 0.65 and after["colour_ap"] < 0.65
    # The bins follow the fakes, so reals beyond the fakes' range share the outer bins: medians stay a few levels
    # apart where the two barely overlap, as brightness does here.
    assert np.abs(np.median(matching_features(real[r]), 0) - np.median(matching_features(fake[f]), 0)).max() < 8


def test_matching_pairs_grey_images_with_grey_images():
    rng = np.random.default_rng(0)
    def images(grey: int) -> np.ndarray:
        """600 grey noise images, all but the first ``grey`` tinted: red and blue nudged one level apart at
        random, which barely moves sharpness, brightness and red-blue balance."""
        out = np.repeat(np.clip(rng.normal(128, 30, (600, 16, 16, 1)), 1, 254), 3, axis=3)
        nudge = rng.choice([-1.0, 1.0], (600, 16, 16))
        out[grey:, ..., 0] += nudge[grey:]
        out[grey:, ..., 2] -= nudge[grey:]
        return out.astype(np.uint8)

    real, fake = images(grey=150), images(grey=450)  # a quarter of the reals grey, three quarters of the fakes
    assert trivial_baselines(real, fake)["saturation_ap"] > 0.65  # the builder would refuse such a set
    r, f = match_statistics(rng, real, fake, count=200)
    assert len(r) == len(f) > 100
    assert (r < 150).sum() == (f < 450).sum() > 20  # as many grey reals as grey fakes
    assert trivial_baselines(real[r], fake[f])["saturation_ap"] < 0.6


def test_saturation_is_the_mean_channel_spread():
    from data.minibench import saturation

    images = np.random.default_rng(0).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    images[:5] = images[:5, ..., :1]  # grey
    wide = images.astype(np.int64)
    expected = (wide.max(axis=3) - wide.min(axis=3)).reshape(50, -1).mean(axis=1)
    got = saturation(images)
    np.testing.assert_array_equal(got, expected)
    assert (got[:5] == 0).all() and (got[5:] > 50).all()


def test_sharpness_is_scipys_laplacian_variance_to_the_bit():
    from scipy.ndimage import laplace

    from data.minibench import sharpness
    from data.transforms import luma

    rng = np.random.default_rng(3)
    for shape in ((5, 16, 16, 3), (3, 7, 12, 3), (2, 1, 5, 3)):
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        expected = np.array([laplace(grey).var() for grey in luma(images)])
        np.testing.assert_array_equal(sharpness(images, chunk=2), expected)
