"""Atomic writes (a killed stage never leaves a half-written file for DVC to cache), and
the guarded read of the torch files they write."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds.

    The temporary file keeps `path`'s name (inside a hidden sibling folder), because some
    writers embed the file name in the content (torch.save does): same data, same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp_path = tmp_dir / path.name
    try:
        yield tmp_path
        tmp_path.chmod(0o644)
        os.replace(tmp_path, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def save_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_text(path: str | Path, text: str) -> None:
    """Write text, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_figure(path: str | Path, fig: Any, dpi: int = 120) -> None:
    """A matplotlib figure as a PNG, atomically; the figure is closed after."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save, atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch_file(path: str | Path, kind: str, missing_hint: str = "") -> Any:
    """torch.load (weights only) of one of our files; one-line errors if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: {kind} file {path} not found{missing_hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise SystemExit(f"error: {path} is not a catdog {kind} file ({type(err).__name__})") from err
