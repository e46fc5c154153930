"""Stage `fetch`: bring the PetImages photos into data/raw/PetImages/{Cat,Dog}.

`data.source` is the official download URL, a local zip, or a local folder that holds
PetImages/{Cat,Dog} (or Cat/ and Dog/ directly). Downloads are resume-safe (a .part file
renamed when complete) and kept in data/downloads/ so a rerun does not download again.
data/raw/SOURCE.json records where the photos came from and the archive's sha256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from catdog.atomic import save_json
from catdog.params import load_or_exit
from catdog.progress_bar import bar
from catdog.stage_time import StageClock

RAW_DIR = Path("data/raw")
DOWNLOAD_DIR = Path("data/downloads")
CLASS_DIRS = ("Cat", "Dog")
CHUNK = 1 << 20  # download / hashing block size


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest_dir: Path = DOWNLOAD_DIR) -> Path:
    """Download `url` into dest_dir with a progress bar, resuming a .part file if one exists."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / (Path(url.split("?")[0]).name or "download.zip")
    if target.is_file():
        return target
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:  # server ignored the range: start over
                have = 0
            total = int(response.headers.get("Content-Length", 0)) + have
            with part.open("ab" if have else "wb") as out, bar(
                total=total or None, initial=have, unit="B", unit_scale=True, desc="download"
            ) as download:
                while block := response.read(CHUNK):
                    out.write(block)
                    download.update(len(block))
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise SystemExit(
            f"error: cannot download data.source={url} ({reason}); offline, point data.source at a "
            "local copy: dvc exp run -S data.source=../shared/data/petimages-180.zip"
        ) from None
    os.replace(part, target)
    return target


def extract_zip(archive: Path, dest: Path) -> int:
    """Extract PetImages/{Cat,Dog}/* (any depth prefix) from `archive` into dest/PetImages."""
    if not zipfile.is_zipfile(archive):
        raise SystemExit(f"error: data.source={archive} is not a zip archive")
    count = 0
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        for member in bar(members, desc="extract", unit="file"):
            parts = Path(member.filename).parts
            if len(parts) < 2 or parts[-2] not in CLASS_DIRS or ".." in parts:
                continue  # skip readmes, licences, and anything trying to escape dest
            out = dest / "PetImages" / parts[-2] / parts[-1]
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            count += 1
    return count


def copy_folder(folder: Path, dest: Path) -> int:
    """Copy <folder>/[PetImages/]{Cat,Dog}/* into dest/PetImages (hard links where possible)."""
    root = folder / "PetImages" if (folder / "PetImages").is_dir() else folder
    count = 0
    for cls in CLASS_DIRS:
        src_dir = root / cls
        if not src_dir.is_dir():
            continue
        out_dir = dest / "PetImages" / cls
        out_dir.mkdir(parents=True, exist_ok=True)
        for src in sorted(p for p in src_dir.iterdir() if p.is_file()):
            try:
                os.link(src, out_dir / src.name)
            except OSError:
                shutil.copy2(src, out_dir / src.name)
            count += 1
    return count


def fetch(source: str, raw_dir: Path = RAW_DIR) -> dict:
    """Fill raw_dir from `source`; the folder appears only once it is complete."""
    is_url = source.startswith(("http://", "https://"))
    path = download(source) if is_url else Path(source).expanduser()
    if not path.exists():
        raise SystemExit(
            f"error: data.source={source} does not exist; give a URL, a zip or a folder with "
            "PetImages/Cat and PetImages/Dog"
        )
    tmp = raw_dir.with_name(raw_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if path.is_dir():
        count, checksum = copy_folder(path, tmp), None
    else:
        count, checksum = extract_zip(path, tmp), sha256_file(path)
    if count == 0:
        shutil.rmtree(tmp)
        raise SystemExit(f"error: data.source={source} holds no files under Cat/ or Dog/ folders")
    info = {"source": source, "sha256": checksum, "files": count}
    save_json(tmp / "SOURCE.json", info)
    shutil.rmtree(raw_dir, ignore_errors=True)
    os.replace(tmp, raw_dir)
    return info


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("fetch")
    params = load_or_exit()["data"]
    info = fetch(params["source"])
    print(f"fetch: {info['files']} files from {info['source']} into {RAW_DIR}", file=sys.stderr)
    clock.save()


if __name__ == "__main__":
    main()
