"""What the training transform may do: the paper's resize, random crop, flip, blur and JPEG, as one config whose
fields are train.py's flags. No image library is imported here, so the options can build it at once."""

from __future__ import annotations

from dataclasses import dataclass

from data.names import INTERPOLATIONS, JPEG_METHODS
from util.errors import ConfigError
from util.fields import Options, between, nonneg, option, ordered, positive, probability, span


@dataclass(frozen=True, kw_only=True)
class AugmentConfig(Options):
    """The training (and, with --val_perturb, validation) preprocessing; part of TrainConfig as ``augment``."""

    load_size: int = option(256, "resize the shorter side to this many pixels before cropping", check=positive,
                             flags=("--loadSize",))
    crop_size: int = option(224, "crop side in pixels", check=positive, flags=("--cropSize",))
    square_resize: bool = option(False, "resize to --load_size x --load_size, not keeping the aspect ratio (NPR); "
                                 "the detector is then tested resized so too")
    no_resize: bool = option(False, "skip the resize to --load_size")
    no_crop: bool = option(False, "skip the random crop (whole images; batch 1 unless all images share a size)")
    tile: bool = option(False, "repeat an image with a side under --crop_size until the crop fits (NPR's "
                        "translate_duplicate on GenImage) instead of zero padding it; the detector is then tested so "
                        "too")
    crop_grid: int = option(1, "random crops start at multiples of this many pixels, in phase with a generator's "
                            "upsampling grid (4 for two 2x upsamplings) as whole test images are", check=positive)
    no_flip: bool = option(False, "no random horizontal flip")
    rz_interp: tuple[str, ...] = option(("bilinear",), "resize interpolations, one drawn per image",
                                        choices=INTERPOLATIONS)
    grey_prob: float = option(0.0, "probability of turning an image grey (ITU-R 601 luma in all three channels), "
                              "before blur and JPEG", check=probability)
    blur_prob: float = option(0.0, "probability of Gaussian blur", check=probability)
    blur_sig: tuple[float, float] = option((0.5, 0.5), "blur sigma: one value, or lo,hi for sigma ~ U[lo, hi]",
                                           parse=span(float), check=ordered(nonneg))
    jpg_prob: float = option(0.0, "probability of JPEG compression", check=probability)
    jpg_method: tuple[str, ...] = option(("cv2",), "JPEG encoders, one drawn per image", choices=JPEG_METHODS)
    jpg_qual: tuple[int, int] = option((75, 75), "JPEG quality: one value, or lo,hi for a uniform integer in "
                                       "[lo, hi] (inclusive)", parse=span(int), check=ordered(between(1, 100)))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.no_resize and not self.no_crop and self.crop_size > self.load_size:
            raise ConfigError(f"--crop_size {self.crop_size} exceeds --load_size {self.load_size}")
        ignored = [("--crop_size", "--no_crop", self.no_crop and self.changed("crop_size")),
                   ("--crop_grid", "--no_crop", self.no_crop and self.changed("crop_grid")),
                   ("--tile", "--no_crop", self.no_crop and self.tile),
                   ("--load_size", "--no_resize", self.no_resize and self.changed("load_size")),
                   ("--rz_interp", "--no_resize", self.no_resize and self.changed("rz_interp")),
                   ("--square_resize", "--no_resize", self.no_resize and self.square_resize)]
        for flag, reason, clash in ignored:
            if clash:
                raise ConfigError(f"{flag} has no effect with {reason}; leave it out")

    @property
    def resize(self) -> bool:
        return not self.no_resize

    @property
    def crop(self) -> bool:
        return not self.no_crop

    @property
    def flip(self) -> bool:
        return not self.no_flip
