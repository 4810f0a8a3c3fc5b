"""The paper's preprocessing as small pure functions, plus the two presets that chain them.

Randomness never happens inside a transform: ``sample_train_params`` draws every choice for one image from a
generator it is given, and ``TrainTransform`` applies them deterministically, so tests can pin each parameter and
a run is a function of its seed.

Arrays are HxWx3 uint8 RGB throughout, and the presets return them so: loader workers hand over uint8 batches
(a quarter of float32's bytes) and a ``Normalization`` (the network family's mean and std) turns a batch into the
network's float input on the device, with the same float32 operations as torchvision's ToTensor + Normalize.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from io import BytesIO

import cv2
import numpy as np
import torch
from PIL import Image

from data.augment import AugmentConfig
from data.names import INTERPOLATIONS, JPEG_METHODS

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
PIL_INTERPOLATION = {name: Image.Resampling[name.upper()] for name in INTERPOLATIONS}


# ------------------------------------------------------------------------------------------- pure functions
def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB.

    Alpha is dropped, not composited, as the authors' loader (``convert('RGB')``) does. High-bit-depth
    grayscale (16-bit PNG opens as ``I;16`` or ``I``) is scaled to 8 bits; PIL's own conversion would clip
    it to white.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I") and arr.max(initial=0) > 255 else 255.0
        arr = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img if img.mode == "RGB" else img.convert("RGB")


def resized_size(width: int, height: int, size: int, square: bool = False) -> tuple[int, int]:
    """(width, height) after resizing the shorter side to ``size`` (torchvision's rounding), or both sides when
    ``square`` (NPR's resize, which does not keep the aspect ratio)."""
    if square:
        return size, size
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def resize_image(img: Image.Image, size: int, interpolation: str, square: bool = False) -> Image.Image:
    target = resized_size(*img.size, size, square)
    return img if target == img.size else img.resize(target, PIL_INTERPOLATION[interpolation])


def tile_counts(width: int, height: int, size: int) -> tuple[int, int]:
    """How many copies of an image ``tile`` lays side by side and one above the other: the fewest whole copies
    whose sides reach ``size`` (one along a side that already does)."""
    return -(-size // width), -(-size // height)


def tiled_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after ``tile``."""
    across, down = tile_counts(width, height, size)
    return width * across, height * down


def tile(arr: np.ndarray, size: int) -> np.ndarray:
    """NPR's ``translate_duplicate`` (their GenImage protocol): an image with a side under ``size`` is repeated,
    whole copies from its top-left corner, until each side is at least ``size``, so a crop of ``size`` holds only
    image pixels; a larger image is unchanged."""
    across, down = tile_counts(arr.shape[1], arr.shape[0], size)
    return arr if across == down == 1 else np.tile(arr, (down, across, 1))


def luma(images: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (PIL's convert("L") weights) of ...xHxWx3 images, as float32."""
    return images.astype(np.float32) @ LUMA


def to_grey(arr: np.ndarray) -> np.ndarray:
    """The image's luma, rounded, in all three channels."""
    return np.repeat(np.rint(luma(arr)).astype(np.uint8)[..., None], 3, axis=-1)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage.gaussian_filter's 1-D kernel: radius int(truncate * sigma + 0.5), weights normalized."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


_IDENTITY = np.ones(1)


def gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """The paper's blur, scipy's ``gaussian_filter`` per channel with uint8 output (truncate 4, 'reflect'
    border), computed with OpenCV on all channels at once, 4-10x faster, within one gray level of scipy.

    scipy filters axis 0, writes the uint8 output (truncating), then filters axis 1 from it; the two passes here
    do the same in float32 (OpenCV's BORDER_REFLECT is scipy's 'reflect')."""
    if sigma == 0:
        return arr.copy()
    kernel = gaussian_kernel(sigma)
    if len(kernel) // 2 >= min(arr.shape[:2]):  # a kernel wider than the image reflects more than once: scipy
        from scipy.ndimage import gaussian_filter  # rare, and scipy.ndimage would add 0.3 s to every start-up

        out = np.empty_like(arr)
        for c in range(arr.shape[2]):
            gaussian_filter(arr[:, :, c], sigma=sigma, output=out[:, :, c])
        return out
    rows = cv2.sepFilter2D(np.ascontiguousarray(arr), cv2.CV_32F, _IDENTITY, kernel, borderType=cv2.BORDER_REFLECT)
    cols = cv2.sepFilter2D(rows.astype(np.uint8), cv2.CV_32F, kernel, _IDENTITY, borderType=cv2.BORDER_REFLECT)
    return cols.astype(np.uint8).reshape(arr.shape)  # OpenCV drops the channel axis of a one-channel image


def jpeg_cv2(arr: np.ndarray, quality: int) -> np.ndarray:
    # cvtColor swaps RGB and BGR in one fast pass; copying numpy's reversed channel view is much slower.
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError("OpenCV failed to JPEG-encode the image")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def jpeg_pil(arr: np.ndarray, quality: int) -> np.ndarray:
    buffer = BytesIO()
    Image.fromarray(arr).save(buffer, format="jpeg", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


JPEG_ENCODERS = dict(zip(JPEG_METHODS, (jpeg_cv2, jpeg_pil), strict=True))


def crop(arr: np.ndarray, *, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Crop a window that may reach outside the image; the outside is zero (black), as torchvision pads."""
    h, w = arr.shape[:2]
    if 0 <= top and 0 <= left and top + height <= h and left + width <= w:
        return arr[top : top + height, left : left + width]
    out = np.zeros((height, width, arr.shape[2]), dtype=arr.dtype)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + height, h), min(left + width, w)
    if src_bottom > src_top and src_right > src_left:
        out[src_top - top : src_bottom - top, src_left - left : src_right - left] = arr[
            src_top:src_bottom, src_left:src_right
        ]
    return out


def center_offset(length: int, size: int) -> int:
    """Offset of a centered window, exactly as torchvision's center_crop (pad first when the image is smaller)."""
    if length < size:
        return -((size - length) // 2)
    return int(round((length - size) / 2.0))


def center_crop(arr: np.ndarray, size: int) -> np.ndarray:
    h, w = arr.shape[:2]
    return crop(arr, top=center_offset(h, size), left=center_offset(w, size), height=size, width=size)


def hflip(arr: np.ndarray) -> np.ndarray:
    # OpenCV writes a contiguous copy; copying numpy's reversed view costs 40x more (0.2 ms at 224 px).
    return cv2.flip(arr, 1).reshape(arr.shape)


@functools.cache
def _stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as (1, 3, 1, 1) float32 tensors on ``device``, made once so no step copies them again."""
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1),
            torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1))


@dataclass(frozen=True)
class Normalization:
    """A network's input normalization (its family's mean and std, which the engine passes down)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, batch: torch.Tensor,
                 memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
        """uint8 Bx HxWx3 (on any device) -> float32 Bx3xHxW: x/255, then (x - mean) / std, the same float32
        operations as torchvision's ToTensor + Normalize, so the values equal the authors' preprocessed tensors."""
        mean, std = _stats(self.mean, self.std, batch.device)
        # NHWC permuted to NCHW has channels_last strides: CUDA models take it as it is; others get one copy.
        images = batch.permute(0, 3, 1, 2).float().div_(255).sub_(mean).div_(std)
        return images.contiguous(memory_format=memory_format)


# ------------------------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class AugmentParams:
    """Every random choice for one image. ``None`` means the step is skipped."""

    interpolation: str
    blur_sigma: float | None
    jpeg: tuple[str, int] | None
    crop_top: int
    crop_left: int
    flip: bool
    grey: bool


def _offset(rng: np.random.Generator, length: int, size: int, grid: int = 1) -> int:
    """A crop offset in [min(0, length - size), max(0, length - size)], a multiple of ``grid``."""
    lo, hi = min(0, length - size), max(0, length - size)
    return grid * int(rng.integers(-(-lo // grid), hi // grid + 1))


def sample_train_params(rng: np.random.Generator, cfg: AugmentConfig, width: int, height: int) -> AugmentParams:
    """Draw all choices for an image of the given (original) size. Draws happen in a fixed order."""
    interpolation = cfg.rz_interp[int(rng.integers(len(cfg.rz_interp)))]
    blur = rng.random() < cfg.blur_prob
    sigma = float(rng.uniform(*cfg.blur_sig))
    jpeg = rng.random() < cfg.jpg_prob
    method = cfg.jpg_method[int(rng.integers(len(cfg.jpg_method)))]
    quality = int(rng.integers(cfg.jpg_qual[0], cfg.jpg_qual[1] + 1))
    if cfg.resize:
        width, height = resized_size(width, height, cfg.load_size, cfg.square_resize)
    if cfg.tile:
        width, height = tiled_size(width, height, cfg.crop_size)
    top = _offset(rng, height, cfg.crop_size, cfg.crop_grid)
    left = _offset(rng, width, cfg.crop_size, cfg.crop_grid)
    flip = bool(rng.random() < 0.5)
    grey = bool(rng.random() < cfg.grey_prob)  # drawn last: the draws before it are those of earlier releases
    return AugmentParams(
        interpolation=interpolation,
        blur_sigma=sigma if blur else None,
        jpeg=(method, quality) if jpeg else None,
        crop_top=top,
        crop_left=left,
        flip=flip and cfg.flip,
        grey=grey,
    )


def apply_train_params(img: Image.Image, cfg: AugmentConfig, params: AugmentParams) -> np.ndarray:
    """resize -> tile -> grey -> blur -> JPEG -> crop -> flip -> tensor, the reference order (tiling stands where
    NPR's GenImage code put it, in place of the resize; grey is this project's, off by default)."""
    if cfg.resize:
        img = resize_image(img, cfg.load_size, params.interpolation, cfg.square_resize)
    arr = np.asarray(img)
    if cfg.tile:
        arr = tile(arr, cfg.crop_size)
    if params.grey:
        arr = to_grey(arr)
    if params.blur_sigma is not None:
        arr = gaussian_blur(arr, params.blur_sigma)
    if params.jpeg is not None:
        method, quality = params.jpeg
        arr = JPEG_ENCODERS[method](arr, quality)
    if cfg.crop:
        arr = crop(arr, top=params.crop_top, left=params.crop_left, height=cfg.crop_size, width=cfg.crop_size)
    if params.flip:
        arr = hflip(arr)
    return np.ascontiguousarray(arr)


class TrainTransform:
    """Training preset: callable on (RGB image, per-sample generator)."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> np.ndarray:
        return apply_train_params(img, self.cfg, sample_train_params(rng, self.cfg, *img.size))


class ValTransform:
    """Validation preset: resize, center crop; optionally the authors' validation blur/JPEG.

    The authors validated with blur sigma and JPEG quality fixed at the middle of their ranges, PIL JPEG, each
    applied with the training probabilities. Here the coin flips come from the per-image generator, which the
    dataset seeds without the epoch, so validation is identical every epoch.
    """

    def __init__(self, cfg: AugmentConfig, perturb: bool, whole: bool = False) -> None:
        """``whole``: no crop, as a detector tested on whole images is validated."""
        self.cfg = cfg
        self.perturb = perturb
        self.crop = cfg.crop and not whole
        self.sigma = sum(cfg.blur_sig) / 2
        self.quality = int(sum(cfg.jpg_qual) / 2)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> np.ndarray:
        if self.cfg.resize:
            img = resize_image(img, self.cfg.load_size, "bilinear", self.cfg.square_resize)
        arr = np.asarray(img)
        if self.cfg.tile:
            arr = tile(arr, self.cfg.crop_size)
        if self.perturb:
            blur, jpeg = rng.random() < self.cfg.blur_prob, rng.random() < self.cfg.jpg_prob
            if blur:
                arr = gaussian_blur(arr, self.sigma)
            if jpeg:
                arr = jpeg_pil(arr, self.quality)
        if self.crop:
            arr = center_crop(arr, self.cfg.crop_size)
        return np.ascontiguousarray(arr)


@dataclass(frozen=True)
class Perturbation:
    """Deterministic test-time post-processing (the paper's robustness study), applied in this order:
    rescale by ``scale`` (bilinear), Gaussian blur with ``blur_sigma``, JPEG ``(method, quality)``.
    ``None`` (or a scale of 1, a sigma of 0) skips a step."""

    scale: float | None = None
    blur_sigma: float | None = None
    jpeg: tuple[str, int] | None = None

    def size(self, width: int, height: int) -> tuple[int, int]:
        if self.scale is None or self.scale == 1:
            return width, height
        return max(1, round(width * self.scale)), max(1, round(height * self.scale))

    def describe(self) -> str:
        parts = []
        if self.scale not in (None, 1):
            parts.append(f"rescale x{self.scale:g}")
        if self.blur_sigma:
            parts.append(f"blur sigma {self.blur_sigma:g}")
        if self.jpeg is not None:
            parts.append(f"JPEG {self.jpeg[0]} q{self.jpeg[1]}")
        return ", ".join(parts) or "none"


def perturb(img: Image.Image, p: Perturbation) -> np.ndarray:
    size = p.size(*img.size)
    if size != img.size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    arr = np.asarray(img)
    if p.blur_sigma:
        arr = gaussian_blur(arr, p.blur_sigma)
    if p.jpeg is not None:
        method, quality = p.jpeg
        arr = JPEG_ENCODERS[method](arr, quality)
    return arr


class EvalTransform:
    """Test protocol: no resize, no perturbation, center crop 224 (zero-padded if smaller).

    Options: ``crop_size=None`` keeps the whole image; ``resize`` scales the shorter side first (bilinear), or both
    sides with ``square``; ``tile`` fills the crop with copies of an image smaller than it (``tile``, NPR's GenImage
    protocol) instead of zeros; ``perturbation`` post-processes the image before any of that, as an image found in
    the wild would be.
    """

    def __init__(self, *, crop_size: int | None = 224, resize: int | None = None, square: bool = False,
                 tile: bool = False, perturbation: Perturbation = Perturbation()) -> None:
        if tile and crop_size is None:
            raise ValueError("tiling fills a crop: give crop_size")
        self.crop_size = crop_size
        self.resize = resize
        self.square = square
        self.tile = tile
        self.perturbation = perturbation

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the tensor made from an image of this size, without decoding it."""
        if self.crop_size is not None:
            return self.crop_size, self.crop_size
        width, height = self.perturbation.size(width, height)
        return resized_size(width, height, self.resize, self.square) if self.resize else (width, height)

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> np.ndarray:
        arr = perturb(img, self.perturbation)
        if self.resize:
            arr = np.asarray(resize_image(Image.fromarray(arr), self.resize, "bilinear", self.square))
        if self.crop_size is not None:
            arr = center_crop(tile(arr, self.crop_size) if self.tile else arr, self.crop_size)
        return np.ascontiguousarray(arr)
