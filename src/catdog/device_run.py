"""The device run: on the GPU box, every run of the kit's profile in one process, within a deadline
(docs/device.md). scripts/device/run.sh is the command of both calls:

    python -m catdog.device_run stash .device-kit STASH   # check and keep the part this call carried
    python -m catdog.device_run run STASH --out $OUT [--deadline 540] [--set KEY=VALUE ...]

`run` lays out the run folders (catdog.device_unpack), measures the bare training step at each
stage kind's crop size and batch (catdog.bare_step), then runs dvc.yaml's own stage commands in
this process (catdog.stage_runner): scratch and ImageNet first (once, in the largest pool's
folder: they read no pool), then KD, then SimCLR, each at every pool size, largest first. A
deadline guard estimates each run's time from the rates measured so far (before any, a prior
share of the bare step) and skips the whole run when it would end past the deadline; a run still
going at the deadline is cut. After every run the returned files are written again
(catdog.device_pack), so what finished always comes back.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import signal
import subprocess
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

from catdog import stage_runner
from catdog.atomic import save_json
from catdog.bare_step import bare_step_rate
from catdog.cache import POOL_FILE
from catdog.device import pick_device
from catdog.device_kit import MANIFEST, PARTS
from catdog.device_pack import RECORD, RUNS_TAR, bundle_models, pack_runs
from catdog.device_unpack import Setup, log, prepare, stash
from catdog.methods import METHODS
from catdog.params import parse_assignment
from catdog.train_loop import choose_precision, steps_per_epoch

# Methods in the order they run: the baselines, KD, then SimCLR (issue: what matters most first).
ORDER = ("scratch", "imagenet", "kd", "imagenet_kd", "simclr", "simclr_imagenet", "simclr_kd")
CPU_STAGES = ("teacher", "teacher_logits", "teacher_crops", "teacher_score")  # done in the prep
KINDS = ("finetune", "distill", "pretrain")  # stage kinds, each with its own bare-step rate
PRIOR_SHARE = {"finetune": 0.25, "distill": 0.5, "pretrain": 0.4}  # of the bare step, until measured
STAGE_OVERHEAD_S = 5.0  # a stage's start: model build, cuDNN's kernel choice, the val and probe splits


class DeadlineReached(BaseException):
    """The deadline passed while a run was going (SIGALRM). A BaseException: no stage's
    `except Exception` keeps it from ending the run."""


@dataclass
class Deadline:
    seconds: float
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Raise DeadlineReached in this (the main) thread if the deadline passes in the block."""
        def ring(signum: int, frame: object) -> None:
            raise DeadlineReached

        previous = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.001))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@dataclass
class Run:
    """One method at one pool size (its folder), and what became of it."""

    method: str
    folder: str
    stages: list[str]
    status: str = "planned"  # done | skipped | cut | failed
    reason: str = ""
    estimate_s: float | None = None
    seconds: float | None = None
    stage_rates: list[dict] = field(default_factory=list)


def device_stages(method: str) -> list[str]:
    """The stages that make `method`'s model on the box (the teacher's are done in the prep)."""
    return [s for s in METHODS[method].stages if s not in CPU_STAGES]


def reads_pool(method: str) -> bool:
    """Whether any of its stages depends on the pool (scratch and imagenet do not)."""
    return any(str(POOL_FILE) in stage_runner.deps(s) for s in device_stages(method))


def plan(methods: list[str], folders: list[str]) -> list[Run]:
    """Runs in ORDER: a method that reads no pool once (in the first folder), others per folder."""
    ordered = sorted((m for m in methods if device_stages(m)),
                     key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))
    return [Run(method, folder, device_stages(method)) for method in ordered
            for folder in (folders if reads_pool(method) else folders[:1])]


def stage_kind(stage: str) -> str:
    """finetune, distill or pretrain (SimCLR, from random init or from ImageNet)."""
    return "pretrain" if stage.startswith("pretrain") else stage.split("-")[0]


def epoch_passes(stage: str, params: dict, labeled: int, pool: int) -> int:
    """Training passes in one epoch of `stage` (a SimCLR image is two)."""
    kind = stage_kind(stage)
    n = {"finetune": labeled, "distill": labeled + pool, "pretrain": pool}[kind]
    batch = params[kind]["batch_size"]
    return steps_per_epoch(n, batch) * min(batch, n) * (2 if kind == "pretrain" else 1)


def max_epochs(stage: str, params: dict) -> int:
    return params["pretrain_imagenet" if stage == "pretrain_imagenet" else stage_kind(stage)]["epochs"]


def info_file(stage: str) -> Path:
    """The training summary a stage writes (models/<name>.json: epochs_run, train_seconds)."""
    return Path("models") / f"{stage if stage.startswith('pretrain') else stage.split('-', 1)[1]}.json"


@dataclass
class Rates:
    """Bare-step images/s per stage kind, and each kind's measured share of it."""

    bare: dict[str, float]
    share: dict[str, float] = field(default_factory=dict)

    def expected(self, kind: str) -> float:
        return self.bare[kind] * self.share.get(kind, PRIOR_SHARE[kind])


def estimate(run: Run, params: dict, rates: Rates, labeled: int, done: set[str]) -> float:
    """Seconds the run's stages not yet done should take at most (every epoch)."""
    pool = int(run.folder)
    return sum(max_epochs(s, params) * epoch_passes(s, params, labeled, pool)
               / rates.expected(stage_kind(s)) + STAGE_OVERHEAD_S
               for s in run.stages if s not in done)


def measure(stage: str, folder: Path, params: dict, rates: Rates, labeled: int) -> dict:
    """A finished stage's passes, seconds and images/s, also as a share of the bare step (which
    the next estimate of its kind uses)."""
    info = json.loads((folder / info_file(stage)).read_text())
    seconds = json.loads((folder / "metrics/time" / f"{stage}.json").read_text())["seconds"]
    passes = info["epochs_run"] * epoch_passes(stage, params, labeled, int(folder.name))
    kind = stage_kind(stage)
    rate, loop_rate = passes / seconds, passes / max(info["train_seconds"], 1e-9)
    rates.share[kind] = rate / rates.bare[kind]
    return {"stage": stage, "epochs_run": info["epochs_run"], "passes": passes, "seconds": seconds,
            "train_seconds": info["train_seconds"], "img_per_s": round(rate, 1),
            "share_of_bare": round(rate / rates.bare[kind], 3),
            "train_img_per_s": round(loop_rate, 1),
            "train_share_of_bare": round(loop_rate / rates.bare[kind], 3)}


def environment(device: torch.device) -> dict:
    """What ran: versions, the device and the host."""
    import torchvision

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(), "cpus": os.cpu_count(),
           "platform": platform.platform(), "device": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count, "capability": f"{props.major}.{props.minor}"}
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30).stdout.strip()
    return env


def bare_rates(params: dict, device: torch.device, bench: tuple[int, int], record: dict) -> Rates:
    """The bare training step's images/s at each stage kind's crop size and batch, in the precision
    the stages pick (catdog.precision)."""
    bare = {}
    for kind in KINDS:
        size, batch = params[kind]["image_size"], params[kind]["batch_size"]
        choose_precision(params["compute"], device, size, batch)
        bare[kind] = bare_step_rate(size, batch, device, steps=bench[0], warmup=bench[1])
        record.setdefault("bare_step", {})[kind] = {"image_size": size, "batch": batch,
                                                     "img_per_s": round(bare[kind], 1)}
    log(f"bare training step: {record['bare_step']}")
    return Rates(bare)


def execute(run: Run, setup: Setup, rates: Rates, deadline: Deadline, done: set[str]) -> None:
    """Run (or skip) one run's stages in its folder; `run` records what became of it."""
    folder, params = setup.folders[run.folder], setup.params[run.folder]
    run.estimate_s = round(estimate(run, params, rates, setup.labeled, done), 1)
    if run.estimate_s > deadline.left():
        run.status = "skipped"
        run.reason = f"about {run.estimate_s:.0f} s needed, {max(deadline.left(), 0):.0f} s left"
        log(f"{run.method} at {run.folder}: skipped ({run.reason})")
        return
    log(f"{run.method} at {run.folder}: {' + '.join(run.stages)} (about {run.estimate_s:.0f} s)")
    start = time.monotonic()
    try:
        with deadline.armed():
            for stage in run.stages:
                if stage not in done:  # e.g. SimCLR's pretraining, shared with simclr_kd
                    stage_runner.run(stage_runner.command(stage), folder)
                    done.add(stage)
                    run.stage_rates.append(measure(stage, folder, params, rates, setup.labeled))
        run.status = "done"
    except DeadlineReached:
        run.status, run.reason = "cut", "the deadline passed during the run"
    except (Exception, SystemExit) as err:  # noqa: BLE001 - one run's failure ends that run only
        traceback.print_exc()
        run.status, run.reason = "failed", f"{type(err).__name__}: {err}".splitlines()[0]
    run.seconds = round(time.monotonic() - start, 2)
    log(f"{run.method} at {run.folder}: {run.status} in {run.seconds} s"
        + (f" ({run.reason})" if run.reason else ""))


def pack(out: Path, work: Path, runs: list[Run], record: dict) -> None:
    """(Re)write the returned files from everything finished so far."""
    models = {f"{r.folder}/{r.method}": work / "runs" / r.folder / "models" / f"{r.method}.pt"
              for r in runs if r.status == "done"}
    left_out = bundle_models(models, out)
    if left_out:
        record["not_returned"] = left_out  # over the 8 files / 64 MiB a call returns
    pack_runs(work / "runs", out / RUNS_TAR)
    record["runs"] = [asdict(r) for r in runs]
    save_json(out / RECORD, record)


def drive(kit: Path, out: Path, work: Path, deadline: Deadline, extra: dict,
          bench: tuple[int, int] = (30, 5)) -> dict:
    """The whole device run; returns the record (also written to out/record.json)."""
    record: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "deadline_s": deadline.seconds}
    setup = prepare(kit, work, extra, record)
    first = setup.params[next(iter(setup.params))]
    device = pick_device(first["compute"]["device"], first["compute"]["threads"])
    record["environment"] = environment(device)
    log(f"environment: {record['environment']}")
    rates = bare_rates(first, device, bench, record)
    runs = plan(record["methods"], list(setup.folders))
    record["shared"] = {"folder": next(iter(setup.folders)),
                        "methods": [m for m in record["methods"] if device_stages(m) and not reads_pool(m)]}
    done: dict[str, set[str]] = {name: set() for name in setup.folders}
    out.mkdir(parents=True, exist_ok=True)
    pack(out, work, runs, record)  # the record comes back even if the first run is killed
    for run in runs:
        execute(run, setup, rates, deadline, done[run.folder])
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        record["elapsed_s"] = round(deadline.seconds - deadline.left(), 1)
        pack(out, work, runs, record)
    counts = pd.Series([r.status for r in runs]).value_counts().to_dict()
    log(f"finished in {record.get('elapsed_s', 0)} s: {counts}; returned files in {out}")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The device run (docs/device.md).")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stash", help="check the kit parts this call carried and keep them")
    s.add_argument("kit", type=Path, help="the carried kit folder (.device-kit)")
    s.add_argument("store", type=Path, help="the stash, kept while the box stays warm")
    r = sub.add_parser("run", help="every run of the kit's profile, within the deadline")
    r.add_argument("store", type=Path, help="the stash holding call2 (and call1)")
    r.add_argument("--out", type=Path, required=True, help="the returned files ($OUT)")
    r.add_argument("--work", type=Path, help="scratch space (default: STORE/work)")
    r.add_argument("--deadline", type=float, default=540.0, help="seconds from now (default 540)")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a params override after the profile's (repeatable)")
    r.add_argument("--bench-steps", type=int, nargs=2, default=(30, 5), metavar=("STEPS", "WARMUP"),
                   help="timed and warm-up steps of each bare-step measurement")
    args = parser.parse_args(argv)
    if args.command == "stash":
        stash(args.kit, args.store)
        return
    deadline = Deadline(args.deadline)
    if not (args.store / PARTS[1] / MANIFEST).is_file():
        raise SystemExit(f"error: {args.store / PARTS[1]} is not stashed: make call 2 (docs/device.md)")
    extra = dict(parse_assignment(text) for text in args.sets)
    drive(args.store, args.out, args.work or args.store / "work", deadline, extra, tuple(args.bench_steps))


if __name__ == "__main__":
    main()
