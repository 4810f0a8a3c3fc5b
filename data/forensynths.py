"""The ForenSynths data (the authors' mirror): download with resume and checksums, extract, count.

``<root>/downloads/`` keeps the archives and ``SHA256SUMS.json`` (each file's hash, recorded on its first complete
download and checked on every later one); each split is extracted to ``<root>/<split>/`` in the layout that
train.py and eval.py read. The training set is a 7-part 7z archive holding a zip: the parts are read as one
stream (py7zr + multivolumefile, no system 7z needed) and the inner zip is unpacked in turn.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from data.datasets import DatasetError, list_images
from data.names import LABEL_FOLDERS, PAPER_TRAIN_CLASSES
from util.download import ChecksumRecord, fetch
from util.report import markdown_table

BASE_URL = "https://huggingface.co/datasets/sywang/CNNDetection/resolve/main/"


@dataclass(frozen=True)
class Split:
    files: tuple[str, ...]
    size: str  # as the authors announce it, for the user's disk planning
    # Real/fake image counts per set or class: Table 2's test sets (reference README); train and val from the
    # paper (36K training and 200 validation images per ProGAN class, half of them real).
    counts: dict[str, tuple[int, int]]


SPLITS = {
    "test": Split(("CNN_synth_testset.zip",), "20.1 GB", {
        "progan": (4000, 4000), "stylegan": (5991, 5991), "biggan": (2000, 2000), "cyclegan": (1596, 1488),
        "stargan": (1999, 1999), "gaugan": (5000, 5000), "crn": (6382, 6382), "imle": (6382, 6382),
        "seeingdark": (180, 180), "san": (219, 219), "deepfake": (2707, 2698), "stylegan2": (7988, 7988),
        "whichfaceisreal": (1000, 1000)}),
    "val": Split(("progan_val.zip",), "831 MB", dict.fromkeys(PAPER_TRAIN_CLASSES, (100, 100))),
    "train": Split(tuple(f"progan_train.7z.{i:03d}" for i in range(1, 8)), "about 74.7 GB",
                   dict.fromkeys(PAPER_TRAIN_CLASSES, (18000, 18000))),
}


def download_split(split: str, root: Path, base_url: str = BASE_URL) -> list[Path]:
    """Every archive file of ``split`` in ``<root>/downloads/``, fetched or resumed as needed and checked
    against the recorded checksums (recorded now when new)."""
    downloads = root / "downloads"
    record = ChecksumRecord(downloads / "SHA256SUMS.json")
    files = []
    for name in SPLITS[split].files:
        dest = downloads / name
        digest = fetch(base_url.rstrip("/") + "/" + name, dest, record.expected(name))
        if name not in record.entries:
            record.record(name, dest, digest)
        files.append(dest)
    return files


def _extract_7z_volumes(parts: list[Path], out: Path) -> None:
    import multivolumefile
    import py7zr

    stem = parts[0].name.rsplit(".", 1)[0]  # progan_train.7z
    # multivolumefile reads every "<stem>.*" in name order: nothing else may match.
    strays = sorted(set(parts[0].parent.glob(stem + ".*")) - set(parts))
    if strays:
        raise DatasetError(f"{parts[0].parent}: unexpected files beside the archive parts: "
                           f"{', '.join(p.name for p in strays)}; move them away and run again")
    with multivolumefile.open(parts[0].parent / stem, mode="rb") as volumes, \
            py7zr.SevenZipFile(volumes, mode="r") as archive:
        archive.extractall(path=out)


def _unzip_all(folder: Path) -> None:
    """Unpack every zip below ``folder`` in place (zipfile refuses absolute and ``..`` member paths)."""
    for path in sorted(folder.rglob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            archive.extractall(path.parent)
        path.unlink()


def _content_root(folder: Path, names: Iterable[str]) -> Path:
    """The shallowest folder below ``folder`` holding one of ``names`` (archives differ in their top folders)."""
    names = set(names)
    level = [folder]
    while level:
        for candidate in level:
            if any((candidate / n).is_dir() for n in names):
                return candidate
        level = sorted(p for c in level for p in c.iterdir() if p.is_dir())
    raise DatasetError(f"the archive holds none of the expected folders ({', '.join(sorted(names))})")


def extract_archives(files: list[Path], target: Path, names: Iterable[str]) -> Path:
    """Unpack ``files`` (zips, or the parts of one 7z) into ``target``: the shallowest folder of the archive that
    holds one of ``names``. The folder appears only once complete."""
    staging = target.with_name(f".{target.name}.extracting")
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted extraction
    staging.mkdir(parents=True)
    try:
        if files[0].name.endswith(".zip"):
            for file in files:
                with zipfile.ZipFile(file) as archive:
                    archive.extractall(staging)
        else:
            _extract_7z_volumes(files, staging)
        _unzip_all(staging)
        os.replace(_content_root(staging, names), target)
    except (zipfile.BadZipFile, OSError) as err:
        raise DatasetError(f"cannot extract {files[0].name}: {err}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def unpack(files: list[Path], target: Path, names: Iterable[str], delete_archives: bool) -> None:
    """Extract ``files`` into ``target`` (see ``extract_archives``), saying so; then delete them if asked."""
    print(f"{target.name}: extracting to {extract_archives(files, target, names)}")
    if delete_archives:
        for file in files:
            file.unlink()


def count_images(folder: Path) -> tuple[int, int]:
    """(real, fake) images below a set or class folder, sub-class folders included."""
    counts = [0, 0]
    for labeled in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        for name, label in LABEL_FOLDERS.items():
            if (labeled / name).is_dir():
                counts[label] += len(list_images(labeled / name))
    return counts[0], counts[1]


def verify_split(split: str, root: Path) -> tuple[list[dict[str, object]], str]:
    """Rows (name, counts found, counts expected, ok) for every set or class of ``split``, and a markdown table."""
    folder = root / split
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (download it with `python -m dataset.download {split}`)")
    rows = []
    for name, (real, fake) in SPLITS[split].counts.items():
        found = count_images(folder / name) if (folder / name).is_dir() else (0, 0)
        rows.append({"name": name, "real": found[0], "fake": found[1], "expected_real": real,
                     "expected_fake": fake, "ok": found == (real, fake)})
    table = markdown_table(["set" if split == "test" else "class", "real", "fake", "expected", "ok"],
                           [[str(r["name"]), str(r["real"]), str(r["fake"]),
                             f"{r['expected_real']}/{r['expected_fake']}", "yes" if r["ok"] else "NO"] for r in rows])
    return rows, table


def prepare(splits: Iterable[str], root: Path, base_url: str = BASE_URL, *, verify_only: bool = False,
            delete_archives: bool = False) -> bool:
    """Download and extract each split (unless it is already extracted, or ``verify_only``), then count its
    images against the reference counts; True when every count matches."""
    all_ok = True
    for split in splits:
        if not verify_only:
            if (root / split).is_dir():
                print(f"{split}: {root / split} exists; not downloaded again")
            else:
                print(f"{split}: {SPLITS[split].size} from {base_url}")
                unpack(download_split(split, root, base_url), root / split, SPLITS[split].counts, delete_archives)
        rows, table = verify_split(split, root)
        ok = all(r["ok"] for r in rows)
        all_ok &= ok
        print(f"\n{split}: image counts against the reference ({'all match' if ok else 'MISMATCH'})\n{table}\n")
    return all_ok
