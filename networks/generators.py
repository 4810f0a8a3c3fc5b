"""Small convolutional image generators for the offline mini-benchmark.

Each is a two-level autoencoder (in the spirit of Zhang et al.'s AutoGAN, the paper's reference [44]) trained to
reproduce real crops. They differ only in how the decoder upsamples, which is what leaves a generator's
fingerprint: nearest + conv (ProGAN's choice), bilinear + conv, transposed convolution (DCGAN/CycleGAN) and
sub-pixel convolution (pixel shuffle).
"""

from __future__ import annotations

from torch import nn

UPSAMPLERS = ("nearest", "bilinear", "transposed", "pixelshuffle")


def _upsample(kind: str, channels_in: int, channels_out: int) -> nn.Module:
    if kind in ("nearest", "bilinear"):
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind),
                             nn.Conv2d(channels_in, channels_out, 3, padding=1))
    if kind == "transposed":
        return nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1)
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(channels_in, 4 * channels_out, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown upsampling {kind!r}; choose one of {', '.join(UPSAMPLERS)}")


def autoencoder(upsampling: str, width: int = 32) -> nn.Sequential:
    """Images in [-1, 1], side divisible by 4, to images of the same size in [-1, 1]."""
    half = width // 2
    return nn.Sequential(
        nn.Conv2d(3, half, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(half, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        _upsample(upsampling, width, width), nn.LeakyReLU(0.2),
        _upsample(upsampling, width, half), nn.LeakyReLU(0.2),
        nn.Conv2d(half, 3, 3, padding=1), nn.Tanh(),
    )
