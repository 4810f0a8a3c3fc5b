"""Downloads of the test suites that have a stable direct link (Synthbuster on Zenodo: resumable, checked against
the md5 and size Zenodo publishes, sha256 recorded); for the others, where to get them and the layout to unpack
to (``data.suites``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from data.datasets import list_images
from data.forensynths import unpack
from data.suites import SUITES, FolderSuite
from util.download import ChecksumRecord, DownloadError, Expected, fetch, read_json
from util.report import markdown_table

ZENODO_API = "https://zenodo.org/api/records/"


@dataclass(frozen=True)
class ZenodoRecord:
    record: str
    files: tuple[str, ...]


DOWNLOADS = {"synthbuster": ZenodoRecord("10066460", ("synthbuster.zip",))}


def zenodo_files(record: str, api: str = ZENODO_API) -> dict[str, tuple[str, Expected]]:
    """name -> (download URL, published size and md5) of each file of a Zenodo record, from its API."""
    url = api.rstrip("/") + "/" + record
    meta = read_json(url)
    files = {}
    try:
        for entry in meta["files"]:
            checksum = str(entry["checksum"])
            if not re.fullmatch(r"md5:[0-9a-fA-F]{32}", checksum):  # a file whose hash goes unchecked is not taken
                raise DownloadError(f"{url}: {entry['key']} has the checksum {checksum!r}, not the "
                                    f"'md5:<32 hex digits>' Zenodo publishes; nothing was downloaded")
            files[entry["key"]] = (entry["links"]["self"], Expected(size=entry["size"], md5=checksum[4:].lower()))
    except (KeyError, TypeError) as err:
        raise DownloadError(f"{url}: not a Zenodo record description (no {err})") from None
    return files


def download_suite(name: str, root: Path, api: str = ZENODO_API) -> list[Path]:
    """The archives of suite ``name`` in ``<root>/downloads/``, fetched or resumed and checked."""
    record = DOWNLOADS[name]
    published = zenodo_files(record.record, api)
    downloads = root / "downloads"
    sums = ChecksumRecord(downloads / "SHA256SUMS.json")
    paths = []
    for file in record.files:
        if file not in published:
            raise DownloadError(f"Zenodo record {record.record} holds no {file} (it holds {', '.join(published)})")
        url, expected = published[file]
        dest = downloads / file
        digest = fetch(url, dest, Expected(expected.size, sums.expected(file).sha256, expected.md5))
        if file not in sums.entries:
            sums.record(file, dest, digest)
        paths.append(dest)
    return paths


def prepare_suite(name: str, root: Path, api: str = ZENODO_API, *, verify_only: bool = False,
                  delete_archives: bool = False) -> bool:
    """Download and extract suite ``name`` to ``<root>/<name>/`` where it has a direct link (else print where to
    get it), unless ``verify_only``; then count its images per folder. True when every folder has images."""
    suite = SUITES[name]
    target = root / name
    if name not in DOWNLOADS:
        print(f"{name}: {suite.title}: {suite.source}; then run eval.py --suite {name} --dataroot FOLDER")
        return False
    assert isinstance(suite, FolderSuite), "a downloaded suite's folders are counted"
    layout = suite.layouts[0]  # the archive's own
    if target.is_dir():
        print(f"{name}: {target} exists; not downloaded again")
    elif verify_only:
        print(f"{name}: {target}: no such folder")
        return False
    else:
        print(f"{name}: {suite.title} from Zenodo record {DOWNLOADS[name].record}")
        unpack(download_suite(name, root, api), target, [s.fakes for s in layout.sets], delete_archives)
    rows = [[s.name, _count(target, s.fakes)] for s in layout.sets]
    rows += [[f"{pattern} (reals)", _count(target, pattern)] for pattern in sorted({s.reals for s in layout.sets})]
    print(markdown_table(["folder", "images"], [[name, str(n)] for name, n in rows]))
    complete = all(n for _, n in rows)
    if not complete:
        print(f"\nfolders without images: {suite.source}")
    return complete


def _count(root: Path, folder: str) -> int:
    return len(list_images(root / folder)) if (root / folder).is_dir() else 0
