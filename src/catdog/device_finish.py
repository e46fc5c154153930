"""The CPU side after a device run (docs/device.md): score the returned students on the test split,
draw their feature maps, and write results/<profile>/ with the same report as results/cpu/.

    python -m catdog.device_finish RETURNED [--prep .] [--work .device-work] [--out results/<profile>]

RETURNED is the folder of the second call's files (record.json, runs.tar.gz, models-<n>.pt).
1. The run folders come back from runs.tar.gz into WORK/<profile>/<size>/ and the students
   (float32 again, catdog.device_pack) into their models/; a student that reads no pool (scratch,
   imagenet: trained once) is copied into every pool size's folder, as DVC's run cache would.
2. Each folder gets the prep's test split (the prep the kit was made from: its index.csv is checked
   by sha256) and runs dvc.yaml's evaluate and featuremaps commands for each student
   (catdog.stage_runner; the feature maps stay in WORK, plots/<method>/featuremaps/).
3. OUT/runs/<size>-seed<seed>/ gets each folder's params.yaml and metrics: the students', the
   prep's teacher (metrics/teacher.json) and representation floor and ceiling, and the device's
   own stage times (only those: the report's seconds are the GPU's).
4. `python -m catdog.report --runs-dir OUT/runs --out OUT`, then OUT/device.json (the device's
   record) and OUT/device.md (its environment, throughput and runs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from catdog import stage_runner
from catdog.atomic import save_json, save_text, save_torch
from catdog.cache import INDEX_FILE, split_path
from catdog.device_kit import sha256
from catdog.device_pack import RECORD, RUNS_TAR, read_bundles, unpack_runs
from catdog.device_run import device_stages
from catdog.methods import METHODS
from catdog.params import flatten, read_yaml

TEACHER_METRICS = Path("metrics/teacher.json")
BOUNDS = Path("metrics/representation/bounds.json")


def restore(returned: Path, runs: Path, record: dict) -> dict[str, list[str]]:
    """The run folders and students back under `runs`; returns folder -> students to score there
    (a shared student in its own folder only: its scores are copied, not computed again)."""
    shutil.rmtree(runs, ignore_errors=True)
    unpack_runs(returned / RUNS_TAR, runs)
    for key, blob in read_bundles(returned).items():
        folder, method = key.split("/")
        save_torch(runs / folder / "models" / f"{method}.pt", blob)
    done = [r for r in record["runs"] if r["status"] == "done"]
    shared, home = set(record["shared"]["methods"]), record["shared"]["folder"]
    for run in (r for r in done if r["method"] in shared):
        for folder in (str(s) for s in record["kit"]["sizes"] if str(s) != home):
            copy_outputs(runs / home, runs / folder, run["method"], trained=True)
    return {str(size): [r["method"] for r in done if r["folder"] == str(size)]
            for size in record["kit"]["sizes"]}


def copy_outputs(src: Path, dest: Path, method: str, trained: bool) -> None:
    """A method's training outputs (trained) or its scores from one run folder to another."""
    names = ([f"models/{method}.pt", f"models/{method}.json"]
             + [f"metrics/time/{s}.json" for s in device_stages(method)] if trained
             else [f"metrics/{method}.json", f"plots/{method}"])
    for name in names:
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, dirs_exist_ok=True)
        elif (src / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dest / name)


def score(runs: Path, students: dict[str, list[str]], prep: Path, record: dict) -> None:
    """evaluate and featuremaps for each student, on the prep's test split."""
    if sha256(prep / INDEX_FILE) != record["kit"]["index_sha256"]:
        raise SystemExit(f"error: {prep / INDEX_FILE} is not the index the kit was built from: "
                         "its test split may differ (rerun the prep that made the kit)")
    test = (prep / split_path("test")).resolve()
    for folder, methods in students.items():
        link = runs / folder / split_path("test")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(test)
        for method in methods:
            for stage in (f"evaluate-{method}", f"featuremaps-{method}"):
                print(f"device_finish: {stage} at {folder}", file=sys.stderr, flush=True)
                stage_runner.run(stage_runner.command(stage), runs / folder)
    home = record["shared"]["folder"]
    for method in (m for m in record["shared"]["methods"] if m in students.get(home, [])):
        for folder in students:
            if folder != home:
                copy_outputs(runs / home, runs / folder, method, trained=False)
                students[folder].append(method)


def snapshot(runs: Path, students: dict[str, list[str]], prep: Path, out: Path) -> Path:
    """OUT/runs/<size>-seed<seed>/ for each pool size (as catdog.profiles.snapshot lays them out)."""
    dest_root = out / "runs"
    shutil.rmtree(dest_root, ignore_errors=True)
    for folder, methods in students.items():
        src = runs / folder
        seed = flatten(read_yaml((src / "params.yaml").read_text()))["train.seed"]
        dest = dest_root / f"{folder}-seed{seed}"
        (dest / "metrics/time").mkdir(parents=True)
        shutil.copy2(src / "params.yaml", dest / "params.yaml")
        for method in methods:
            shutil.copy2(src / f"metrics/{method}.json", dest / f"metrics/{method}.json")
            for stage in device_stages(method):
                if (src / f"metrics/time/{stage}.json").is_file():
                    shutil.copy2(src / f"metrics/time/{stage}.json", dest / f"metrics/time/{stage}.json")
            if (rep := src / f"metrics/representation/{method}.json").is_file():
                (dest / "metrics/representation").mkdir(exist_ok=True)
                shutil.copy2(rep, dest / f"metrics/representation/{method}.json")
        if (prep / TEACHER_METRICS).is_file():
            shutil.copy2(prep / TEACHER_METRICS, dest / "metrics/teacher.json")
        if (prep / BOUNDS).is_file():
            (dest / "metrics/representation").mkdir(exist_ok=True)
            shutil.copy2(prep / BOUNDS, dest / BOUNDS)
    return dest_root


def device_markdown(record: dict) -> str:
    """device.md: what ran where, how fast, and what became of each run."""
    env, kit = record.get("environment", {}), record["kit"]
    lines = [f"# Device run: profile {record['profile']}", "",
             f"Written by `python -m catdog.device_finish` from the device run started "
             f"{record['started']} (the whole record: device.json). The teacher (its fit, logits, "
             "held-out labels and test score) ran on the CPU beforehand; the students were scored "
             "on test on the CPU afterwards; the report's seconds are the device's stage times.", "",
             f"- device: {env.get('gpu', env.get('device', '?'))}"
             + (f" ({env['gpu_memory_gib']} GiB, driver {env.get('driver', '?')})" if "gpu" in env else "")
             + f"; torch {env.get('torch')}, torchvision {env.get('torchvision')}, CUDA "
             f"{env.get('cuda')}, cuDNN {env.get('cudnn')}, Python {env.get('python')}, "
             f"{env.get('cpus')} CPUs",
             f"- kit: parts {', '.join(kit['parts'])}; ImageNet weights {kit['imagenet_weights']}; "
             f"pool sizes {kit['sizes']}"
             + (f" (missing: {kit['missing_sizes']})" if kit["missing_sizes"] else ""),
             f"- data: {record['data']['images']} decoded at {record['data']['image_size']} px in "
             f"{record['data']['decode_s']} s; deadline {record['deadline_s']:.0f} s, elapsed "
             f"{record.get('elapsed_s', '?')} s"
             + (f"; not returned (no room): {record['not_returned']}" if record.get("not_returned") else ""),
             "",
             "Bare training step (MobileNetV2, cross-entropy + AdamW on ready-made tensors; the "
             "ceiling each stage is measured against):", "",
             "| stage kind | crop (px) | batch | img/s |", "|---|---|---|---|"]
    for kind, row in record["bare_step"].items():
        lines.append(f"| {kind} | {row['image_size']} | {row['batch']} | {row['img_per_s']:,.0f} |")
    lines += ["", "Runs, in the order they ran (img/s: training passes, a SimCLR image counts two, "
              "over the stage's wall time, and its share of the bare step):", "",
              "| method | pool | status | seconds | stages |", "|---|---|---|---|---|"]
    for run in record["runs"]:
        stages = "; ".join(f"{s['stage']} {s['epochs_run']} epochs, {s['img_per_s']:,.0f} img/s "
                           f"({s['share_of_bare']:.0%})" for s in run["stage_rates"])
        status = run["status"] + (f": {run['reason']}" if run["reason"] else "")
        lines.append(f"| {run['method']} | {run['folder']} | {status} | {run['seconds'] or '–'} | "
                     f"{stages or '–'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score a device run's students and report them.")
    parser.add_argument("returned", type=Path, help="the folder of call 2's returned files")
    parser.add_argument("--prep", type=Path, default=Path("."), help="the CPU prep the kit came from")
    parser.add_argument("--work", type=Path, default=Path(".device-work"))
    parser.add_argument("--out", type=Path, help="default: results/<profile>")
    args = parser.parse_args(argv)
    record = json.loads((args.returned / RECORD).read_text())
    out = args.out or Path("results") / record["profile"]
    runs = args.work / record["profile"]
    students = restore(args.returned, runs, record)
    if not any(students.values()):
        raise SystemExit("error: the device run finished no student (see its record.json and log)")
    unknown = {m for ms in students.values() for m in ms} - set(METHODS)
    if unknown:
        raise SystemExit(f"error: unknown methods {sorted(unknown)} in the record")
    score(runs, students, args.prep, record)
    snapshots = snapshot(runs, students, args.prep, out)
    subprocess.run([sys.executable, "-m", "catdog.report", "--runs-dir", str(snapshots), "--out", str(out)],
                   check=True)
    save_json(out / "device.json", record)
    save_text(out / "device.md", device_markdown(record))
    print(f"device_finish: {out}/report.md, device.md; feature maps in {runs}/<size>/plots/")


if __name__ == "__main__":
    main()
