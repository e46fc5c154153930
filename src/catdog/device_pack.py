"""What a device run sends back, and how the CPU side reads it (docs/device.md).

A call returns at most 8 files of at most 16 MiB, 64 MiB together. The driver (catdog.device_run)
writes, after every finished run, so that a cut call still returns all that finished:
  models-<n>.pt  student model files (catdog.models's format) keyed "<run folder>/<method>", as
                 many as fit in 16 MiB per file, float weights in bfloat16 (BatchNorm's running
                 statistics in float32): eleven float32 students would be 98 MB, in bfloat16 52 MB;
  runs.tar.gz    each run folder's small outputs: params.yaml, models/*.json, metrics/, dvclive/;
  record.json    the environment, the throughput and every run's status (catdog.device_run);
and the command itself tees its output into `log`.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import torch

from catdog.atomic import atomic_path, load_torch_file, save_torch

FILE_LIMIT = 16 * 2**20  # bytes per returned file
RETURN_FILES, RETURN_BYTES = 8, 64 * 2**20  # files and bytes a call returns
OTHER_FILES, OTHER_BYTES = 3, 2 * 2**20  # log, record.json and runs.tar.gz: room kept for them
MODELS_PREFIX, RUNS_TAR, RECORD = "models-", "runs.tar.gz", "record.json"
KEEP_FP32 = ("running_mean", "running_var")  # BatchNorm statistics: small, and sensitive
SMALL_OUTPUTS = ("params.yaml", "models/*.json", "metrics/**/*", "dvclive/**/*")


def travel_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with its float32 tensors in bfloat16, but BatchNorm's running statistics."""
    return {k: v.to(torch.bfloat16) if v.dtype == torch.float32 and not k.endswith(KEEP_FP32) else v
            for k, v in state.items()}


def restore_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A travelled state back in float32 (the bfloat16 numbers, exactly)."""
    return {k: v.float() if v.dtype == torch.bfloat16 else v for k, v in state.items()}


def _bytes(blob: dict) -> int:
    return sum(v.numel() * v.element_size() for v in blob["state_dict"].values()) + 65_536


def bundle_models(models: dict[str, Path], out: Path, limit: int = FILE_LIMIT,
                  max_files: int = RETURN_FILES - OTHER_FILES,
                  max_bytes: int = RETURN_BYTES - OTHER_BYTES) -> list[str]:
    """Write the model files `models` (key -> path, in order) as bfloat16 bundles out/models-<n>.pt
    of at most `limit` bytes each, in at most `max_files` files and `max_bytes` together; returns
    the keys left out for want of room (the last ones)."""
    bundles: list[dict[str, dict]] = [{}]
    size = total = 0
    left_out = []
    for key, path in models.items():
        blob = dict(load_torch_file(path, "model"))
        blob["state_dict"] = travel_state(blob["state_dict"])
        new_file = bool(bundles[-1]) and size + _bytes(blob) > limit
        if left_out or total + _bytes(blob) > max_bytes or (new_file and len(bundles) == max_files):
            left_out.append(key)
            continue
        if new_file:
            bundles.append({})
            size = 0
        bundles[-1][key] = blob
        size += _bytes(blob)
        total += _bytes(blob)
    for i, bundle in enumerate(b for b in bundles if b):
        save_torch(out / f"{MODELS_PREFIX}{i + 1}.pt", bundle)
    return left_out


def read_bundles(folder: Path) -> dict[str, dict]:
    """key -> model-file dict (float32 again) of every models-<n>.pt in `folder`."""
    out = {}
    for path in sorted(folder.glob(f"{MODELS_PREFIX}*.pt")):
        for key, blob in load_torch_file(path, "model bundle").items():
            out[key] = {**blob, "state_dict": restore_state(blob["state_dict"])}
    return out


def pack_runs(runs_root: Path, out_file: Path) -> None:
    """runs_root/<folder>/{params.yaml, models/*.json, metrics/, dvclive/} into one tar.gz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for folder in sorted(p for p in runs_root.iterdir() if p.is_dir()):
            for pattern in SMALL_OUTPUTS:
                for path in sorted(folder.glob(pattern)):
                    if path.is_file() and not path.is_symlink():
                        tar.add(path, arcname=path.relative_to(runs_root).as_posix())
    with atomic_path(out_file) as tmp:
        tmp.write_bytes(buf.getvalue())


def unpack_runs(tar_file: Path, dest: Path) -> list[str]:
    """Extract pack_runs's file into dest; returns the run folders' names."""
    with tarfile.open(tar_file) as tar:
        tar.extractall(dest, filter="data")
        return sorted({Path(m.name).parts[0] for m in tar.getmembers()})
