"""A seeded corpus of hostile files: every kind of file that broke or could break a run, beside good ones.

The tests build a small one (``build(root)``); the heavy version is a script:

    python -m tests.hostile /tmp/hostile --mutants 2000 --seed 0    # then run eval.py/demo.py/train.py on it

Layout: ``<root>/hostile/{0_real,1_fake}/...``, a test set (copy it under ``<split>/<class>/`` to train on it).
``build`` returns what each entry must become: ``"scored"``, ``"listed"`` (in
skipped.csv, with a reason matching the given pattern) or ``"either"`` (the seeded mutants: decoding decides). Every
entry a walk can reach is in it, so a run must account for all of them: scored + listed = everything.
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

AS_ROOT = os.geteuid() == 0  # root reads files and folders whatever their permissions


@dataclass(frozen=True)
class Expected:
    outcome: str  # scored, listed or either
    reason: str = ""  # a regular expression the listed reason must match


def _encoded(image: np.ndarray | Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 40000) -> bytes:
    """A PNG header announcing side x side pixels (over PIL's own limit at 40000) and almost no data."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 100)) \
        + _chunk(b"IEND", b"")


def huge_jpeg(rng: np.random.Generator, side: int = 12000) -> bytes:
    """A JPEG of a few hundred bytes whose frame header claims side x side pixels: under PIL's bomb limit, and
    libjpeg fills in the missing data, so decoding it whole takes side * side * 3 bytes and more."""
    data = bytearray(_encoded(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def bad_exif_tiff(rgb: np.ndarray) -> bytes:
    """An uncompressed TIFF whose directory claims 512 more entries than it holds: Pillow reads it, warning."""
    data = bytearray(_encoded(rgb, "TIFF"))
    data[9] = 2  # the high byte of the entry count
    return bytes(data)


def damaged_deflate_tiff(rgb: np.ndarray) -> bytes:
    """A deflate TIFF with a byte of its strip flipped: libtiff fails, writing its complaint to stderr itself."""
    data = bytearray(_encoded(rgb, "TIFF", compression="tiff_deflate"))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\nshowpage\n"


def _mutant(rng: np.random.Generator, good: bytes) -> bytes:
    """A damaged copy of ``good``: bytes flipped, cut, repeated or inserted."""
    data = bytearray(good)
    kind = rng.integers(4)
    if kind == 0:
        for at in rng.integers(0, len(data), size=int(rng.integers(1, 16))):
            data[at] ^= int(rng.integers(1, 256))
    elif kind == 1:
        data = data[: int(rng.integers(1, len(data)))]
    elif kind == 2:
        at = int(rng.integers(0, len(data)))
        data[at:at] = data[at : at + int(rng.integers(1, 64))] * int(rng.integers(2, 20))
    else:
        at = int(rng.integers(0, len(data)))
        data[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 256)), dtype=np.uint8))
    return bytes(data)


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _good(folder: Path, rng: np.random.Generator) -> dict[str, Expected]:
    """Readable files, many of them unusual: all must be scored."""
    rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    files = {
        "plain.png": _encoded(rgb(40, 48), "PNG"),
        "photo.jpg": _encoded(rgb(48, 40), "JPEG", quality=90),
        "gray16.png": _encoded(rng.integers(0, 65535, (40, 40), dtype=np.uint16), "PNG"),
        "cmyk.jpg": _encoded(Image.fromarray(rgb(40, 40)).convert("CMYK"), "JPEG"),
        "one_pixel.png": _encoded(rgb(1, 1), "PNG"),
        "one_row.png": _encoded(rgb(1, 37), "PNG"),
        "lossless.webp": _encoded(rgb(40, 40), "WEBP", lossless=True),
        "bitmap.bmp": _encoded(rgb(40, 40), "BMP"),
        "bad_exif.tif": bad_exif_tiff(rgb(32, 32)),
    }
    expected = {_write(folder / name, data): Expected("scored") for name, data in files.items()}
    frames = [Image.fromarray(rgb(40, 40)) for _ in range(3)]
    for name in ("animated.gif", "pages.tiff"):
        frames[0].save(folder / name, save_all=True, append_images=frames[1:])
        expected[str(folder / name)] = Expected("scored")
    # A name that is not UTF-8 (Latin-1 bytes): it must reach the CSV files unchanged.
    raw = os.fsdecode(bytes(folder) + b"/caf\xe9_latin1.png")
    expected[_write(Path(raw), _encoded(rgb(40, 40), "PNG"))] = Expected("scored")
    return expected


def _bad(folder: Path, rng: np.random.Generator) -> dict[str, Expected]:
    """One file of each bad kind, with the reason it must be listed for."""
    good_png = _encoded(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), "PNG")
    files = {
        "empty.png": (b"", "empty file"),
        "truncated.png": (good_png[: len(good_png) // 2], "truncated|Truncated"),
        "text.jpg": (b"this is not a JPEG\n", "not an image format we read"),
        "postscript.jpg": (EPS, "not an image format we read"),  # PIL would run Ghostscript on it
        "bomb.png": (bomb_png(), "decompression bomb|megapixels"),
        "huge.jpg": (huge_jpeg(rng), "megapixels, over the limit"),
        ".hidden.png": (good_png, "hidden file"),
        "damaged_deflate.tif": (damaged_deflate_tiff(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
                                "decoder error"),
    }
    expected = {_write(folder / name, data): Expected("listed", reason) for name, (data, reason) in files.items()}
    (folder / "dangling.png").symlink_to(folder / "missing.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    os.mkfifo(folder / "pipe.png")  # opening it would block forever
    expected |= {str(folder / "dangling.png"): Expected("listed", "dangling symlink"),
                 str(folder / "loop.png"): Expected("listed", "symlink loop"),
                 str(folder / "pipe.png"): Expected("listed", "not a regular file")}
    # A link up to the set's folder would bring the other label's images in a second time, mislabelled.
    (folder / "up").symlink_to("..")
    expected[str(folder / "up")] = Expected("listed", "outside the folder")
    (folder / "again").symlink_to(".")
    expected[str(folder / "again")] = Expected("listed", "reached a second time")
    if not AS_ROOT:
        locked = folder / "locked"
        _write(locked / "inside.png", good_png)
        locked.chmod(0)
        expected[str(locked)] = Expected("listed", "folder not listed")
        _write(folder / "locked.png", good_png)
        (folder / "locked.png").chmod(0)
        expected[str(folder / "locked.png")] = Expected("listed", "permission denied")
    return expected


def _mutants(folder: Path, rng: np.random.Generator, count: int) -> dict[str, Expected]:
    sources = [_encoded(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), fmt, **options)
               for fmt, options in (("PNG", {}), ("JPEG", {}), ("GIF", {}), ("TIFF", {"compression": "tiff_deflate"}))]
    extensions = (".png", ".jpg", ".gif", ".webp", ".tif")
    return {_write(folder / f"mutant_{i:05d}{extensions[rng.integers(len(extensions))]}",
                   _mutant(rng, sources[rng.integers(len(sources))])): Expected("either")
            for i in range(count)}


def build(root: Path, seed: int = 0, mutants: int = 12) -> dict[str, Expected]:
    """The corpus at ``<root>/hostile`` and what each entry must become (paths as a walk reaches them)."""
    rng = np.random.default_rng(seed)
    folder = root / "hostile"
    expected = _good(folder / "0_real", rng) | _good(folder / "1_fake", rng)
    expected |= _bad(folder / "1_fake", rng)
    expected |= _mutants(folder / "1_fake" / "mutants", rng, mutants)
    return expected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the hostile corpus (a test set in ForenSynths layout).")
    parser.add_argument("root", type=Path, help="the corpus goes to <root>/hostile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mutants", type=int, default=2000, help="damaged copies of good images")
    args = parser.parse_args(argv)
    expected = build(args.root, args.seed, args.mutants)
    counts = {kind: sum(e.outcome == kind for e in expected.values()) for kind in ("scored", "listed", "either")}
    print(f"{args.root / 'hostile'}: {len(expected)} entries ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
          f"python eval.py --dataroot {args.root} --no_crop -m <checkpoint> must score or list each one")


if __name__ == "__main__":
    main()
