"""scripts/device/setup.sh: a kit that travels in parts, one per call, is rebuilt, checked and
installed once every part has arrived; a damaged part is refused with a clear message."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tiny_wheel() -> bytes:
    """A pure-Python wheel of a package `kitcheck` (kitcheck.VALUE == 42)."""
    buf = io.BytesIO()
    info = "kitcheck-0.1.dist-info"
    files = {
        "kitcheck/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: kitcheck\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in {**files, f"{info}/RECORD": record}.items():
            zf.writestr(name, text)
    return buf.getvalue()


def make_kit(kit: Path, parts: int) -> None:
    """Same layout as scripts/device/kit.sh writes: part-NN, parts.txt, kit.sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"./wheels/kitcheck-0.1-py3-none-any.whl": tiny_wheel(),
                           "./petimages-180.zip": os.urandom(30_000),
                           "./torch/hub/checkpoints/mobilenet_v2-b0353104.pth": b"w" * 1000}.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    data = buf.getvalue()
    kit.mkdir(parents=True)
    step = -(-len(data) // parts)
    names = []
    for i in range(parts):
        names.append(f"part-{i:02d}")
        (kit / names[-1]).write_bytes(data[i * step:(i + 1) * step])
    (kit / "parts.txt").write_text("\n".join(names) + "\n")
    (kit / "kit.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  kit.tar\n")


def call(tree: Path, kit: Path, part: str | None, stash: Path) -> tuple[str, str]:
    """One 'call' on the box: the tree carries the kit's small files and at most one part."""
    carried = tree / ".device-kit"
    shutil.rmtree(carried, ignore_errors=True)
    carried.mkdir()
    for name in ["parts.txt", "kit.sha256"] + ([part] if part else []):
        shutil.copy2(kit / name, carried / name)
    script = ("source scripts/device/setup.sh; echo \"ready=$CATDOG_READY\"; "
              "python3 -c 'import kitcheck; print(kitcheck.VALUE)' 2>/dev/null; echo \"$TORCH_HOME\"")
    done = subprocess.run(["bash", "-c", script], cwd=tree, capture_output=True, text=True,
                          env={**os.environ, "STASH": str(stash),
                               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "scripts/device").mkdir(parents=True)
    shutil.copy2(REPO / "scripts/device/setup.sh", root / "scripts/device/setup.sh")
    return root


def test_parts_arrive_one_per_call_then_install(tree: Path, tmp_path: Path) -> None:
    kit, stash = tmp_path / "kit", tmp_path / "stash"
    make_kit(kit, parts=3)
    out, err = call(tree, kit, "part-00", stash)
    assert "ready=0" in out and "kit parts still missing: part-01 part-02" in err
    out, err = call(tree, kit, "part-02", stash)  # out of order is fine
    assert "ready=0" in out and "still missing: part-01" in err
    out, err = call(tree, kit, "part-01", stash)
    assert out.split() == ["ready=1", "42", str(stash / "torch")]
    assert (stash / "petimages-180.zip").stat().st_size == 30_000
    assert (stash / "torch/hub/checkpoints/mobilenet_v2-b0353104.pth").is_file()
    assert not list(stash.glob("part-*"))  # parts are removed once unpacked
    out, err = call(tree, kit, None, stash)  # later calls carry nothing and are ready at once
    assert out.split()[:2] == ["ready=1", "42"] and "missing" not in err


def test_a_damaged_part_is_refused(tree: Path, tmp_path: Path) -> None:
    kit, stash = tmp_path / "kit", tmp_path / "stash"
    make_kit(kit, parts=2)
    damaged = bytearray((kit / "part-01").read_bytes())
    damaged[100] ^= 0xFF
    (kit / "part-01").write_bytes(bytes(damaged))
    call(tree, kit, "part-00", stash)
    out, err = call(tree, kit, "part-01", stash)
    assert "ready=0" in out
    assert "do not rebuild it (sha256); carry them again" in err
    assert not (stash / "unpacked").exists()
