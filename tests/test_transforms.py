import dataclasses
import json
from io import BytesIO

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from data import AugmentConfig, EvalTransform, Normalization, Perturbation, TrainTransform, load_rgb
from data.transforms import (
    AugmentParams,
    ValTransform,
    _offset,
    apply_train_params,
    center_crop,
    crop,
    gaussian_blur,
    jpeg_cv2,
    jpeg_pil,
    perturb,
    resized_size,
    sample_train_params,
    tile,
    tiled_size,
    to_grey,
    to_rgb,
)
from networks.registry import IMAGENET_MEAN, IMAGENET_STD

IMAGENET = Normalization(IMAGENET_MEAN, IMAGENET_STD)  # the ResNets' and NPR's


def network_input(arr: np.ndarray) -> torch.Tensor:
    """What the network sees for one transformed image: the uint8 array, normalized as a batch of one."""
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    return IMAGENET(torch.from_numpy(np.stack([arr])))[0]  # stacked as collate does


@pytest.mark.parametrize("name", ["real", "fake"])
def test_test_preprocessing_matches_reference_tensors(shared_reference, name):
    expected = np.array(json.loads((shared_reference / "preprocess" / f"{name}.json").read_text()), dtype=np.float32)
    tensor = network_input(EvalTransform(crop_size=224)(load_rgb(str(shared_reference / "examples" / f"{name}.png"))))
    assert tensor.shape == (3, 224, 224)
    assert np.abs(tensor.numpy().ravel() - expected).max() <= 1e-6


@pytest.mark.parametrize("size", [(256, 256), (256, 512), (300, 241), (224, 224), (100, 180), (7, 9)])
def test_test_preprocessing_matches_torchvision(size):
    """torchvision's CenterCrop -> ToTensor -> Normalize is the authors' test pipeline: an independent reference
    that needs no file, including the zero padding of images smaller than the crop."""
    from torchvision import transforms as T

    height, width = size
    image = Image.fromarray(np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8))
    reference = T.Compose([T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(image)
    ours = network_input(EvalTransform(crop_size=224)(image))
    assert ours.shape == reference.shape == (3, 224, 224)
    assert (ours - reference).abs().max().item() <= 1e-6


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (9, 14), (13, 13), (37, 29), (64, 64), (255, 300), (256, 256)])
@pytest.mark.parametrize("channels", [1, 3])
def test_blur_is_scipy_within_one_gray_level(size, channels):
    """The paper's sigma range, on images of any size (a kernel wider than the image included)."""
    rng = np.random.default_rng(size[0] * size[1] + channels)
    arr = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
    for sigma in (0.0, 0.01, 0.3, 0.5, 1.0, 1.7, 2.4, 3.0):
        out = gaussian_blur(arr, sigma)
        assert out.shape == arr.shape and out.dtype == np.uint8
        reference = np.stack([gaussian_filter(arr[:, :, c], sigma=sigma, output=np.uint8) for c in range(channels)],
                             axis=-1)
        assert np.abs(out.astype(int) - reference).max() <= 1, sigma
        if sigma >= 0.5 and min(size) > 1:
            assert np.mean(out != reference) < 0.01, sigma  # off by one only where float rounding differs
    np.testing.assert_array_equal(gaussian_blur(arr, 0.0), arr)


def test_jpeg_round_trips_match_the_libraries():
    arr = np.random.default_rng(1).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    _, enc = cv2.imencode(".jpg", arr[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 40])
    np.testing.assert_array_equal(jpeg_cv2(arr, 40), cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1])
    buf = BytesIO()
    Image.fromarray(arr).save(buf, format="jpeg", quality=40)
    np.testing.assert_array_equal(jpeg_pil(arr, 40), np.asarray(Image.open(BytesIO(buf.getvalue()))))
    # Lower quality loses more.
    assert np.abs(jpeg_pil(arr, 30).astype(int) - arr).mean() > np.abs(jpeg_pil(arr, 95).astype(int) - arr).mean()


def test_center_crop_follows_torchvision_offsets_and_zero_pads():
    arr = np.arange(257 * 300 * 3, dtype=np.int64).reshape(257, 300, 3).astype(np.uint8)
    out = center_crop(arr, 224)
    np.testing.assert_array_equal(out, arr[16:240, 38:262])  # round(33/2)=16 (half to even), 76/2=38
    small = np.full((101, 224, 3), 7, np.uint8)
    padded = center_crop(small, 224)
    assert padded.shape == (224, 224, 3)
    # torchvision pads (224-101)//2 = 61 rows on top.
    assert (padded[:61] == 0).all() and (padded[61:162] == 7).all() and (padded[162:] == 0).all()
    window = crop(small, top=-5, left=220, height=10, width=10)
    assert window[5:, :4].min() == 7 and window[:5].max() == 0


def test_tile_lays_whole_copies_from_the_top_left_as_npr_translate_duplicate():
    a, b = (1, 2, 3), (4, 5, 6)
    pair = np.array([[a, b]], np.uint8)  # 1 px high, 2 px wide
    # To 3 px: ceil(3/2) = 2 copies across, ceil(3/1) = 3 down, each pasted whole from (0, 0).
    np.testing.assert_array_equal(tile(pair, 3), np.array([[a, b, a, b]] * 3, np.uint8))
    assert tiled_size(2, 1, 3) == (4, 3)
    wide = np.arange(2 * 10 * 3, dtype=np.uint8).reshape(2, 10, 3)  # a side that reaches 7 is not repeated
    np.testing.assert_array_equal(tile(wide, 7), np.concatenate([wide] * 4))
    large = np.zeros((7, 9, 3), np.uint8)
    assert tile(large, 7) is large and tiled_size(9, 7, 7) == (9, 7)


def _tiled_window(arr: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The size x size window at (top, left) of ``arr`` repeated without end: pixel (y, x) is arr[y % h, x % w]."""
    h, w = arr.shape[:2]
    return np.array([[arr[(top + y) % h, (left + x) % w] for x in range(size)] for y in range(size)])


def test_genimage_protocol_tiles_then_center_crops():
    arr = np.random.default_rng(4).integers(0, 256, (60, 100, 3), dtype=np.uint8)
    out = EvalTransform(crop_size=224, tile=True)(Image.fromarray(arr))
    # Tiled to 300 x 240 (3 x 4 copies); torchvision's center crop starts at round(76/2) = 38, round(16/2) = 8.
    np.testing.assert_array_equal(out, _tiled_window(arr, 8, 38, 224))
    assert EvalTransform(crop_size=224, tile=True).output_size(100, 60) == (224, 224)
    with pytest.raises(ValueError, match="tiling fills a crop"):
        EvalTransform(crop_size=None, tile=True)


def test_training_with_tile_crops_the_tiled_image():
    cfg = AugmentConfig(no_resize=True, tile=True, crop_size=32)
    arr = np.random.default_rng(5).integers(0, 256, (12, 20, 3), dtype=np.uint8)  # tiled: 40 wide, 36 high
    draws = [sample_train_params(np.random.default_rng(i), cfg, 20, 12) for i in range(400)]
    assert {p.crop_top for p in draws} == set(range(0, 5)) and {p.crop_left for p in draws} == set(range(0, 9))
    params = AugmentParams("bilinear", None, None, crop_top=3, crop_left=5, flip=False, grey=False)
    np.testing.assert_array_equal(apply_train_params(Image.fromarray(arr), cfg, params), _tiled_window(arr, 3, 5, 32))
    validation = ValTransform(cfg, perturb=False)(Image.fromarray(arr), np.random.default_rng(0))
    np.testing.assert_array_equal(validation, _tiled_window(arr, 2, 4, 32))


def test_resized_size_keeps_aspect_like_torchvision():
    assert resized_size(512, 256, 256) == (512, 256)
    assert resized_size(300, 400, 256) == (256, 341)
    assert resized_size(691, 563, 256) == (314, 256)


def test_normalization_values():
    arr = np.zeros((2, 2, 3), np.uint8)
    arr[0, 0] = 255
    t = network_input(arr)
    assert t.dtype == torch.float32 and t.shape == (3, 2, 2)
    assert t[0, 1, 1].item() == pytest.approx(-0.485 / 0.229)
    assert t[2, 0, 0].item() == pytest.approx((1 - 0.406) / 0.225)


@pytest.mark.parametrize(
    "mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1", "YCbCr"],
)
def test_every_mode_becomes_rgb(mode):
    rgb = Image.fromarray(np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8))
    if mode in ("I;16", "I", "F"):
        gray = np.linspace(0, 65535 if mode != "F" else 255, 99).reshape(9, 11)
        img = Image.fromarray(gray.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        assert img.mode == mode
    else:
        img = rgb.convert(mode)
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (11, 9)
    if mode in ("I;16", "I"):
        arr = np.asarray(out)
        assert arr[0, 0, 0] == 0 and arr[-1, -1, 0] == 255 and 100 < arr[4, 5, 0] < 155  # scaled, not clipped


def test_sixteen_bit_png_is_scaled(tmp_path):
    gray = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    arr = np.asarray(load_rgb(str(tmp_path / "g16.png")))
    assert arr.shape == (8, 8, 3) and arr.max() == round(63000 * 255 / 65535)


def _img(seed=3, size=(50, 70)):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))


def test_train_transform_applies_steps_in_reference_order():
    cfg = AugmentConfig(load_size=40, crop_size=32, grey_prob=1.0, blur_prob=1.0, jpg_prob=1.0)
    params = AugmentParams("bilinear", 1.0, ("pil", 50), crop_top=3, crop_left=5, flip=True, grey=True)
    img = _img()
    arr = np.asarray(img.resize((56, 40), Image.Resampling.BILINEAR))
    arr = jpeg_pil(gaussian_blur(to_grey(arr), 1.0), 50)[3:35, 5:37][:, ::-1]
    np.testing.assert_array_equal(apply_train_params(img, cfg, params), arr)


def test_grey_is_pils_luma_and_its_coin_is_drawn_last():
    arr = np.asarray(_img())
    grey = to_grey(arr)
    assert grey.shape == arr.shape and (grey == grey[..., :1]).all()
    reference = np.asarray(_img().convert("L"), dtype=int)  # PIL's fixed-point luma
    assert np.abs(grey[..., 0].astype(int) - reference).max() <= 1
    plain = AugmentConfig(load_size=40, crop_size=32, blur_prob=0.5, jpg_prob=0.5)
    greyed = AugmentConfig(load_size=40, crop_size=32, blur_prob=0.5, jpg_prob=0.5, grey_prob=0.3)
    draws = [(sample_train_params(np.random.default_rng(i), plain, 70, 50),
              sample_train_params(np.random.default_rng(i), greyed, 70, 50)) for i in range(2000)]
    # Every earlier draw is unchanged, so runs without grey replay those of earlier releases.
    assert all(a == dataclasses.replace(b, grey=False) for a, b in draws)
    assert not any(a.grey for a, _ in draws)
    assert abs(sum(b.grey for _, b in draws) / 2000 - 0.3) <= 4 * (0.3 * 0.7 / 2000) ** 0.5


def test_sampled_params_respect_ranges():
    cfg = AugmentConfig(load_size=40, crop_size=32, blur_prob=0.5, blur_sig=(0.0, 3.0), jpg_prob=0.5,
                        jpg_method=("cv2", "pil"), jpg_qual=(30, 100), rz_interp=("bilinear", "lanczos"))
    draws = [sample_train_params(np.random.default_rng(i), cfg, 70, 50) for i in range(4000)]
    sigmas = [p.blur_sigma for p in draws if p.blur_sigma is not None]
    qualities = {p.jpeg[1] for p in draws if p.jpeg}
    assert 0.0 <= min(sigmas) < 0.1 and 2.9 < max(sigmas) <= 3.0
    assert qualities == set(range(30, 101))  # inclusive at both ends
    assert {p.jpeg[0] for p in draws if p.jpeg} == {"cv2", "pil"}
    assert {p.interpolation for p in draws} == {"bilinear", "lanczos"}
    assert {p.crop_top for p in draws} == set(range(0, 9)) and {p.crop_left for p in draws} == set(range(0, 25))


def test_crop_grid_keeps_crops_in_phase_and_grid_one_draws_as_before():
    cfg = AugmentConfig(crop_size=32, no_resize=True, crop_grid=4)
    draws = [sample_train_params(np.random.default_rng(i), cfg, 64, 48) for i in range(400)]
    assert {p.crop_top for p in draws} == {0, 4, 8, 12, 16} and {p.crop_left for p in draws} == set(range(0, 33, 4))
    small = [sample_train_params(np.random.default_rng(i), cfg, 20, 20) for i in range(200)]  # zero-padded crops
    assert {p.crop_top for p in small} == {-12, -8, -4, 0}
    for length, size in ((64, 32), (20, 32), (32, 32)):  # grid 1 draws what the plain crop always drew
        rng, reference = np.random.default_rng(length), np.random.default_rng(length)
        lo, hi = min(0, length - size), max(0, length - size)
        assert [_offset(rng, length, size) for _ in range(20)] == [int(reference.integers(lo, hi + 1))
                                                                   for _ in range(20)]


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_perturbation_probability(p):
    cfg = AugmentConfig(load_size=40, crop_size=32, blur_prob=p, jpg_prob=p)
    n = 4000
    draws = [sample_train_params(np.random.default_rng((7, i)), cfg, 70, 50) for i in range(n)]
    blur = sum(d.blur_sigma is not None for d in draws) / n
    jpeg = sum(d.jpeg is not None for d in draws) / n
    tolerance = 4 * (p * (1 - p) / n) ** 0.5  # four standard errors
    assert abs(blur - p) <= tolerance and abs(jpeg - p) <= tolerance
    both = sum(d.blur_sigma is not None and d.jpeg is not None for d in draws) / n
    assert abs(both - p * p) <= 4 * (p * p * (1 - p * p) / n) ** 0.5 + 1e-12  # independent coins


def test_no_flip_and_no_crop_are_honoured():
    cfg = AugmentConfig(load_size=40, no_flip=True, no_crop=True)
    out = TrainTransform(cfg)(_img(), np.random.default_rng(0))
    assert out.shape == (40, 56, 3) and out.dtype == np.uint8
    assert not any(sample_train_params(np.random.default_rng(i), cfg, 70, 50).flip for i in range(50))


def test_perturbation_steps_and_order():
    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    assert np.array_equal(perturb(img, Perturbation()), np.asarray(img))
    assert np.array_equal(perturb(img, Perturbation(scale=1.0, blur_sigma=0.0)), np.asarray(img))
    p = Perturbation(scale=0.5, blur_sigma=1.0, jpeg=("cv2", 70))
    small = np.asarray(img.resize((25, 20), Image.Resampling.BILINEAR))
    assert np.array_equal(perturb(img, p), jpeg_cv2(gaussian_blur(small, 1.0), 70))
    assert p.describe() == "rescale x0.5, blur sigma 1, JPEG cv2 q70" and Perturbation().describe() == "none"


@pytest.mark.parametrize("crop_size, resize, scale", [(None, None, None), (None, 30, None), (None, None, 0.7),
                                                      (None, 30, 1.3), (32, 30, 0.7)])
def test_eval_output_size_predicts_the_tensor(crop_size, resize, scale):
    img = Image.fromarray(np.zeros((41, 57, 3), dtype=np.uint8))
    transform = EvalTransform(crop_size=crop_size, resize=resize, perturbation=Perturbation(scale=scale))
    width, height = transform.output_size(*img.size)
    assert transform(img).shape == (height, width, 3)
