"""Hyperparameter sweeps read on val only: best val accuracy of one method against one or two params.

After a DVC queue sweep that trains (and never scores on test) one model per grid point, e.g.

    dvc exp run --queue -S 'distill.temperature=1,2,4,8' -S 'distill.alpha=0.5,0.9,1.0' distill@kd
    dvc queue start --jobs 1  # then wait for `dvc queue status` to show them done
    python -m catdog.tuning kd --x distill.temperature --series distill.alpha --out results/tuning \
        --where data.size=3000 --where distill.epochs=20

this reads `dvc exp show --json` and writes, for the method's model info (models/<method>.json,
a DVC metrics file: best val accuracy, epoch, seconds),
  <out>/<method>.csv   one row per experiment: the params (--x, and --series if given), val
                       accuracy, best epoch, seconds, val images
  <out>/<method>.png   val accuracy against --x, one line per --series value (one line without
                       --series), ±1 standard error
and prints the best grid point by val accuracy (ties: the lower val epoch count). `--where` keeps
only the experiments whose params have those values, so that another sweep (or a profile run)
under the same baseline commit never joins this one's grid. The test split
is never read: choosing a recipe on test would make its test score an optimistic estimate.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

from catdog.atomic import save_figure, save_text
from catdog.experiments import DONE_STATES, PARAMS_FILE, exp_entries, exp_entry_name, exp_show
from catdog.params import flatten, parse_assignment

INFO_KEYS = ("val_accuracy", "epochs", "train_seconds")  # from models/<method>.json
# What a sweep may be read on, and the params.yaml key holding its image count (standard error):
# val accuracy, or agreement with the teacher on the heldout stage's unlabeled images.
METRICS = {"val_accuracy": "data.val", "heldout_agree": "data.heldout"}


def val_points(show: list[dict[str, Any]], method: str, x: str, series: str | None = None,
               where: dict[str, Any] | None = None, metric: str = "val_accuracy") -> list[dict[str, Any]]:
    """One dict per finished experiment that trained `method` with every param in `where` at its
    value: name, x, series (when given), INFO_KEYS and, when `metric` is another of METRICS, that
    metric too; "score" is `metric`'s value and "score_images" its image count."""
    swept = [x] + ([series] if series else [])
    points, seen = [], set()
    for entry, state in exp_entries(show):
        data = entry.get("data") or {}
        if state is None or entry.get("error") or state not in DONE_STATES:
            continue  # the workspace and baseline commits hold whatever ran there last, any recipe
        params = flatten((data.get("params") or {}).get(PARAMS_FILE, {}).get("data") or {})
        info = ((data.get("metrics") or {}).get(f"models/{method}.json") or {}).get("data") or {}
        if metric not in info or any(key not in params for key in swept):
            continue
        if any(key not in params or params[key] != value for key, value in (where or {}).items()):
            continue  # another sweep's point
        point = {"name": exp_entry_name(entry), **{key: params[key] for key in swept},
                 **{k: info.get(k) for k in INFO_KEYS}, "val_images": params.get("data.val"),
                 **({metric: info[metric]} if metric not in INFO_KEYS else {}),
                 "score": info[metric], "score_images": params.get(METRICS[metric])}
        key = (*(point[k] for k in swept), point["score"], point["epochs"])
        if key not in seen:  # an experiment listed twice
            seen.add(key)
            points.append(point)
    return points


def best_point(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest score; ties go to the one that got there in fewer epochs."""
    return max(points, key=lambda p: (p["score"], -(p["epochs"] or 0)))


def standard_error(point: dict[str, Any]) -> float:
    """Binomial standard error of the point's score (0 when its image count is unknown)."""
    n, acc = point.get("score_images"), point["score"]
    return (acc * (1 - acc) / n) ** 0.5 if n else 0.0


def categorical(points: list[dict[str, Any]], key: str) -> bool:
    """Whether some point's `key` is not a number (e.g. distill.teacher_mode: cached / crops)."""
    return any(isinstance(p[key], bool) or not isinstance(p[key], int | float) for p in points)


def write_csv(points: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(points[0]))
    writer.writeheader()
    writer.writerows(points)
    save_text(path, buf.getvalue())


def plot(points: list[dict[str, Any]], method: str, x: str, series: str | None, path: Path,
         where: dict[str, Any] | None = None, metric: str = "val_accuracy") -> None:
    what = {"val_accuracy": "best val accuracy",
            "heldout_agree": "agreement with the teacher (heldout)"}.get(metric, metric)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = sorted({p[x] for p in points}, key=str if categorical(points, x) else None)
    # A categorical param (e.g. distill.teacher_mode) sits at evenly spaced positions.
    at = {v: i for i, v in enumerate(xs)} if categorical(points, x) else {v: v for v in xs}
    for value in sorted({p[series] for p in points}, key=str) if series else [None]:
        mine = sorted((p for p in points if series is None or p[series] == value),
                      key=lambda p: at[p[x]])
        ax.errorbar([at[p[x]] for p in mine], [p["score"] for p in mine],
                    yerr=[standard_error(p) for p in mine], marker="o", capsize=3,
                    linestyle="none" if categorical(points, x) else "-",
                    label=f"{series} = {value:g}" if isinstance(value, int | float)
                    else f"{series} = {value}" if series else what)
    best = best_point(points)
    ax.scatter([at[best[x]]], [best["score"]], s=160, facecolors="none", edgecolors="black",
               label="best")
    if not categorical(points, x) and min(xs) > 0 and max(xs) / min(xs) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(list(at.values()), [f"{v:g}" if isinstance(v, int | float) else str(v) for v in xs])
    ax.set_xlabel(x)
    sizes = sorted({p["score_images"] for p in points if p["score_images"]})
    ax.set_ylabel(f"{what}\n({', '.join(map(str, sizes)) or '?'} images; bars: ±1 SE)", fontsize=9)
    fixed = ", ".join(f"{k}={v}" for k, v in (where or {}).items())
    ax.set_title(f"{method}: {what} over the sweep ({len(points)} runs)"
                 + (f"\n{fixed}" if fixed else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(path, fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", help="model name, e.g. kd (reads models/<method>.json)")
    parser.add_argument("--x", required=True, help="param on the x axis, e.g. distill.temperature")
    parser.add_argument("--series", help="param drawn as one line per value (default: one line)")
    parser.add_argument("--out", type=Path, default=Path("results/tuning"))
    parser.add_argument("--where", action="append", default=[], metavar="PARAM=VALUE",
                        help="keep only experiments with this param value (repeatable)")
    parser.add_argument("--show-json", type=Path, help="a saved `dvc exp show --json` (default: run it)")
    parser.add_argument("--all-commits", action="store_true",
                        help="also read experiments of every git commit, not only HEAD's (a sweep "
                        "queued across commits)")
    parser.add_argument("--metric", choices=list(METRICS), default="val_accuracy",
                        help="what to read the sweep on (default: %(default)s)")
    args = parser.parse_args(argv)
    where = dict(parse_assignment(item) for item in args.where)
    show = exp_show(args.show_json, ("--all-commits",) if args.all_commits else ())
    points = val_points(show, args.method, args.x, args.series, where, args.metric)
    if not points:
        only = "".join(f", {k}={v}" for k, v in where.items())
        swept = args.x + (f" and {args.series}" if args.series else "")
        raise SystemExit(f"error: no finished experiment has {args.metric} in models/{args.method}.json "
                         f"with {swept}{only}: run the sweep first")
    write_csv(points, args.out / f"{args.method}.csv")
    plot(points, args.method, args.x, args.series, args.out / f"{args.method}.png", where, args.metric)
    best = best_point(points)
    at = f"{args.x}={best[args.x]}" + (f", {args.series}={best[args.series]}" if args.series else "")
    on = {"val_accuracy": "on val", "heldout_agree": "teacher agreement"}[args.metric]
    print(f"{args.method}: {len(points)} runs; best {on} {best['score']:.3f} at {at} "
          f"({best['name']}); wrote {args.out}/{args.method}.csv and .png")


if __name__ == "__main__":
    main()
