"""HTTP downloads that survive interruptions: resume, size and checksum checks, one-line errors offline.

A transfer writes to ``<dest>.part`` and renames it to ``<dest>`` only once it is complete and verified, so a
file under its final name is always whole. An interrupted transfer, or one whose checksum does not match, keeps its
``.part`` file: the next run resumes it with an HTTP range request (a server that ignores ranges is read again
from the start).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from util.errors import UserError

CHUNK = 1 << 20
TIMEOUT_S = 30.0


class DownloadError(UserError):
    """A transfer that failed or produced bytes other than the expected ones."""


def _hash_file(digest: Any, path: Path, desc: str) -> Any:
    """``digest`` updated with the bytes of ``path``."""
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=desc,
                                     leave=False) as bar:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest


def sha256_file(path: Path, desc: str) -> str:
    return _hash_file(hashlib.sha256(), path, desc).hexdigest()


@dataclass(frozen=True)
class Expected:
    """What a file must be; None means "not known (yet)"."""

    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    """What some hosts publish (Zenodo); checked with one more read of the file."""


def _total_size(response, offset: int) -> int | None:
    """The full file size from a 200 (Content-Length) or a 206 (Content-Range: bytes a-b/total) response."""
    if response.status == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _open(url: str, offset: int):
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def _transfer(url: str, part: Path) -> str:
    """Append the rest of ``url`` to ``part`` (or rewrite it when the server does not resume); the sha256 of the
    whole file, hashed as it arrives so that a multi-GB file is not read back a second time."""
    offset = part.stat().st_size if part.exists() else 0
    name = part.name.removesuffix(".part")
    try:
        response = _open(url, offset)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the range starts at the end: the part file is already complete
            return sha256_file(part, f"sha256 {name}")
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # the server sent the whole file
        digest = _hash_file(hashlib.sha256(), part, f"sha256 {name} (resumed)") if offset else hashlib.sha256()
        total = _total_size(response, offset)
        with open(part, "ab" if offset else "wb") as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                              desc=name) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"{url}: the transfer ended after {part.stat().st_size:,} of {total:,} bytes; "
                            f"run again to resume ({part} is kept)")
    return digest.hexdigest()


def fetch(url: str, dest: Path, expected: Expected = Expected()) -> str:
    """Download ``url`` to ``dest`` (skipped when ``dest`` exists) and return its sha256.

    ``expected`` size and sha256 are checked when known; a mismatch keeps the bytes in ``<dest>.part`` and says so.
    """
    if dest.exists():
        return verify(dest, expected)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        digest = _transfer(url, part)
    except (OSError, http.client.HTTPException) as err:  # URLError, refused connections, timeouts, cut transfers
        reason = getattr(err, "reason", None) or err
        kept = f"; {part} is kept, run again to resume" if part.exists() and part.stat().st_size else ""
        raise DownloadError(f"cannot download {url}: {reason} (offline, or the server is unreachable){kept}") \
            from None
    verify(part, expected, name=dest.name, digest=digest)
    os.replace(part, dest)
    return digest


def read_json(url: str) -> Any:
    """The JSON document at ``url`` (a repository's metadata); one-line DownloadError when it cannot be had."""
    try:
        with _open(url, 0) as response:
            return json.loads(response.read())
    except (OSError, http.client.HTTPException, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(f"cannot read {url}: {reason} (offline, or the server is unreachable)") from None


def verify(path: Path, expected: Expected, name: str | None = None, digest: str | None = None) -> str:
    """sha256 of ``path`` (``digest`` when already known) after checking its size and hash against ``expected``;
    raises DownloadError."""
    name = name or path.name
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        raise DownloadError(f"{path}: {size:,} bytes, expected {expected.size:,} for {name}; delete it to "
                            f"download again")
    digest = digest or sha256_file(path, f"sha256 {name}")
    for kind, want, got in (("sha256", expected.sha256, lambda: digest),
                             ("md5", expected.md5, lambda: _hash_file(hashlib.md5(), path, f"md5 {name}").hexdigest())):
        if want is not None and (value := got()) != want:
            raise DownloadError(f"{path}: {kind} {value} does not match the expected {want} for {name}; the file is "
                                f"kept for inspection, delete it to download again")
    return digest


class ChecksumRecord:
    """sha256 and size of each downloaded file, recorded on its first complete download (a JSON file) and
    required to match on every later download or verification."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, object]] = json.loads(path.read_text()) if path.is_file() else {}

    def expected(self, name: str) -> Expected:
        entry = self.entries.get(name, {})
        return Expected(size=entry.get("size"), sha256=entry.get("sha256"))  # type: ignore[arg-type]

    def record(self, name: str, file: Path, sha256: str) -> None:
        self.entries[name] = {"size": file.stat().st_size, "sha256": sha256}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.entries, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)
