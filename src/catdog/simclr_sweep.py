"""SimCLR's recipe sweep and compute curve, read on val and teacher agreement only (never test).

After scripts/tune-simclr.sh (one DVC queue experiment per point, each running `pretrain` and
`finetune@simclr`, plus one `representation_bounds`), this reads `dvc exp show --json` and writes
  <out>/sweep.csv    one row per point: what it changed from the sweep's common recipe, its
                     pretraining epochs and seconds, the representation score (linear probe val /
                     teacher agreement, kNN val) and the fine-tuned val accuracy;
  <out>/compute.png  the score and fine-tuned val against pretraining epochs (the points that
                     changed nothing but `pretrain.epochs`), with the random-init floor and the
                     ImageNet ceiling;
  <out>/recipe.png   every point's teacher agreement (±1 SE), floor and ceiling drawn across.
The sweep's common recipe is, per `pretrain.*` param, the value most of its points share.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from catdog.atomic import save_figure, save_text
from catdog.experiments import DONE_STATES, PARAMS_FILE, exp_entries, exp_entry_name, exp_show
from catdog.params import flatten, parse_assignment, read_yaml

PARAMS_PATH = Path("params.yaml")
SCORE_FILE = "metrics/representation/simclr.json"
BOUNDS_FILE = "metrics/representation/bounds.json"
FINETUNE_FILE = "models/simclr.json"
SCRATCH_FILE = "models/scratch.json"  # the same fine-tune from random init: where SimCLR must beat
TIME_FILE = "metrics/time/pretrain.json"
SCORE_KEYS = ("probe_val", "probe_agree", "knn_val")
RECIPE_PREFIXES = ("pretrain.", "student.")  # the params a point may change
EPOCHS = "pretrain.epochs"
STUDENT_PREFIX = "student."
HELDOUT = "data.heldout"


def _files(entry: dict[str, Any]) -> dict[str, dict]:
    metrics = (entry.get("data") or {}).get("metrics") or {}
    return {path: (m or {}).get("data") or {} for path, m in metrics.items()}


def finished(show: list[dict[str, Any]], where: dict[str, Any]) -> list[tuple[str, dict, dict]]:
    """(name, flat params, metrics files) of every finished experiment whose params match `where`.
    A metrics file equal to its baseline commit's is left out: the experiment did not write it
    (the stage that does was not among its targets), it came along from the commit."""
    out, seen, base_files = [], set(), {}
    for entry, state in exp_entries(show):  # each baseline, then its experiments
        if state is None:
            base_files = _files(entry)
            continue
        if entry.get("error") or state not in DONE_STATES:
            continue
        data = entry.get("data") or {}
        params = flatten((data.get("params") or {}).get(PARAMS_FILE, {}).get("data") or {})
        if any(params.get(key) != value for key, value in where.items()):
            continue
        name = exp_entry_name(entry)
        if name not in seen:
            seen.add(name)
            own = {p: v for p, v in _files(entry).items() if v and v != base_files.get(p)}
            out.append((name, params, own))
    return out


def common_recipe(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Per recipe param, the value most points share (ties: the first point's)."""
    keys = {k for p in points for k in p["params"] if k.startswith(RECIPE_PREFIXES)}
    return {k: Counter(p["params"].get(k) for p in points).most_common(1)[0][0] for k in sorted(keys)}


def with_defaults(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A point made before a recipe param existed lacks it: it ran at the default (the project's
    rule for adding params), so it reads as the default."""
    return {**{k: v for k, v in defaults.items() if k.startswith(RECIPE_PREFIXES)}, **params}


def scratch_val(show: list[dict[str, Any]], where: dict[str, Any] | None = None) -> float | None:
    """Best val accuracy of the fine-tune from random init (finetune@scratch) among the finished
    experiments that ran it, or None."""
    found = [files[SCRATCH_FILE]["val_accuracy"] for _, _, files in finished(show, where or {})
             if "val_accuracy" in files.get(SCRATCH_FILE, {})]
    return found[0] if found else None


def sweep_points(show: list[dict[str, Any]], where: dict[str, Any] | None = None,
                 defaults: dict[str, Any] | None = None
                 ) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """The sweep's points (one dict each, `changed` naming what differs from the common recipe)
    and the bounds ({"random": score, "imagenet": score}; {} when no experiment scored them).
    `defaults`: the params' default values (default: this repository's params.yaml)."""
    if defaults is None:
        defaults = flatten(read_yaml(PARAMS_PATH.read_text()) or {}) if PARAMS_PATH.is_file() else {}
    runs = [(name, with_defaults(params, defaults), files)
            for name, params, files in finished(show, where or {})]
    scored_bounds = [(params, files[BOUNDS_FILE]) for _, params, files in runs if BOUNDS_FILE in files]
    points = []
    for name, params, files in runs:
        score = files.get(SCORE_FILE) or {}
        if not all(k in score for k in SCORE_KEYS):
            continue
        tuned = files.get(FINETUNE_FILE) or {}
        points.append({"name": name, "params": params, **{k: score[k] for k in SCORE_KEYS},
                       "finetune_val": tuned.get("val_accuracy"),
                       "pretrain_seconds": (files.get(TIME_FILE) or {}).get("seconds"),
                       "val_images": params.get("data.val"), "heldout_images": params.get(HELDOUT)})
    bounds: dict[str, dict[str, float]] = {}
    if points:
        base = common_recipe(points)
        for p in points:
            p["changed"] = {k: v for k, v in p["params"].items()
                            if k.startswith(RECIPE_PREFIXES) and base.get(k) != v}
            floor = bounds_of(scored_bounds, p["params"], base).get("random", {})
            p["floor_agree"] = floor.get("probe_agree")
        bounds = bounds_of(scored_bounds, base, base)
    return points, bounds


def bounds_of(scored: list[tuple[dict, dict]], params: dict[str, Any], base: dict[str, Any]
              ) -> dict[str, dict[str, float]]:
    """The bounds scored with the same student architecture (student.* keys) as `params`, or {}."""
    def student(p: dict[str, Any]) -> dict[str, Any]:
        return {k: p.get(k) for k in base if k.startswith(STUDENT_PREFIX)}

    return next((b for p, b in scored if student(p) == student(params)), {})


def label(point: dict[str, Any]) -> str:
    changes = (f"{k.removeprefix('pretrain.')}={v}" for k, v in point["changed"].items())
    return ", ".join(changes) or "common recipe"


def compute_curve(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points that changed nothing but the pretraining epochs, by epochs."""
    return sorted((p for p in points if set(p["changed"]) <= {EPOCHS}),
                  key=lambda p: p["params"][EPOCHS])


def se(acc: float, n: int | None) -> float:
    """Binomial standard error (0 when n is unknown)."""
    return (acc * (1 - acc) / n) ** 0.5 if n else 0.0


def write_csv(points: list[dict[str, Any]], path: Path) -> None:
    fields = ["name", "changed", EPOCHS, *SCORE_KEYS, "floor_agree", "finetune_val", "pretrain_seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for p in sorted(points, key=lambda p: -p["probe_agree"]):
        writer.writerow({"name": p["name"], "changed": label(p), EPOCHS: p["params"].get(EPOCHS),
                         **{k: round(p[k], 4) for k in SCORE_KEYS},
                         "floor_agree": p["floor_agree"],
                         "finetune_val": None if p["finetune_val"] is None else round(p["finetune_val"], 4),
                         "pretrain_seconds": p["pretrain_seconds"]})
    save_text(path, buf.getvalue())


def _draw_bounds(ax: Any, bounds: dict[str, dict[str, float]], key: str, horizontal: bool) -> None:
    for which, style in (("random", ":"), ("imagenet", "--")):
        if key in bounds.get(which, {}):
            line = ax.axvline if horizontal else ax.axhline
            role = "floor" if which == "random" else "ceiling"
            line(bounds[which][key], color="grey", linestyle=style,
                 label=f"{which} encoder ({role}): {bounds[which][key]:.3f}")


def plot_compute(points: list[dict[str, Any]], bounds: dict[str, dict[str, float]], path: Path,
                 scratch: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = compute_curve(points)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    xs = [p["params"][EPOCHS] for p in curve]
    for key, name, n in (("probe_agree", "linear probe: teacher agreement", "heldout_images"),
                         ("probe_val", "linear probe: val", "val_images"),
                         ("finetune_val", "fine-tuned: best val", "val_images")):
        ys = [p[key] for p in curve]
        if None in ys:
            continue
        errors = [se(y, p[n]) for y, p in zip(ys, curve, strict=True)]
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=name)
    _draw_bounds(ax, bounds, "probe_agree", horizontal=False)
    if scratch is not None:
        ax.axhline(scratch, color="tab:green", linestyle=":",
                   label=f"fine-tuned from random init (scratch): best val {scratch:.3f}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("SimCLR pretraining epochs (cosine schedule each)")
    ax.set_ylabel("accuracy (bars: ±1 SE)")
    ax.set_title("SimCLR compute curve: score against pretraining epochs\n(floor/ceiling lines: "
                 "their teacher agreement)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(path, fig)


def plot_recipe(points: list[dict[str, Any]], bounds: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted(points, key=lambda p: p["probe_agree"])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(ranked) + 1.6))
    ys = range(len(ranked))
    ax.barh(list(ys), [p["probe_agree"] for p in ranked],
            xerr=[se(p["probe_agree"], p["heldout_images"]) for p in ranked], capsize=3, color="tab:blue")
    ax.set_yticks(list(ys), [label(p) for p in ranked], fontsize=8)
    _draw_bounds(ax, bounds, "probe_agree", horizontal=True)
    low = min([p["probe_agree"] for p in ranked]
              + [b["probe_agree"] for b in bounds.values() if "probe_agree" in b])
    ax.set_xlim(max(0.0, low - 0.05), 1.0)
    ax.set_xlabel("linear probe: agreement with the teacher on held-out images (±1 SE)")
    ax.set_title(f"SimCLR recipe points ({len(ranked)} runs)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(path, fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/tuning/simclr"))
    parser.add_argument("--where", action="append", default=[], metavar="PARAM=VALUE",
                        help="keep only experiments with this param value (repeatable)")
    parser.add_argument("--show-json", type=Path, action="append", default=[],
                        help="a saved `dvc exp show --json` (repeatable: a sweep made over several "
                             "commits or checkouts; default: run it)")
    parser.add_argument("--live", action="store_true",
                        help="with --show-json: add DVC's answer now to the saved records")
    parser.add_argument("--rev", help="baseline commit of the sweep (default: HEAD)")
    args = parser.parse_args(argv)
    where = dict(parse_assignment(item) for item in args.where)
    show = [entry for saved in args.show_json for entry in exp_show(saved)]
    if args.live or not args.show_json:
        show += exp_show(None, ("--rev", args.rev) if args.rev else ())
    points, bounds = sweep_points(show, where)
    if not points:
        raise SystemExit(f"error: no finished experiment has {SCORE_FILE}"
                         + "".join(f", {k}={v}" for k, v in where.items()) + ": run the sweep first")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(points, args.out / "sweep.csv")
    plot_recipe(points, bounds, args.out / "recipe.png")
    scratch = scratch_val(show, where)
    if len(compute_curve(points)) >= 2:
        plot_compute(points, bounds, args.out / "compute.png", scratch)
    best = max(points, key=lambda p: p["probe_agree"])
    floor = bounds.get("random", {}).get("probe_agree")
    wrote = "sweep.csv, recipe.png" + (", compute.png" if len(compute_curve(points)) >= 2 else "")
    print(f"simclr sweep: {len(points)} points; best teacher agreement {best['probe_agree']:.3f} "
          f"({label(best)}, {best['name']})" + (f" against the floor's {floor:.3f}" if floor else "")
          + (f"; fine-tune from random init: val {scratch:.3f}" if scratch is not None else "")
          + f"; wrote {wrote} in {args.out}")


if __name__ == "__main__":
    main()
