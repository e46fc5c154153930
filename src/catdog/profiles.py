"""Run profiles: named sets of params.yaml overrides kept in one file each (profiles/<name>.yaml).

A profile file holds
  params:  {key: value}          overrides for every run (dotted keys, as `dvc exp run -S`)
  sizes:   {size: {key: value}}  extra overrides for one pool size (optional); a size's own
                                 `methods: [...]` replaces the profile's list at that size
  methods: [teacher, kd, ...]    the models to train and score (optional; default: all stages)
Every override is validated against the params schema before anything runs.

    python -m catdog.profiles args cpu 6000    # `dvc exp run` arguments, one per line
    python -m catdog.profiles snapshot cpu DEST # copy this run's params, lock and metrics to DEST
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from catdog.atomic import save_json
from catdog.experiments import exp_ref, read_at, read_output, stale_stages
from catdog.methods import METHODS
from catdog.params import PARAMS_FILE, ParamError, flatten, parse_assignment, read_yaml, validate

PROFILES_DIR = Path("profiles")
# Stages whose wall time (metrics/time/<stage>.json) each method costs, beyond the data stages.
METHOD_STAGES = {name: method.stages for name, method in METHODS.items()}
DATA_STAGES = ("fetch", "prepare", "pool")
# Stages that score a pretraining (catdog.representation), run for any SimCLR method.
SCORE_STAGES = ("heldout", "representation_bounds")


@dataclass
class Profile:
    name: str
    params: dict[str, Any]
    sizes: dict[int, dict[str, Any]] = field(default_factory=dict)
    methods: list[str] | None = None
    size_methods: dict[int, list[str]] = field(default_factory=dict)  # a size's own methods

    def methods_at(self, size: int | None = None) -> list[str] | None:
        """The methods a run at pool `size` trains and scores (None: every stage)."""
        return self.size_methods.get(size, self.methods)  # size None: no size has its own

    def overrides(self, size: int | None = None) -> dict[str, Any]:
        """The profile's overrides for a run at pool `size` (its `sizes` entry on top)."""
        out = dict(self.params)
        if size is not None:
            out.update(self.sizes.get(size, {}))
            out["data.size"] = size
        return out

    def targets(self, size: int | None = None) -> list[str]:
        """`dvc exp run` targets: the stages that score each method (all stages when unset)."""
        methods = self.methods_at(size)
        if methods is None:
            return []
        out: list[str] = []
        for m in methods:
            out += ["teacher_score"] if m == "teacher" else [f"evaluate@{m}", f"featuremaps@{m}"]
        if any(m.startswith("simclr") for m in methods):
            out.append("representation_bounds")  # the floor and ceiling beside SimCLR's score
        return out

    def stages(self, size: int | None = None) -> set[str]:
        """Every stage a run of this profile at pool `size` executes (for its wall-time files)."""
        methods = self.methods_at(size) or list(METHOD_STAGES)
        out = set(DATA_STAGES)
        for m in methods:
            out.update(METHOD_STAGES.get(m, ()))
            if m.startswith("simclr"):
                out.update(SCORE_STAGES)
            if m != "teacher":
                out.update({f"evaluate-{m}", f"featuremaps-{m}"})
        return out


def _set(tree: dict, key: str, value: Any) -> None:
    node = tree
    *groups, leaf = key.split(".")
    for group in groups:
        node = node.setdefault(group, {})
    node[leaf] = value


def load_profile(name: str, base: Path = PARAMS_FILE, root: Path = PROFILES_DIR) -> Profile:
    """Read profiles/<name>.yaml (or a path) and check every override against params.yaml."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else root / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in root.glob("*.yaml"))) or "none"
        raise SystemExit(f"error: no profile {name!r} ({path} not found; known: {known})")
    doc = read_yaml(path.read_text()) or {}
    unknown = set(doc) - {"params", "sizes", "methods"}
    if unknown:
        raise SystemExit(f"error: {path}: unknown section(s) {sorted(unknown)}; "
                         "allowed: params, sizes, methods")
    sizes = {int(k): dict(v or {}) for k, v in (doc.get("sizes") or {}).items()}
    size_methods = {size: list(entry.pop("methods")) for size, entry in sizes.items()
                    if "methods" in entry}
    profile = Profile(name=path.stem, params=dict(doc.get("params") or {}), sizes=sizes,
                      methods=doc.get("methods"), size_methods=size_methods)
    bad = [m for methods in [profile.methods, *size_methods.values()] for m in methods or []
           if m not in METHOD_STAGES]
    if bad:
        raise SystemExit(f"error: {path}: unknown method(s) {bad}; known: {', '.join(METHOD_STAGES)}")
    tree = read_yaml(Path(base).read_text())
    known = flatten(tree)
    for size in [None, *profile.sizes]:
        unknown = [key for key in profile.overrides(size) if key not in known]
        if unknown:
            raise SystemExit(f"error: {path}: unknown parameter {unknown[0]!r}")
        try:
            validate(params_for(profile, size, tree))
        except ParamError as err:
            where = f" (size {size})" if size is not None else ""
            raise SystemExit(f"error: {path}{where}: {err}") from None
    return profile


def params_for(profile: Profile, size: int | None, base: dict[str, Any],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole params tree of a run of `profile` at pool `size`: `base` (params.yaml's tree, not
    changed) with the profile's overrides and then `extra` set, as `dvc exp run -S` would write
    params.yaml."""
    tree = copy.deepcopy(base)
    for key, value in {**profile.overrides(size), **(extra or {})}.items():
        _set(tree, key, value)
    return tree


def run_args(profile: Profile, size: int | None, targets: bool = True) -> list[str]:
    """`dvc exp run` arguments: -S key=value for every override, then the targets (unless
    `targets` is False: a sweep that names its own training stages)."""
    args = []
    for key, value in profile.overrides(size).items():
        args += ["-S", f"{key}={value}"]
    return args + (profile.targets(size) if targets else [])


def snapshot(profile: Profile, dest: Path, root: Path = Path("."), rev: str = "workspace") -> None:
    """Copy params.yaml, dvc.lock and the metrics of this profile's methods and stages (not the
    stale files of stages it did not run) into dest, atomically (complete or absent): from the
    workspace, or from a commit or DVC experiment `rev` (its DVC-cached outputs from the cache)."""
    if rev != "workspace":
        named = rev
        rev = exp_ref(root, rev)
        if read_at(root, rev, "") is None:  # not a tree git knows
            raise SystemExit(f"error: no commit or DVC experiment named {named} (under {root})")
    lock_text = read_output(root, rev, "dvc.lock")  # read once: it locates every cached output
    params_text = read_output(root, rev, "params.yaml", lock_text)
    for name, text in (("params.yaml", params_text), ("dvc.lock", lock_text)):
        if text is None:
            raise SystemExit(f"error: no {name} in {rev} (under {root})")
    size = flatten(read_yaml(params_text) or {}).get("data.size")
    methods = profile.methods_at(size) or list(METHOD_STAGES)
    names = [*(f"metrics/{m}.json" for m in methods),
             *(f"metrics/time/{stage}.json" for stage in sorted(profile.stages(size))),
             # representation scores of its pretrainings, and the floor and ceiling beside them
             *(f"metrics/representation/{name}.json" for name in [*methods, "bounds"])]
    files = {"params.yaml": params_text, "dvc.lock": lock_text,
             **{name: read_output(root, rev, name, lock_text) for name in names}}
    # the lock of the stages this run ran: a run of some stages (or methods) also holds its
    # baseline's entries of the others, made with other params, which readers would take for its own
    lock = read_yaml(files["dvc.lock"]) or {}
    stale = stale_stages(files["dvc.lock"], flatten(read_yaml(files["params.yaml"]) or {}))
    if stale:
        lock["stages"] = {k: v for k, v in (lock.get("stages") or {}).items() if k not in stale}
        files["dvc.lock"] = yaml.safe_dump(lock, sort_keys=False)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "metrics/time").mkdir(parents=True)
    for name, text in files.items():
        if text is not None:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


# Metrics a rerun may change without having trained another model: its own timing.
RERUN_MAY_CHANGE = ("train_seconds",)


def add_scores(rerun: Path, dest: Path, method: str) -> list[str]:
    """Give the snapshot `dest` the scores that a rerun of one of its methods (the snapshot
    `rerun`, same params) added: the keys of its metrics/<method>.json that dest lacks (dest's
    own keys are kept, also those the rerun lacks) and its metrics/representation/, but only
    when the rerun trained the same model, i.e. every test metric the two share is equal
    (training is deterministic on one CPU). Returns the keys added; SystemExit naming the
    metrics that differ otherwise, leaving dest as it was."""
    new_path, old_path = (d / "metrics" / f"{method}.json" for d in (rerun, dest))
    for path in (new_path, old_path):
        if not path.is_file():
            raise SystemExit(f"error: {path} not found")
    new, old = (json.loads(p.read_text()) for p in (new_path, old_path))
    differ = [f"{k} {old[k]} -> {new[k]}" for k in sorted(set(new) & set(old))
              if k not in RERUN_MAY_CHANGE and new[k] != old[k]]
    if differ:
        raise SystemExit(f"error: {rerun} did not repeat {dest}'s {method}: {'; '.join(differ)}")
    save_json(old_path, new | old)  # dest's values win: only the keys it lacks are added
    scores = rerun / "metrics/representation"
    for path in sorted(scores.glob("*.json")) if scores.is_dir() else []:
        (dest / "metrics/representation").mkdir(exist_ok=True)
        shutil.copy2(path, dest / "metrics/representation" / path.name)
    return sorted(set(new) - set(old))


SWEEP_SET = ("data.size", "data.source", "train.seed")  # set by the sweep per run, not the recipe


def set_args(args: list[str]) -> dict[str, Any]:
    """{'distill.lr': 0.1} from `dvc exp run` arguments like ['-S', 'distill.lr=0.1', 'target']."""
    return dict(parse_assignment(value) for flag, value in zip(args, args[1:], strict=False)
                if flag == "-S" and "=" in value)


def recipe_changes(profile: Profile, size: int | None, snapshot_dir: Path, base_text: str,
                   extra: dict[str, Any] | None = None) -> list[str]:
    """What a finished run's snapshot ran with that this run of the profile would not: every
    param of `base_text` (params.yaml as committed) with the profile's and `extra` overrides,
    against the snapshot's params.yaml, except what the sweep sets per run (SWEEP_SET) and params
    the snapshot lacks (added since, at a default that keeps the old behaviour)."""
    expected = flatten(read_yaml(base_text) or {})
    expected.update(profile.overrides(size))
    expected.update(extra or {})
    done = flatten(read_yaml((snapshot_dir / PARAMS_FILE).read_text()) or {})
    return [f"{key}={done[key]} (this run: {value})" for key, value in expected.items()
            if key in done and key not in SWEEP_SET and done[key] != value]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run profiles (profiles/<name>.yaml).")
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("args", help="print the `dvc exp run` arguments of a run, one per line")
    a.add_argument("profile")
    a.add_argument("size", nargs="?", type=int, help="pool size (data.size); default: the profile's")
    a.add_argument("--overrides-only", action="store_true",
                   help="the -S overrides without the scoring targets (for a val-only sweep)")
    s = sub.add_parser("snapshot", help="copy this run's params, lock and metrics to DEST")
    s.add_argument("profile")
    s.add_argument("dest", type=Path)
    s.add_argument("--rev", default="workspace",
                   help="a commit or DVC experiment name to copy from (default: the workspace)")
    s.add_argument("--methods", nargs="+", help="only these of the profile's methods")
    d = sub.add_parser("add-scores", help="copy the scores a rerun of METHOD added into the "
                                          "snapshot DEST, if it trained the same model")
    d.add_argument("rerun", type=Path)
    d.add_argument("dest", type=Path)
    d.add_argument("method")
    c = sub.add_parser("check", help="exit 1, naming the params, if the snapshot in DEST ran "
                                     "another recipe than this run would (params.yaml at HEAD)")
    c.add_argument("profile")
    c.add_argument("size", type=int)
    c.add_argument("dest", type=Path)
    c.add_argument("extra", nargs=argparse.REMAINDER, help="the sweep's own `dvc exp run` arguments")
    args = parser.parse_args(argv)
    if args.command == "add-scores":
        added = add_scores(args.rerun, args.dest, args.method)
        print(f"{args.dest}: {args.method} as rerun in {args.rerun} (added: {', '.join(added)})")
        return
    profile = load_profile(args.profile)
    if args.command == "args":
        print("\n".join(run_args(profile, args.size, targets=not args.overrides_only)))
    elif args.command == "snapshot":
        if args.methods:
            unknown = sorted(set(args.methods) - set(profile.methods or METHOD_STAGES))
            if unknown:
                raise SystemExit(f"error: profile {profile.name} has no method {', '.join(unknown)}")
            profile = replace(profile, methods=args.methods, size_methods={})
        snapshot(profile, args.dest, rev=args.rev)
    else:
        changes = recipe_changes(profile, args.size, args.dest, committed_params_text(),
                                 set_args(args.extra))
        if changes:
            raise SystemExit(f"error: {args.dest} was made with other params than this run of "
                             f"profile {profile.name}: {'; '.join(changes)}. Move it aside (or set "
                             "OUT_DIR / RUNS_DIR) to run this recipe; keep it to report both.")


def committed_params_text() -> str:
    """params.yaml as committed at HEAD (the workspace copy holds the last experiment's values);
    the file itself outside a git checkout."""
    text = read_at(Path("."), "HEAD", PARAMS_FILE)
    return text if text is not None else Path(PARAMS_FILE).read_text()


if __name__ == "__main__":
    main()
