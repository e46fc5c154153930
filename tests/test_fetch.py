"""fetch from a local zip, a folder, and a real HTTP download (on loopback) that resumes."""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import slice_zip

from catdog.stages import fetch as stage


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory: pytest.TempPathFactory, shared_zip: Path) -> Path:
    """A slice of the shared zip (10 cats, 10 dogs, the readme) in the official layout."""
    path = slice_zip(shared_zip, tmp_path_factory.mktemp("zip") / "kagglecatsanddogs_slice.zip", 10)
    with zipfile.ZipFile(path, "a") as dst:
        dst.writestr("CDLA-Permissive-2.0.pdf", b"licence")
        dst.writestr("../evil/escape.jpg", b"x")  # must never be written outside data/raw
    return path


def _raw_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "data/raw").rglob("*.jpg"))


def test_local_zip(tmp_path: Path, small_zip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    info = stage.fetch(str(small_zip))
    assert info["files"] == 20
    assert info["sha256"] == hashlib.sha256(small_zip.read_bytes()).hexdigest()
    assert len(_raw_files(tmp_path)) == 20
    assert json.loads((tmp_path / "data/raw/SOURCE.json").read_text())["files"] == 20
    assert not (tmp_path / "evil").exists() and not (tmp_path / "data/evil").exists()


def test_local_folder(tmp_path: Path, small_zip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with zipfile.ZipFile(small_zip) as zf:
        zf.extractall(tmp_path / "copy", members=[m for m in zf.namelist() if "PetImages" in m])
    monkeypatch.chdir(tmp_path)
    info = stage.fetch(str(tmp_path / "copy"))
    assert info["files"] == 20 and info["sha256"] is None  # README.txt is not under Cat/Dog: skipped
    assert len(_raw_files(tmp_path)) == 20


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.zip", "does not exist"),
        (lambda d: (d / "notes.zip").write_text("hello") and d / "notes.zip", "is not a zip archive"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no files under Cat/ or Dog/"),
    ],
)
def test_bad_sources_fail_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make,
                                      message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/keep.txt").write_text("finished work")
    with pytest.raises(SystemExit) as err:
        stage.fetch(str(make(tmp_path)))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert (tmp_path / "data/raw/keep.txt").read_text() == "finished work"


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves one file, honouring `Range: bytes=N-` as a real download server does."""

    payload = b""
    ranges: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        start = 0
        if header := self.headers.get("Range"):
            self.ranges.append(header)
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server(small_zip: Path) -> Iterator[str]:
    _RangeHandler.payload = small_zip.read_bytes()
    _RangeHandler.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/kagglecatsanddogs_slice.zip"
    httpd.shutdown()


def test_download_resumes_a_partial_file(tmp_path: Path, small_zip: Path, server: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    payload = small_zip.read_bytes()
    part = tmp_path / "data/downloads/kagglecatsanddogs_slice.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(payload[: len(payload) // 2])  # an interrupted earlier download
    info = stage.fetch(server)
    assert _RangeHandler.ranges == [f"bytes={len(payload) // 2}-"]
    done = tmp_path / "data/downloads/kagglecatsanddogs_slice.zip"
    assert done.read_bytes() == payload and not part.exists()
    assert info["files"] == 20 and info["sha256"] == hashlib.sha256(payload).hexdigest()
    stage.fetch(server)  # a second fetch reuses the finished download
    assert _RangeHandler.ranges == [f"bytes={len(payload) // 2}-"]


def test_unreachable_url_says_how_to_go_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        stage.fetch("http://127.0.0.1:9/kagglecatsanddogs_5340.zip")  # discard port: refused
    text = str(err.value)
    assert text.startswith("error: cannot download data.source=http://127.0.0.1:9/")
    assert "dvc exp run -S data.source=../shared/data/petimages-180.zip" in text
