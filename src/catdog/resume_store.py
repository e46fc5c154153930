"""Checkpoints that outlive a queued experiment's copy of the tree.

`dvc queue start` runs each experiment in a throwaway copy of the repository; when its stage is
killed, the copy and the checkpoint in it go. With $CATDOG_RESUME_DIR set (scripts/env.sh sets it
to .dvc/tmp/catdog-resume of the main tree), every checkpoint the training loop writes is also
kept there under its run's fingerprint (a hard link: no second copy on disk), so the same
experiment queued again resumes where the killed one stopped; a finished run removes its entry.
A fingerprint covers params, inputs and code, so only the very same run ever picks one up.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

RESUME_ENV = "CATDOG_RESUME_DIR"


def store_dir() -> Path | None:
    value = os.environ.get(RESUME_ENV)
    return Path(value) if value else None


def stored(run_id: str) -> Path | None:
    """The kept checkpoint of run `run_id`, if any."""
    root = store_dir()
    path = root / f"{run_id}.pt" if root else None
    return path if path is not None and path.is_file() else None


def keep(checkpoint: Path, run_id: str) -> None:
    """Keep `checkpoint` (just written) as run `run_id`'s: replaced atomically, linked if it can be."""
    root = store_dir()
    if root is None:
        return
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{run_id}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(checkpoint, tmp)
    except OSError:  # another file system: a copy
        shutil.copy2(checkpoint, tmp)
    os.replace(tmp, root / f"{run_id}.pt")


def forget(run_id: str) -> None:
    """Drop run `run_id`'s kept checkpoint (it finished)."""
    path = stored(run_id)
    if path is not None:
        path.unlink(missing_ok=True)
