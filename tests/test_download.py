"""Downloads against a local HTTP server: resume, checksums, multi-part 7z, offline errors, released weights."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from data import PAPER_TEST_SETS, PAPER_TRAIN_CLASSES
from data.forensynths import SPLITS, count_images, prepare, verify_split
from networks import released
from networks.released import Released, download_released, model_path
from tests.helpers import free_port, random_image, run_main, write_png
from util.download import ChecksumRecord, DownloadError, Expected, fetch


@dataclass
class Server:
    """Serves ``files`` by name; honours ``Range: bytes=N-`` unless ``ranges`` is off; ``cut`` maps a name to a
    byte count after which its next transfer is dropped (once)."""

    files: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True
    cut: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            name = self.path.lstrip("/")
            state.requests.append((name, self.headers.get("Range")))
            if name not in state.files:
                self.send_error(404)
                return
            data = state.files[name]
            start = 0
            header = self.headers.get("Range")
            if header and state.ranges:
                start = int(header.removeprefix("bytes=").rstrip("-"))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if name in state.cut:
                body = body[: state.cut.pop(name)]
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def _payload(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_fetch_downloads_and_returns_sha256(server: Server, tmp_path: Path):
    data = _payload(3_000_000)
    server.files["a.bin"] = data
    digest = fetch(f"{server.url}/a.bin", tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / "a.bin.part").exists()


def test_interrupted_transfer_keeps_the_part_and_resumes_with_a_range(server: Server, tmp_path: Path):
    data = _payload(2_500_000)
    server.files["a.bin"] = data
    server.cut["a.bin"] = 1_000_000
    with pytest.raises(DownloadError, match="run again to resume"):
        fetch(f"{server.url}/a.bin", tmp_path / "a.bin")
    assert (tmp_path / "a.bin.part").stat().st_size == 1_000_000
    assert not (tmp_path / "a.bin").exists()

    fetch(f"{server.url}/a.bin", tmp_path / "a.bin", Expected(len(data), hashlib.sha256(data).hexdigest()))
    assert server.requests[-1] == ("a.bin", "bytes=1000000-")
    assert (tmp_path / "a.bin").read_bytes() == data


def test_server_without_ranges_restarts_the_transfer(server: Server, tmp_path: Path):
    data = _payload(300_000)
    server.files["a.bin"], server.ranges = data, False
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes that must not survive")
    fetch(f"{server.url}/a.bin", tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == data


def test_checksum_mismatch_is_rejected_and_the_bytes_kept(server: Server, tmp_path: Path):
    server.files["a.bin"] = _payload(100_000)
    with pytest.raises(DownloadError, match="does not match the expected"):
        fetch(f"{server.url}/a.bin", tmp_path / "a.bin", Expected(sha256="0" * 64))
    assert not (tmp_path / "a.bin").exists()
    assert (tmp_path / "a.bin.part").stat().st_size == 100_000
    # A later run finds the complete part (the server answers 416 to its range) and rejects it again.
    with pytest.raises(DownloadError, match="does not match"):
        fetch(f"{server.url}/a.bin", tmp_path / "a.bin", Expected(sha256="0" * 64))
    assert not (tmp_path / "a.bin").exists()


def test_size_mismatch_of_an_existing_file_is_an_error(tmp_path: Path):
    (tmp_path / "a.bin").write_bytes(b"12345")
    with pytest.raises(DownloadError, match="5 bytes, expected 6"):
        fetch("http://unused.invalid/a.bin", tmp_path / "a.bin", Expected(size=6))


def test_offline_is_one_clear_error(tmp_path: Path):
    with pytest.raises(DownloadError, match=r"cannot download .*offline, or the server is unreachable"):
        fetch(f"{_closed_port_url()}/a.bin", tmp_path / "a.bin")


def test_missing_file_on_the_server(server: Server, tmp_path: Path):
    with pytest.raises(DownloadError, match="Not Found"):
        fetch(f"{server.url}/nope.bin", tmp_path / "nope.bin")


def test_checksum_record_is_written_on_first_download_and_enforced_later(server: Server, tmp_path: Path):
    record_path = tmp_path / "SHA256SUMS.json"
    data = _payload(10_000)
    server.files["a.bin"] = data
    record = ChecksumRecord(record_path)
    digest = fetch(f"{server.url}/a.bin", tmp_path / "a.bin", record.expected("a.bin"))
    record.record("a.bin", tmp_path / "a.bin", digest)
    assert json.loads(record_path.read_text()) == {"a.bin": {"sha256": hashlib.sha256(data).hexdigest(),
                                                             "size": 10_000}}
    # The mirror now serves other bytes of the same size: the recorded hash refuses them.
    (tmp_path / "a.bin").unlink()
    server.files["a.bin"] = _payload(10_000, seed=1)
    with pytest.raises(DownloadError, match="does not match"):
        fetch(f"{server.url}/a.bin", tmp_path / "a.bin", ChecksumRecord(record_path).expected("a.bin"))


# ----------------------------------------------------------------------------------------------- datasets
def _tree(root: Path, classes: dict[str, tuple[int, int]]) -> None:
    rng = np.random.default_rng(0)
    for name, (real, fake) in classes.items():
        for label, count in (("0_real", real), ("1_fake", fake)):
            for i in range(count):
                write_png(root / name / label / f"{i}.png", random_image(rng, 8, 8))


def _zip_folder(folder: Path, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.png")):
            archive.write(path, f"{prefix}/{path.relative_to(folder)}")
    return buffer.getvalue()


def test_reference_counts_cover_every_set_and_class():
    assert list(SPLITS["test"].counts) == list(PAPER_TEST_SETS)
    assert list(SPLITS["train"].counts) == list(SPLITS["val"].counts) == list(PAPER_TRAIN_CLASSES)


def test_test_split_zip_is_extracted_into_the_layout(server: Server, tmp_path: Path):
    _tree(tmp_path / "src", {"progan": (3, 2), "biggan": (1, 1)})
    server.files["CNN_synth_testset.zip"] = _zip_folder(tmp_path / "src", "CNN_synth_testset")
    root = tmp_path / "dataset"
    assert not prepare(["test"], root, server.url)  # counts differ from the reference
    assert count_images(root / "test" / "progan") == (3, 2)
    rows, table = verify_split("test", root)
    by_name = {r["name"]: r for r in rows}
    assert (by_name["biggan"]["real"], by_name["biggan"]["expected_real"]) == (1, 2000)
    assert "| progan | 3 | 2 | 4000/4000 | NO |" in table
    assert json.loads((root / "downloads" / "SHA256SUMS.json").read_text()).keys() == {"CNN_synth_testset.zip"}
    assert not list(root.glob(".*extracting"))


def test_multi_part_7z_holding_a_zip_is_joined_and_extracted(server: Server, tmp_path: Path):
    import py7zr

    _tree(tmp_path / "src", {"car": (2, 2), "cat": (1, 3)})
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "progan_train.zip").write_bytes(_zip_folder(tmp_path / "src", "progan_train"))
    with py7zr.SevenZipFile(tmp_path / "all.7z", "w") as archive:
        archive.write(tmp_path / "inner" / "progan_train.zip", "progan_train.zip")
    data = (tmp_path / "all.7z").read_bytes()
    parts = SPLITS["train"].files
    step = -(-len(data) // len(parts))
    for i, name in enumerate(parts):
        server.files[name] = data[i * step:(i + 1) * step]
    assert len(data) > step * (len(parts) - 1)  # every part holds bytes

    root = tmp_path / "dataset"
    prepare(["train"], root, server.url, delete_archives=True)
    assert count_images(root / "train" / "car") == (2, 2)
    assert count_images(root / "train" / "cat") == (1, 3)
    assert not list((root / "downloads").glob("progan_train.7z.*"))  # --delete_archives
    assert set(json.loads((root / "downloads" / "SHA256SUMS.json").read_text())) == set(parts)


def test_dataset_download_cli_offline_and_verify(tmp_path: Path, capsys):
    from dataset.download import main

    code, _, err = run_main(main, ["val", "--root", str(tmp_path), "--base_url", _closed_port_url()], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: cannot download")
    _tree(tmp_path / "val", dict.fromkeys(SPLITS["val"].counts, (1, 1)))
    code, out, _ = run_main(main, ["val", "--root", str(tmp_path), "--verify"], capsys)
    assert code == 1
    assert "| airplane | 1 | 1 | 100/100 | NO |" in out


# ------------------------------------------------------------------------------------------------ weights
def test_released_weights_are_checked_against_their_sha256(server: Server, tmp_path: Path, monkeypatch):
    data = _payload(50_000)
    server.files["w.pth"] = data
    good = Released(f"{server.url}/w.pth", Expected(len(data), hashlib.sha256(data).hexdigest()))
    monkeypatch.setitem(released.RELEASED, "blur_jpg_prob0.5", good)
    assert download_released("blur_jpg_prob0.5", tmp_path).read_bytes() == data

    bad = Released(f"{server.url}/w.pth", Expected(len(data), "f" * 64))
    monkeypatch.setitem(released.RELEASED, "blur_jpg_prob0.1", bad)
    with pytest.raises(DownloadError, match="does not match"):
        download_released("blur_jpg_prob0.1", tmp_path)
    assert not (tmp_path / "blur_jpg_prob0.1.pth").exists()


def test_model_path_shorthand():
    assert model_path("blur_jpg_prob0.5") == Path("weights/blur_jpg_prob0.5.pth")
    assert model_path("blur_jpg_prob0.1") == Path("weights/blur_jpg_prob0.1.pth")
    assert model_path("checkpoints/run/best.pth") == Path("checkpoints/run/best.pth")


def test_weights_cli_offline_is_one_line(tmp_path: Path, capsys, monkeypatch):
    from weights.download import main

    # The real URLs with the network cut (there is none here or in CI, but the test must not depend on that).
    def unreachable(*args):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", unreachable)
    code, _, err = run_main(main, ["--dir", str(tmp_path)], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: cannot download https://www.dropbox.com/")


# ------------------------------------------------------------------------------------------------ suites
def _zenodo(server: Server, record: str, files: dict[str, bytes], md5: dict[str, str] | None = None) -> str:
    """Serve ``files`` as Zenodo record ``record`` (its API description and the files); the API base URL."""
    md5 = md5 or {}
    entries = [{"key": name, "size": len(data), "checksum": "md5:" + md5.get(name, hashlib.md5(data).hexdigest()),
                "links": {"self": f"{server.url}/files/{name}"}} for name, data in files.items()]
    server.files[f"api/records/{record}"] = json.dumps({"files": entries}).encode()
    server.files.update({f"files/{name}": data for name, data in files.items()})
    return f"{server.url}/api/records/"


def _synthbuster_zip(tmp_path: Path) -> bytes:
    rng = np.random.default_rng(0)
    for generator, count in (("dalle2", 2), ("glide", 3)):
        for i in range(count):
            write_png(tmp_path / "src" / generator / f"r{i}.png", random_image(rng, 8, 8))
    return _zip_folder(tmp_path / "src", "synthbuster")


def test_synthbuster_comes_from_zenodo_checked_against_its_md5_and_resumes(server: Server, tmp_path: Path, capsys):
    from data.suite_downloads import prepare_suite

    data = _synthbuster_zip(tmp_path)
    api = _zenodo(server, "10066460", {"synthbuster.zip": data})
    server.cut["files/synthbuster.zip"] = len(data) // 2
    root = tmp_path / "dataset"
    with pytest.raises(DownloadError, match="run again to resume"):
        prepare_suite("synthbuster", root, api)
    assert not prepare_suite("synthbuster", root, api)  # resumed and extracted; the reals are not there
    assert server.requests[-1] == ("files/synthbuster.zip", f"bytes={len(data) // 2}-")
    out = capsys.readouterr().out
    assert "| dalle2 | 2 |" in out and "| glide | 3 |" in out and "| dalle3 | 0 |" in out
    assert "| raise1k (reals) | 0 |" in out and "loki.disi.unitn.it/RAISE" in out
    assert sorted(p.name for p in (root / "synthbuster").iterdir()) == ["dalle2", "glide"]
    sums = json.loads((root / "downloads" / "SHA256SUMS.json").read_text())
    assert sums["synthbuster.zip"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_synthbuster_with_a_wrong_md5_is_rejected_and_kept(server: Server, tmp_path: Path):
    from data.suite_downloads import prepare_suite

    api = _zenodo(server, "10066460", {"synthbuster.zip": _synthbuster_zip(tmp_path)},
                  md5={"synthbuster.zip": "0" * 32})
    with pytest.raises(DownloadError, match="md5 .* does not match the expected 0000"):
        prepare_suite("synthbuster", tmp_path / "dataset", api)
    assert (tmp_path / "dataset" / "downloads" / "synthbuster.zip.part").is_file()
    assert not (tmp_path / "dataset" / "synthbuster").exists()


@pytest.mark.parametrize("checksum", ["5d41402abc4b2a76b9719d911017c592", "sha256:" + "0" * 64, "md5:" + "x" * 32])
def test_a_zenodo_checksum_that_is_not_an_md5_is_an_error_not_a_skipped_check(server: Server, tmp_path: Path,
                                                                               checksum: str):
    from data.suite_downloads import prepare_suite

    api = _zenodo(server, "10066460", {"synthbuster.zip": _synthbuster_zip(tmp_path)})
    record = json.loads(server.files["api/records/10066460"])
    record["files"][0]["checksum"] = checksum  # the bare md5 that once went unchecked, another hash, no hex
    server.files["api/records/10066460"] = json.dumps(record).encode()
    message = f"synthbuster.zip has the checksum {checksum!r}, not the 'md5:<32 hex digits>' Zenodo publishes"
    with pytest.raises(DownloadError, match=re.escape(message + "; nothing was downloaded")):
        prepare_suite("synthbuster", tmp_path / "dataset", api)
    assert [path for path, _ in server.requests] == ["api/records/10066460"]
    assert not (tmp_path / "dataset").exists()


@pytest.mark.parametrize(("suite", "link", "layout"), [
    ("univfd", "drive.google.com/file/d/1FXlGIRh_Ud3cScMgSVDbEWmPDmjcrm1t", "laion/0_real"),
    ("univfd", "drive.google.com/drive/folders/1nkCXClC7kFM01_fqmLrVNtnOYEFPtWO-", "<set>/0_real and <set>/1_fake"),
    ("genimage", "github.com/GenImage-Dataset/GenImage", "<generator>/<subfolder>/val/{ai,nature}"),
    ("genimage", "github.com/GenImage-Dataset/GenImage", "<generator>/val/{ai,nature}"),
    ("wildrf", "Google Drive", "test/{reddit,twitter,facebook}/{0_real,1_fake}"),
])
def test_suites_without_a_direct_link_say_where_and_how_to_lay_them_out(suite, link, layout, tmp_path, capsys):
    from dataset.download import main

    code, out, _ = run_main(main, [suite, "--root", str(tmp_path)], capsys)
    assert code == 1 and out.count("\n") == 1
    assert link in out and layout in out and f"eval.py --suite {suite}" in out
    assert not list(tmp_path.iterdir())  # nothing downloaded, nothing created


def test_zenodo_offline_is_one_clear_error(tmp_path: Path, capsys):
    from dataset.download import main

    code, _, err = run_main(main, ["synthbuster", "--root", str(tmp_path), "--zenodo_api", _closed_port_url()],
                            capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: cannot read http://127.0.0.1")
