"""Side-by-side report of every experiment: one table per method, epochs, accuracy vs pool size.

Not a dvc.yaml stage (it lives in the library): it reads across experiments, after a sweep such as

    dvc exp run --queue -S data.size=10000,6000,3000 && dvc queue start
    python -m catdog.report

Runs of one method, pool size and recipe (they differ in seeds only) are reported as mean ± std
and drawn with error bars; runs of other recipes (any other param the method's stages read) are
rows of their own, labelled by the params that differ; the reference study's numbers are drawn dashed.
Writes reports/report.md (tables, wall times, the winner at each size), reports/summary.csv,
reports/runs.json (every run's params, metrics and stage seconds) and reports/accuracy_vs_size.png.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from catdog.atomic import save_figure, save_json, save_text
from catdog.experiments import (
    Run,
    base_method,
    load_runs,
    method_order,
    snapshot_runs,
    stage_params,
    tag_recipes,
)
from catdog.methods import METHODS, REFERENCE_ACCURACY, REFERENCE_EPOCHS
from catdog.params import flatten, parse_assignment, read_yaml
from catdog.profiles import DATA_STAGES, METHOD_STAGES, committed_params_text  # stages each method needs
from catdog.teacher_pairs import NOTE as PAIRS_NOTE
from catdog.teacher_pairs import pair_rows, pairs_table

OUT_DIR = Path("reports")
# Methods shown first, in this order; any other metrics/<method>.json follows alphabetically.
PREFERRED_METHODS = tuple(METHODS)
# Table columns: (header, key in metrics/<method>.json).
COLUMNS = (
    ("Acc", "accuracy"),
    ("Prec-C", "precision_cat"),
    ("Rec-C", "recall_cat"),
    ("Prec-D", "precision_dog"),
    ("Rec-D", "recall_dog"),
)
# Calibration and robustness on test (catdog.robustness): runs made before these existed lack them.
ROBUSTNESS_KEYS = ("ece", "corruption_accuracy")
# "seconds": wall time of the stages the method needs (METHOD_STAGES), from metrics/time/.
# "n": test images scored (for the standard error of single runs).
SUMMARY_KEYS = tuple(key for _, key in COLUMNS) + ("epochs", "seconds", "n") + ROBUSTNESS_KEYS
# Stage rows of the wall-time table, in pipeline order; stages not listed follow alphabetically.
STAGE_ORDER = ("fetch", "prepare", "pool", "teacher", "teacher_score", "teacher_logits", "heldout",
               "representation_bounds", "pretrain", "pretrain_imagenet")
# Reference study: test accuracy and epochs to converge per unlabeled pool size.
STUDY_SOURCE = ("\"Study\" columns: the reference study's own reported test accuracy and epochs to "
                "converge (SimCLR vs KD into MobileNetV2 at 10k / 6k / 3k unlabeled images, 420 "
                "labeled, on a free cloud GPU), copied from its tables; not measured here.")
ROBUSTNESS_NOTE = ("ECE: expected calibration error of P(dog) over ten confidence bins (lower is "
                   "better; reliability diagrams in plots/<method>/reliability.csv). Corrupted acc: "
                   "mean accuracy over Gaussian noise, Gaussian blur, JPEG, brightness and contrast at "
                   "severities 1-5 (ImageNet-C style, deterministic) on the first "
                   "evaluate.corruption_images test images. '–': the run predates these scores.")
LABELS = {name: method.label for name, method in METHODS.items()}


def label(method: str) -> str:
    """'kd[distill.lr=0.1]' -> 'KD [distill.lr=0.1]'."""
    base = base_method(method)
    tags = method[len(base):]
    return LABELS.get(base, base) + (f" {tags}" if tags else "")


def method_seconds(run: Run, method: str) -> float | None:
    """Wall seconds of the stages that made the method's model in this run, or None if the run
    lacks the method's own (last) stage time or the method has no known stages. A run made
    before the teacher_logits stage existed has no time for it (its distill stage held that)."""
    stages = METHOD_STAGES.get(base_method(method))
    if not stages or stages[-1] not in run.times:
        return None
    return sum(run.times[s] for s in stages if s in run.times)


def params_of_method(declared: dict[str, list[str]]) -> Callable[[str], list[str] | None]:
    """method -> the params entries its stages declare in dvc.yaml (`declared`, from
    catdog.experiments.stage_params), data stages included; None for a method of unknown stages
    or without a dvc.yaml (then every param counts as its recipe)."""
    def of(method: str) -> list[str] | None:
        stages = METHOD_STAGES.get(base_method(method))
        if not stages or not declared:
            return None
        # 'distill-kd' is the kd entry of dvc.yaml's foreach stage 'distill'
        return [p for s in DATA_STAGES + stages for p in declared.get(s.split("-")[0], [])]
    return of


def summarize(runs: list[Run], methods: list[str]) -> list[dict[str, object]]:
    """One row per (method, size): run count, mean and sample std of every summary key."""
    rows = []
    for method in methods:
        for size in sorted({r.size for r in runs if method in r.metrics}, reverse=True):
            found = [r.metrics[method] | {"seconds": method_seconds(r, method)}
                     for r in runs if r.size == size and method in r.metrics]
            row: dict[str, object] = {"method": method, "size": size, "runs": len(found)}
            for key in SUMMARY_KEYS:
                values = np.array([float(m[key]) for m in found if m.get(key) is not None])
                row[f"{key}_mean"] = float(values.mean()) if len(values) else math.nan
                row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            rows.append(row)
    return rows


def cell(row: dict[str, object] | None, key: str, digits: int = 3) -> str:
    """'0.781', or '0.781 ± 0.012' over several runs, or '–' when absent."""
    if row is None or math.isnan(mean := float(row[f"{key}_mean"])):
        return "–"
    std = float(row[f"{key}_std"])
    if math.isnan(std):
        return f"{mean:.0f}" if key == "epochs" else f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def size_label(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def method_table(method: str, rows: list[dict[str, object]]) -> str:
    """Rows = pool sizes, columns = Acc, Prec-C, Rec-C, Prec-D, Rec-D (+ the study's Acc)."""
    study = REFERENCE_ACCURACY.get(base_method(method), {})
    header = ["Pool", "Runs"] + [h for h, _ in COLUMNS] + (["Study Acc"] if study else [])
    body = []
    for row in (r for r in rows if r["method"] == method):
        size = int(row["size"])
        line = [size_label(size), str(row["runs"])] + [cell(row, key) for _, key in COLUMNS]
        if study:
            line.append(f"{study[size]:.2f}" if size in study else "–")
        body.append(line)
    return markdown_table(header, body)


def epochs_table(methods: list[str], rows: list[dict[str, object]]) -> str:
    """Rows = pool sizes, columns = epochs to converge per method, then the study's."""
    sizes = sorted({int(r["size"]) for r in rows} | {s for v in REFERENCE_EPOCHS.values() for s in v})
    by_key = {(r["method"], int(r["size"])): r for r in rows}
    header = ["Pool"] + [label(m) for m in methods] + [f"{label(m)} (study)" for m in REFERENCE_EPOCHS]
    body = [
        [size_label(size)]
        + [cell(by_key.get((m, size)), "epochs", digits=1) for m in methods]
        + [str(REFERENCE_EPOCHS[m].get(size, "–")) for m in REFERENCE_EPOCHS]
        for size in reversed(sizes)
    ]
    return markdown_table(header, body)


def robustness_table(methods: list[str], rows: list[dict[str, object]]) -> str:
    """Rows = methods, columns = pool sizes: ECE and mean accuracy under corruption."""
    sizes = sorted({int(r["size"]) for r in rows}, reverse=True)
    by_key = {(r["method"], int(r["size"])): r for r in rows}
    header = ["Method"] + [f"{size_label(s)}: {k}" for s in sizes for k in ("ECE", "corrupted acc")]
    body = [[label(m)] + [cell(by_key.get((m, s)), key) for s in sizes for key in ROBUSTNESS_KEYS]
            for m in methods]
    return markdown_table(header, body)


def stage_order(runs: list[Run]) -> list[str]:
    found = {s for r in runs for s in r.times}
    return [s for s in STAGE_ORDER if s in found] + sorted(found - set(STAGE_ORDER))


def stage_table(runs: list[Run]) -> str:
    """Rows = stages, columns = pool sizes: wall seconds, mean ± std over runs; last row: the
    sum of the rows' means (a whole `dvc repro` at that size when every stage is listed)."""
    sizes = sorted({r.size for r in runs}, reverse=True)
    body = []
    totals = dict.fromkeys(sizes, 0.0)
    for stage in stage_order(runs):
        line = [stage]
        for size in sizes:
            values = np.array([r.times[stage] for r in runs if r.size == size and stage in r.times])
            if not len(values):
                line.append("–")
                continue
            totals[size] += float(values.mean())
            line.append(f"{values[0]:.0f}" if len(values) == 1
                        else f"{values.mean():.0f} ± {values.std(ddof=1):.0f}")
        body.append(line)
    body.append(["**total of the rows**"] + [f"**{totals[s]:.0f}**" for s in sizes])
    return markdown_table(["Stage"] + [size_label(s) for s in sizes], body)


def seconds_table(methods: list[str], rows: list[dict[str, object]]) -> str:
    """Rows = pool sizes, columns = wall seconds of the stages each method needs."""
    sizes = sorted({int(r["size"]) for r in rows}, reverse=True)
    by_key = {(r["method"], int(r["size"])): r for r in rows}
    body = [[size_label(size)] + [cell(by_key.get((m, size)), "seconds", digits=0) for m in methods]
            for size in sizes]
    return markdown_table(["Pool"] + [label(m) for m in methods], body)


def margin_caveat(best: dict[str, object], second: dict[str, object], margin: float) -> str:
    """' (within ...: not a clear win)' when the margin is inside the noise: the larger seed std
    of the two, or with single runs the standard error of the accuracy difference on n test
    images; '' otherwise."""
    stds = [s for s in (float(best["accuracy_std"]), float(second["accuracy_std"])) if not math.isnan(s)]
    if stds:
        return " (within one std: not a clear win)" if margin <= max(stds) else ""
    n = min(float(best.get("n_mean", math.nan)), float(second.get("n_mean", math.nan)))
    if math.isnan(n) or n < 1:
        return ""
    p, q = float(best["accuracy_mean"]), float(second["accuracy_mean"])
    se = math.sqrt((p * (1 - p) + q * (1 - q)) / n)
    return (f" (within the {n:.0f} test images' standard error of {se:.3f}: not a clear win)"
            if margin <= se else "")


def winners(methods: list[str], rows: list[dict[str, object]]) -> list[str]:
    """One line per pool size: the student with the best mean test accuracy, its margin over the
    runner-up (flagged when inside the noise, see margin_caveat) and its wall seconds."""
    lines = []
    for size in sorted({int(r["size"]) for r in rows}, reverse=True):
        ranked = sorted(
            (r for r in rows if int(r["size"]) == size and r["method"] != "teacher"
             and not math.isnan(float(r["accuracy_mean"]))),
            key=lambda r: -float(r["accuracy_mean"]),
        )
        if not ranked:
            continue
        best = ranked[0]
        text = f"- {size_label(size)}: **{label(str(best['method']))}** {cell(best, 'accuracy')}"
        if len(ranked) > 1:
            second = ranked[1]
            margin = float(best["accuracy_mean"]) - float(second["accuracy_mean"])
            text += (f", ahead of {label(str(second['method']))} ({cell(second, 'accuracy')}) "
                     f"by {margin:.3f}" + margin_caveat(best, second, margin))
        seconds = float(best["seconds_mean"])
        if not math.isnan(seconds):
            text += f"; {seconds:.0f} s of training stages"
        lines.append(text + ".")
    return lines


def render_markdown(runs: list[Run], methods: list[str], rows: list[dict[str, object]],
                    pairs: list[dict[str, object]] | None = None) -> str:
    """The report; `pairs` (catdog.teacher_pairs.pair_rows of the untagged runs) adds the
    teacher-student pairs section when the runs hold more than one teacher."""
    parts = [
        "# Results by unlabeled pool size",
        "",
        f"{len(runs)} run(s): "
        + ", ".join(f"{r.name} ({size_label(r.size)})" for r in runs)
        + ". Runs of one method, size and recipe (they differ in seeds only) are shown as "
        "mean ± std (sample std); a method run with other recipes at one size has a row per "
        "recipe, tagged with the params that differ.",
        "",
        STUDY_SOURCE,
    ]
    for method in methods:
        parts += ["", f"## {label(method)}", "", method_table(method, rows)]
    parts += ["", "## Epochs to converge", "", epochs_table(methods, rows)]
    if any(r.times for r in runs):
        parts += ["", "## Wall time per method (s)", "",
                  "Sum of the stages that make each model: teacher + distill for the KD methods, "
                  "pretrain + fine-tune for SimCLR. The data stages (fetch, prepare, pool) are "
                  "shared and listed with every stage in the next table.", "",
                  seconds_table(methods, rows),
                  "", "## Wall time per stage (s)", "", stage_table(runs)]
    if any(not math.isnan(float(r[f"{k}_mean"])) for r in rows for k in ROBUSTNESS_KEYS):
        parts += ["", "## Calibration and robustness (test)", "", ROBUSTNESS_NOTE, "",
                  robustness_table(methods, rows)]
    if len({row["teacher"] for row in pairs or []}) > 1:  # several teachers (scripts/teacher-pairs.sh)
        parts += ["", "## Teacher-student pairs", "", PAIRS_NOTE, "", pairs_table(pairs)]
    parts += ["", "## Winner at each pool size", "", *winners(methods, rows)]
    parts += ["", "![accuracy vs pool size](accuracy_vs_size.png)", ""]
    return "\n".join(parts)


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    fields = ["method", "size", "runs"] + [
        f"{k}_{s}" for k in SUMMARY_KEYS for s in ("mean", "std")
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in rows
    )
    save_text(path, buf.getvalue())


def runs_record(runs: list[Run]) -> list[dict[str, object]]:
    """Every run, sorted by size and seeds: name, size, seeds, params, metrics, stage seconds."""
    ordered = sorted(runs, key=lambda r: (-r.size, json.dumps(r.seeds, sort_keys=True), r.name))
    return [{"name": r.name, "size": r.size, "seeds": r.seeds, "params": r.params,
             "metrics": r.metrics, "seconds": r.times} for r in ordered]


def plot_accuracy(path: Path, methods: list[str], rows: list[dict[str, object]]) -> None:
    """Test accuracy vs pool size per method (error bars = std), the study dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, method in enumerate(methods):
        color = f"C{i}"
        mine = sorted((int(r["size"]), r) for r in rows if r["method"] == method)
        sizes = [s for s, _ in mine]
        means = [float(r["accuracy_mean"]) for _, r in mine]
        stds = [float(r["accuracy_std"]) for _, r in mine]
        errs = [0.0 if math.isnan(s) else s for s in stds]
        ax.errorbar(
            sizes, means, yerr=errs, color=color, marker="o", capsize=4, label=label(method)
        )
        if method in REFERENCE_ACCURACY:  # drawn once, beside the method's untagged row
            study = sorted(REFERENCE_ACCURACY[method].items())
            ax.plot(
                [s for s, _ in study],
                [a for _, a in study],
                color=color,
                linestyle="--",
                marker="x",
                label=f"{label(method)} (study)",
            )
    ax.set_xlabel("unlabeled pool size")
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy vs unlabeled pool size")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(path, fig)


REPRESENTATION_ROWS = (  # (name in metrics/representation/, its key there or None, label)
    ("bounds", "random", "Random init (floor)"),
    ("bounds", "imagenet", "ImageNet (ceiling)"),
    ("simclr", None, "SimCLR"),
    ("simclr_imagenet", None, "SimCLR from ImageNet"),
)


def representation_scores(runs_dir: Path) -> dict[tuple[str, int], list[dict[str, float]]]:
    """(row label, pool size) -> the representation scores (catdog.representation) that each
    snapshot in runs_dir holds in metrics/representation/ (runs made before it hold none). The
    floor and ceiling count once per pool size and seed, however many snapshots of that seed
    (one per method run on its own) carry them."""
    found: dict[tuple[str, int], list[dict[str, float]]] = {}
    bounds_seen: set[tuple[int, object]] = set()
    for folder in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        scores, params = folder / "metrics/representation", folder / "params.yaml"
        if not scores.is_dir() or not params.is_file():
            continue
        flat = flatten(read_yaml(params.read_text()))
        size = int(flat["data.size"])
        seen = (size, flat.get("train.seed"))
        for name, key, row in REPRESENTATION_ROWS:
            if name == "bounds" and seen in bounds_seen:
                continue
            if (path := scores / f"{name}.json").is_file():
                value = json.loads(path.read_text())
                found.setdefault((row, size), []).append(value[key] if key else value)
        if (scores / "bounds.json").is_file():
            bounds_seen.add(seen)
    return found


def representation_table(scores: dict[tuple[str, int], list[dict[str, float]]]) -> str:
    """Rows = encoders, columns = pool sizes; cells 'agreement (val)', means over runs."""
    sizes = sorted({size for _, size in scores}, reverse=True)
    body = []
    for _, _, row in REPRESENTATION_ROWS:
        cells = []
        for size in sizes:
            got = scores.get((row, size), [])
            cells.append("–" if not got else (
                f"{np.mean([g['probe_agree'] for g in got]):.3f} "
                f"({np.mean([g['probe_val'] for g in got]):.3f}) [{len(got)}]"))
        if any(c != "–" for c in cells):
            body.append([row, *cells])
    return markdown_table(["Encoder", *(size_label(s) for s in sizes)], body)


REPRESENTATION_NOTE = (
    "A linear probe (logistic regression, C 0.1, standardised features) on the frozen encoder's "
    "pooled features of the 420 labeled images, whole images at pretrain.image_size. Cells: its "
    "agreement with the teacher on the heldout stage's unlabeled images (pool ranks past every "
    "pool), then its val accuracy in brackets, then the runs averaged; no test image is read. "
    "The floor (random init) and the ceiling (ImageNet) do not depend on the pool.")


def param_defaults() -> dict[str, object]:
    """params.yaml as committed, flattened; {} outside a checkout that has one."""
    try:
        return flatten(read_yaml(committed_params_text()) or {})
    except OSError:
        return {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Report every DVC experiment side by side.")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the report files")
    parser.add_argument(
        "--all-commits",
        action="store_true",
        help="also read experiments of every git commit, not only HEAD's",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        help="read run snapshots (folders of params.yaml, dvc.lock, metrics/, as written by "
        "scripts/sweep.sh) instead of DVC experiments",
    )
    parser.add_argument("--where", action="append", default=[], metavar="PARAM=VALUE",
                        help="keep only the runs with this param value (repeatable), e.g. one "
                        "study's experiments beside the workspace's quick run")
    args = parser.parse_args(argv)
    where = dict(parse_assignment(item) for item in args.where)

    if args.runs_dir:
        runs = snapshot_runs(args.runs_dir)
    else:
        runs = load_runs(Path("."), all_commits=args.all_commits)
    runs = [r for r in runs if all(key in r.params and r.params[key] == value
                                   for key, value in where.items())]
    if not runs:
        raise SystemExit(
            "error: no finished experiment has data.size in params.yaml and "
            "metrics/<method>.json with an accuracy"
            + "".join(f", {k}={v}" for k, v in where.items()) + "; run the pipeline first"
        )
    pairs = pair_rows(runs)  # by teacher.arch, before tagging renames the methods
    # other recipes are other rows; a param a run predates counts at its committed default
    runs = tag_recipes(runs, params_of_method(stage_params()), param_defaults())
    methods = method_order(runs, PREFERRED_METHODS)
    rows = summarize(runs, methods)
    text = render_markdown(runs, methods, rows, pairs)
    scores = representation_scores(args.runs_dir) if args.runs_dir else {}
    if scores:
        text += "\n".join(["", "## Representation score (frozen encoder)", "", REPRESENTATION_NOTE, "",
                           representation_table(scores), ""])
    save_text(args.out / "report.md", text)
    write_csv(args.out / "summary.csv", rows)
    save_json(args.out / "runs.json", runs_record(runs))
    plot_accuracy(args.out / "accuracy_vs_size.png", methods, rows)
    print(f"{len(runs)} run(s), methods {', '.join(methods)} -> {args.out}/report.md")


if __name__ == "__main__":
    main()
