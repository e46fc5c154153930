"""Collect finished DVC experiments as flat rows: pool size, seeds, params and per-method metrics.

Reads `dvc exp show --json` (dvc 3.x). Its shape, per baseline commit and per experiment:

    [{"rev": "workspace" | <sha>, "name": <branch/exp name or null>, "error": null | {...},
      "data": {"params": {"params.yaml": {"data": {<nested params>}}},
               "metrics": {"metrics/kd.json": {"data": {<metric: value>}}, ...}},
      "experiments": [{"name": <exp>, "executor": null | {"state": "queued"|...},
                       "revs": [<entry like above>]}] | null}]

A method is any `metrics/<method>.json` holding an "accuracy", so new methods appear by
themselves; `metrics/time/<stage>.json` holds a stage's wall seconds. Queued, running or
failed experiments and entries without method metrics are left out; identical entries (same
params and metrics, e.g. the workspace and the experiment it came from) are kept once.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from catdog.params import flatten, read_yaml

PARAMS_FILE = "params.yaml"
METRICS_DIR = "metrics"
TIME_DIR = "metrics/time"
SIZE_KEY = "data.size"
DVC_YAML = Path("dvc.yaml")
# Params that never make two runs' recipes differ: the row key and where the photos were read from.
NOT_RECIPE = (SIZE_KEY, "data.source")
# Executor states of experiments whose results are final.
DONE_STATES = (None, "success")
# What stages record for themselves as plain cached outputs, not DVC metrics (dvc.yaml's head):
# read back from each entry's dvc.lock and the DVC cache, beside the metrics, by exp_show.
RECORD_PATTERNS = ("models/*.json", "metrics/time/*.json", "metrics/representation/*.json")
CACHE_FILES = Path(".dvc/cache/files/md5")  # DVC 3's cache layout: <md5[:2]>/<md5[2:]>


@dataclass(frozen=True)
class Run:
    """One finished experiment (or the workspace): what it ran with and what it measured."""

    name: str  # experiment name, branch name, short sha or "workspace"
    size: int  # unlabeled pool size (data.size)
    seeds: dict[str, Any]  # every param named *.seed, e.g. {"pretrain.seed": 0}
    params: dict[str, Any]  # all params.yaml values, flattened to dotted keys
    metrics: dict[str, dict[str, float]]  # method -> metrics/<method>.json
    times: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds


def method_of(path: str) -> str | None:
    """'metrics/kd.json' -> 'kd'; None for files outside metrics/ or not JSON."""
    p = Path(path)
    return p.stem if p.parent.as_posix() == METRICS_DIR and p.suffix == ".json" else None


def method_metrics(files: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """method -> metrics for every metrics/<method>.json that reports an accuracy."""
    out = {}
    for path, values in files.items():
        method = method_of(path)
        if method is not None and isinstance(values, dict) and "accuracy" in values:
            out[method] = values
    return out


def stage_times(files: dict[str, dict[str, Any]]) -> dict[str, float]:
    """stage -> seconds for every metrics/time/<stage>.json, e.g. {"distill-kd": 512.3}."""
    out = {}
    for path, values in files.items():
        p = Path(path)
        if p.parent.as_posix() == TIME_DIR and isinstance(values, dict) and "seconds" in values:
            out[p.stem] = float(values["seconds"])
    return out


def base_method(method: str) -> str:
    """'kd[distill.lr=0.1]' -> 'kd': the method without its recipe tags."""
    return method.partition("[")[0]


def stage_params(dvc_yaml: Path = DVC_YAML) -> dict[str, list[str]]:
    """Stage name -> the params entries it declares in dvc.yaml (groups like 'distill' or keys
    like 'train.seed'); {} when there is no dvc.yaml to read."""
    if not dvc_yaml.is_file():
        return {}
    stages = (read_yaml(dvc_yaml.read_text()) or {}).get("stages") or {}
    return {name: [p for p in (stage.get("do", stage).get("params") or []) if isinstance(p, str)]
            for name, stage in stages.items()}


def recipe_params(params: dict[str, Any], declared: list[str] | None) -> dict[str, Any]:
    """The params of a run that make a method's recipe: those its stages declare (`declared`;
    every param when None), except seeds (repeats), the pool size (the row) and the source path."""
    def relevant(key: str) -> bool:
        if key.rsplit(".", 1)[-1] == "seed" or key in NOT_RECIPE:
            return False
        return declared is None or any(key == d or key.startswith(d + ".") for d in declared)
    return {k: v for k, v in params.items() if relevant(k)}


def tag_recipes(runs: list[Run], declared_by: Callable[[str], list[str] | None],
                defaults: dict[str, Any] | None = None) -> list[Run]:
    """Rename each run's methods after the recipe params that differ between the runs of that
    method at the same pool size, so that different recipes are reported apart and only true
    repeats (runs that differ in seeds alone) are pooled: 'kd' stays 'kd' when every run at that
    size used one recipe, else e.g. 'kd[distill.lr=0.1]' and 'kd[distill.lr=0.2]' (a profile may
    set other epochs per size: rows of other sizes are apart anyway). A param that an older run
    lacks (added since, at a default that keeps the old behaviour: the project's rule for adding
    params) tags nothing while every run that has it agrees on its value; where they differ, the
    older run shows it as '–'. With `defaults` (params.yaml as committed, flattened), an older
    run takes the default of a param it lacks, which is what it ran with under that rule: it
    pools with newer runs that set the default, and shows the default where they differ.
    `declared_by(method)` gives the params entries of the method's stages (None: every param)."""
    recipes = {(i, m): recipe_params({**(defaults or {}), **r.params}, declared_by(m))
               for i, r in enumerate(runs) for m in r.metrics}
    tagged = []
    for i, run in enumerate(runs):
        named = {}
        for method, values in run.metrics.items():
            others = [recipe for (j, m), recipe in recipes.items()
                      if m == method and runs[j].size == run.size]
            mine = recipes[(i, method)]
            # A param that some runs lack was added after they ran, at a default that keeps the
            # old behaviour: it splits recipes only where the runs that have it differ in it.
            keys = sorted(k for k in set().union(*others)
                          if len({json.dumps(o[k], sort_keys=True) for o in others if k in o}) > 1)
            tags = ",".join(f"{k}={mine.get(k, '–')}" for k in keys)
            named[f"{method}[{tags}]" if tags else method] = values
        tagged.append(replace(run, metrics=named))
    return tagged


def make_run(name: str, params: dict[str, Any], metrics: dict[str, dict[str, float]],
             times: dict[str, float] | None = None) -> Run:
    seeds = {k: v for k, v in params.items() if k.rsplit(".", 1)[-1] == "seed"}
    return Run(name=name, size=int(params[SIZE_KEY]), seeds=seeds, params=params,
               metrics=dict(metrics), times=times or {})


def exp_entries(show: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every (entry, executor state): baselines and the workspace (state None), and their
    experiments. An experiment without an executor record ran in the workspace (`dvc exp run`,
    not the queue) and was saved when it finished: its state is "success"."""
    for baseline in show:
        yield baseline, None
        for group in baseline.get("experiments") or []:
            state = (group.get("executor") or {}).get("state", "success")
            for entry in group.get("revs") or []:
                yield entry, state


def exp_entry_name(entry: dict[str, Any]) -> str:
    rev = entry.get("rev") or "?"
    return entry.get("name") or (rev if rev == "workspace" else rev[:7])


def lock_stages(lock_text: str | None) -> dict[str, Any]:
    """The stages of a dvc.lock's text ({} for None)."""
    return ((read_yaml(lock_text) or {}).get("stages") or {}) if lock_text else {}


def ran_with(stage: dict[str, Any]) -> dict[str, Any]:
    """The params one dvc.lock stage ran with, flattened ({"data.size": 800, ...})."""
    out: dict[str, Any] = {}
    for key, value in ((stage.get("params") or {}).get(PARAMS_FILE) or {}).items():
        out.update(flatten(value, key + ".") if isinstance(value, dict) else {key: value})
    return out


def locked_params(lock_text: str | None) -> dict[str, Any]:
    """The params every stage of a dvc.lock ran with, flattened ({"data.size": 800, ...})."""
    return {key: value for stage in lock_stages(lock_text).values()
            for key, value in ran_with(stage).items()}


def read_at(root: Path, rev: str, name: str) -> str | None:
    """A file as the workspace or a commit holds it, or None."""
    if rev == "workspace":
        path = root / name
        return path.read_text() if path.is_file() else None
    done = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=root, capture_output=True,
                          text=True)
    return done.stdout if done.returncode == 0 else None


def read_lock(root: Path, rev: str) -> str | None:
    """dvc.lock of the workspace or of a commit, or None."""
    return read_at(root, rev, "dvc.lock")


def parse_exp_show(show: list[dict[str, Any]],
                   lock_of: Callable[[str], str | None] | None = None) -> list[Run]:
    """Finished, distinct runs in a `dvc exp show --json` document; named entries win ties.

    `lock_of(rev)` gives a baseline's dvc.lock: a commit or workspace whose params.yaml was
    edited after its last run still reports its metrics with the params that produced them."""
    runs: dict[str, Run] = {}
    for entry, state in exp_entries(show):
        data = entry.get("data") or {}
        if entry.get("error") or state not in DONE_STATES:
            continue
        params = flatten((data.get("params") or {}).get(PARAMS_FILE, {}).get("data") or {})
        if lock_of is not None and state is None and entry.get("rev"):
            params.update(locked_params(lock_of(entry["rev"])))
        files = {path: (m or {}).get("data") for path, m in (data.get("metrics") or {}).items()}
        metrics = method_metrics(files)
        if not metrics or SIZE_KEY not in params:
            continue
        run = make_run(exp_entry_name(entry), params, metrics, stage_times(files))
        # The same results at the same size and seeds are one run, even if a path param differs.
        key = json.dumps([run.size, run.seeds, run.metrics], sort_keys=True)
        if key not in runs or runs[key].name == "workspace":
            runs[key] = run
    return list(runs.values())


def workspace_run(root: Path) -> list[Run]:
    """The workspace alone, read from params.yaml (and dvc.lock) and metrics/*.json."""
    params_path = root / PARAMS_FILE
    if not params_path.is_file():
        return []
    params = flatten(read_yaml(params_path.read_text()) or {})
    params.update(locked_params(read_lock(root, "workspace")))
    files = {
        p.relative_to(root).as_posix(): json.loads(p.read_text())
        for p in sorted((root / METRICS_DIR).glob("*.json")) + sorted((root / TIME_DIR).glob("*.json"))
    }
    metrics = method_metrics(files)
    if not metrics or SIZE_KEY not in params:
        return []
    return [make_run("workspace", params, metrics, stage_times(files))]


def snapshot_runs(runs_dir: Path) -> list[Run]:
    """One run per snapshot folder in runs_dir, named after the folder."""
    if not runs_dir.is_dir():
        raise SystemExit(f"error: --runs-dir {runs_dir} is not a folder")
    return [replace(run, name=folder.name)
            for folder in sorted(p for p in runs_dir.iterdir() if p.is_dir())
            for run in workspace_run(folder)]


def locked_outputs(lock_text: str | None) -> dict[str, str]:
    """path -> md5 of every file output in a dvc.lock."""
    return {out["path"]: out["md5"] for stage in lock_stages(lock_text).values()
            for out in stage.get("outs") or [] if out.get("md5")}


def locked_records(lock_text: str | None) -> dict[str, str]:
    """path -> md5 of every output in a dvc.lock that RECORD_PATTERNS names."""
    return {path: md5 for path, md5 in locked_outputs(lock_text).items()
            if any(fnmatch.fnmatch(path, pat) for pat in RECORD_PATTERNS)}


def cached_file(root: Path, md5: str) -> Path:
    """Where the DVC cache keeps the file with this md5."""
    return root / CACHE_FILES / md5[:2] / md5[2:]


def exp_ref(root: Path, name: str) -> str:
    """The git ref of the DVC experiment `name` (a commit-ish passes through unchanged)."""
    done = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=root,
                          capture_output=True, text=True)
    refs = [ref for ref in done.stdout.split() if ref.rsplit("/", 1)[-1] == name]
    return refs[0] if refs else name


def read_output(root: Path, rev: str, name: str, lock_text: str | None = None) -> str | None:
    """A file as the workspace or a commit holds it: git's copy, else the DVC cache's copy of
    the version the commit's dvc.lock (`lock_text` when the caller has read it) names (outputs
    DVC caches are not in git); None when neither has it."""
    text = read_at(root, rev, name)
    if text is not None or rev == "workspace":
        return text
    md5 = locked_outputs(lock_text if lock_text is not None else read_lock(root, rev)).get(name)
    file = cached_file(root, md5) if md5 else None
    return file.read_text() if file is not None and file.is_file() else None


def stale_stages(lock_text: str | None, params: dict[str, Any]) -> set[str]:
    """Stages in a dvc.lock that ran with other values of their params than `params`
    (flattened): what an experiment inherited from its baseline instead of running."""
    return {name for name, stage in lock_stages(lock_text).items()
            if any(key in params and params[key] != value for key, value in ran_with(stage).items())}


def stale_outputs(lock_text: str | None, params: dict[str, Any]) -> set[str]:
    """Outputs in a dvc.lock of its stale stages (stale_stages)."""
    stages = lock_stages(lock_text)
    return {out["path"] for name in stale_stages(lock_text, params)
            for out in stages[name].get("outs") or []}


def add_records(show: list[dict[str, Any]], root: Path = Path(".")) -> list[dict[str, Any]]:
    """`show` with each entry's recorded outputs (RECORD_PATTERNS) added to its metrics, as DVC
    would list them were they metrics: the version its dvc.lock names, from the DVC cache (the
    workspace's own file for the workspace). A file gone from the cache is left out.

    An experiment that ran some stages only (`dvc exp run -S data.size=3000 evaluate@scratch`)
    still holds its baseline's outputs of the others, made with other params: those are dropped
    from its metrics (stale_outputs), so that no reader files them under the experiment's params."""
    for entry, state in exp_entries(show):
        rev = entry.get("rev")
        if not rev or entry.get("error"):
            continue
        data = entry["data"] = entry.get("data") or {}
        metrics = data["metrics"] = data.get("metrics") or {}
        lock = read_lock(root, rev)
        stale: set[str] = set()
        if state is not None:  # an experiment: its params.yaml is what it was asked to run
            params = flatten((data.get("params") or {}).get(PARAMS_FILE, {}).get("data") or {})
            stale = stale_outputs(lock, params)
            for path in [p for p in metrics if any(p == o or p.startswith(o + "/") for o in stale)]:
                del metrics[path]
        for path, md5 in locked_records(lock).items():
            if path in metrics or path in stale:
                continue
            file = root / path if rev == "workspace" else cached_file(root, md5)
            try:
                metrics[path] = {"data": json.loads(file.read_text())}
            except (OSError, ValueError):
                continue
    return show


def exp_show(show_json: Path | None = None, args: tuple[str, ...] = (),
             root: Path = Path(".")) -> list[dict[str, Any]]:
    """A `dvc exp show --json` document with each entry's recorded outputs (add_records): the
    saved one in `show_json` (gzipped where it ends in .gz), else DVC's answer now in `root`
    (with `args`, e.g. ("--rev", sha)); one-line SystemExit when DVC fails."""
    if show_json is not None:
        raw = Path(show_json).read_bytes()
        return json.loads(gzip.decompress(raw) if str(show_json).endswith(".gz") else raw)
    done = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", *args],
                          cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: dvc exp show failed: {done.stderr.strip()[-300:]}")
    return add_records(json.loads(done.stdout), root)


def load_runs(root: Path = Path("."), all_commits: bool = False) -> list[Run]:
    """Runs of `dvc exp show` in `root` (HEAD's experiments, or every commit's with
    all_commits); reads the workspace files itself when DVC cannot list the workspace."""
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    if all_commits:
        cmd.append("--all-commits")
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"warning: dvc exp show failed ({reason}); using the workspace only", file=sys.stderr)
        return workspace_run(root)
    show = add_records(json.loads(done.stdout), root)
    if not any(entry.get("rev") == "workspace" for entry in show):  # a repo with no commit yet
        return workspace_run(root) + parse_exp_show(show, lambda rev: read_lock(root, rev))
    return parse_exp_show(show, lambda rev: read_lock(root, rev))


def method_order(runs: list[Run], preferred: tuple[str, ...]) -> list[str]:
    """Methods found in `runs`: those in `preferred` first, in that order, then the rest sorted."""
    found = {m for run in runs for m in run.metrics}
    return [m for m in preferred if m in found] + sorted(found - set(preferred))


def baselines(root: Path = Path(".")) -> list[str]:
    """Every commit that has experiments (refs/exps/<sha[:2]>/<sha[2:]>/<name>), then HEAD."""
    done = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=root,
                          capture_output=True, text=True, check=True)
    shas = [parts[2] + parts[3] for line in done.stdout.split()
            if len(parts := line.split("/")) == 5 and len(parts[2] + parts[3]) == 40]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()
    return list(dict.fromkeys([*shas, head]))


def main(argv: list[str] | None = None) -> None:
    """Print `dvc exp show --json` with each entry's recorded outputs, for the experiments of
    every commit that has some (a branch moved on since they were queued) and HEAD: a record
    that `--show-json` readers (catdog.tuning, catdog.simclr_sweep) read as they read DVC. Kept
    in results/ gzipped (`| gzip -9 > exp_show.json.gz`): a record repeats every experiment's
    params, and gzip makes it a seventh of the size."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("dvc_args", nargs="*", help="instead: passed to dvc exp show (after --)")
    args = parser.parse_args(argv)
    dvc_args = args.dvc_args or [arg for sha in baselines() for arg in ("--rev", sha)]
    print(json.dumps(exp_show(None, tuple(dvc_args)), indent=1))


if __name__ == "__main__":
    main()
