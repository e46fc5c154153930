"""Teacher-student pairs (the reference study's future work): one row per teacher and pool size.

After KD runs that differ in `teacher.arch` (scripts/teacher-pairs.sh), each row holds the teacher's
test accuracy, calibration and accuracy under corruption (teacher_score), its cost on this machine
(images per second of the teacher_logits stage: decode, resize to teacher.image_size and forward
of the labeled images and the largest pool, in the precision the stage chose) and its student's
test accuracy, ECE and corrupted accuracy (KD into MobileNetV2 from random init), mean ± std over
the runs. A run that holds only the teacher's scores (teacher_score alone) adds to the teacher's
cells, not the student's. Rendered by catdog.report as a section, or alone:

    python -m catdog.teacher_pairs --runs-dir results/pairs/runs --out results/pairs

writes <out>/pairs.md (the table), <out>/pairs.csv (one row per teacher; `dvc plots show` draws it
as bars, see dvc.yaml) and <out>/pairs.png (student against teacher accuracy, sized by cost).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from catdog.atomic import save_figure, save_text
from catdog.experiments import Run, snapshot_runs

TEACHER_KEY = "teacher.arch"
STUDENT = "kd"  # the student every teacher distils into (MobileNetV2 from random init)
# (column, metrics file, key): the cells of a row, each a mean over the runs that hold it.
CELLS = (
    ("teacher_accuracy", "teacher", "accuracy"),
    ("teacher_ece", "teacher", "ece"),
    ("teacher_corruption_accuracy", "teacher", "corruption_accuracy"),
    ("student_accuracy", STUDENT, "accuracy"),
    ("student_ece", STUDENT, "ece"),
    ("student_corruption_accuracy", STUDENT, "corruption_accuracy"),
)
HEADER = ("Pool", "Teacher", "Teacher acc", "Teacher ECE", "Teacher corrupted acc", "Teacher img/s",
          "Student runs", "Student acc", "Student ECE", "Student corrupted acc", "Student s")
STUDENT_STAGE = "distill-kd"  # the student's training stage: its wall seconds
NOTE = ("Student: MobileNetV2 from random init, KD (catdog.stages.distill, the runs' recipe) from "
        "each teacher's logits with its fitted cat/dog head; cells are test scores, mean ± std "
        "over the student runs (seeds). Teacher img/s: images per wall second of the "
        "teacher_logits stage (data.labeled + data.max_size images: decode, resize to "
        "teacher.image_size and forward in the precision the stage chose) on the machine that "
        "ran it. The teacher is one model per architecture (teacher.seed), so its cells carry no "
        "std. Student s: wall seconds of the distill stage. ECE and corrupted acc as in the "
        "calibration section; '–': not measured.")


def teacher_rate(run: Run) -> float | None:
    """Images per second of the run's teacher_logits stage, or None without its wall time."""
    seconds = run.times.get("teacher_logits")
    if not seconds:
        return None
    return (int(run.params["data.labeled"]) + int(run.params["data.max_size"])) / seconds


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (nan for fewer than two values; both nan for none)."""
    if not values:
        return math.nan, math.nan
    array = np.array(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else math.nan


def pair_rows(runs: list[Run], speeds: dict[str, float] | None = None) -> list[dict[str, object]]:
    """One row per (teacher.arch, pool size) among the runs that hold the teacher's or the
    student's metrics; larger pools first, then by student accuracy (teachers without a student
    last). A teacher's img/s comes from `speeds` (arch -> img/s, benchmarks/bench_teachers.py on
    an idle machine) where it names the arch, else from the runs' teacher_logits stage."""
    rows = []
    keys = {(str(r.params[TEACHER_KEY]), r.size) for r in runs if TEACHER_KEY in r.params}
    for arch, size in sorted(keys):
        mine = [r for r in runs if r.params.get(TEACHER_KEY) == arch and r.size == size
                and ("teacher" in r.metrics or STUDENT in r.metrics)]
        if not mine:
            continue
        row: dict[str, object] = {"teacher": arch, "size": size,
                                  "student_runs": sum(STUDENT in r.metrics for r in mine)}
        for column, method, key in CELLS:
            found = [float(r.metrics[method][key]) for r in mine
                     if r.metrics.get(method, {}).get(key) is not None]
            row[f"{column}_mean"], row[f"{column}_std"] = mean_std(found)
        rates = ([speeds[arch]] if speeds and arch in speeds
                 else [rate for r in mine if (rate := teacher_rate(r)) is not None])
        row["teacher_img_per_s_mean"], row["teacher_img_per_s_std"] = mean_std(rates)
        seconds = [r.times[STUDENT_STAGE] for r in mine if STUDENT in r.metrics and STUDENT_STAGE in r.times]
        row["student_seconds_mean"], row["student_seconds_std"] = mean_std(seconds)
        rows.append(row)
    return sorted(rows, key=lambda r: (-int(r["size"]), math.isnan(float(r["student_accuracy_mean"])),
                                       -np.nan_to_num(float(r["student_accuracy_mean"]))))


def pair_cell(row: dict[str, object], column: str, digits: int = 3) -> str:
    mean, std = float(row[f"{column}_mean"]), float(row[f"{column}_std"])
    if math.isnan(mean):
        return "–"
    if math.isnan(std) or std == 0:  # one run, or runs that restored one teacher's scores
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def pairs_table(rows: list[dict[str, object]]) -> str:
    """The markdown table of pair_rows (teacher cost: the mean over runs, no std: the stage's
    seconds are one measurement that later runs restore from DVC's run cache)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        rate = float(row["teacher_img_per_s_mean"])
        cells = [str(row["size"]), str(row["teacher"]), pair_cell(row, "teacher_accuracy"),
                 pair_cell(row, "teacher_ece"), pair_cell(row, "teacher_corruption_accuracy"),
                 "–" if math.isnan(rate) else f"{rate:.0f}", str(row["student_runs"]),
                 pair_cell(row, "student_accuracy"), pair_cell(row, "student_ece"),
                 pair_cell(row, "student_corruption_accuracy"), pair_cell(row, "student_seconds", 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    fields = (["teacher", "size", "student_runs"]
              + [f"{c}_{s}" for c, _, _ in CELLS for s in ("mean", "std")]
              + ["teacher_img_per_s_mean", "teacher_img_per_s_std",
                 "student_seconds_mean", "student_seconds_std"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()}
                     for r in rows)
    save_text(path, buf.getvalue())


def plot_pairs(path: Path, rows: list[dict[str, object]]) -> None:
    """Student against teacher test accuracy, one point per teacher (error bars: the students'
    std), labelled with the teacher's img/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, row in enumerate(r for r in rows if not math.isnan(float(r["student_accuracy_mean"]))):
        std = float(row["student_accuracy_std"])
        ax.errorbar(float(row["teacher_accuracy_mean"]), float(row["student_accuracy_mean"]),
                    yerr=0.0 if math.isnan(std) else std, marker="o", capsize=4, color=f"C{i}",
                    label=f"{row['teacher']} ({pair_cell(row, 'teacher_img_per_s', 0)} img/s)")
    ax.set_xlabel("teacher test accuracy")
    ax.set_ylabel("student test accuracy (KD, MobileNetV2 from random init)")
    ax.set_title("Teacher-student pairs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(path, fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Teacher-student pairs table from run snapshots.")
    parser.add_argument("--runs-dir", type=Path, required=True,
                        help="run snapshots (catdog.profiles snapshot), one folder per run")
    parser.add_argument("--out", type=Path, required=True, help="folder for pairs.{md,csv,png}")
    parser.add_argument("--speeds", type=Path, help="teachers' img/s measured on an idle machine "
                        "(benchmarks/bench_teachers.py --json) instead of the teacher_logits stage's")
    args = parser.parse_args(argv)
    speeds = None
    if args.speeds:
        speeds = {row["arch"]: float(row["img_per_s"]) for row in json.loads(args.speeds.read_text())["rows"]}
    rows = pair_rows(snapshot_runs(args.runs_dir), speeds)
    if not rows:
        raise SystemExit(f"error: no run in {args.runs_dir} holds metrics/teacher.json or "
                         f"metrics/{STUDENT}.json with {TEACHER_KEY} in its params.yaml")
    source = (f"Teacher img/s here: {args.speeds.name} (benchmarks/bench_teachers.py, idle machine, "
              "forward only), not the stage's." if speeds else "")
    save_text(args.out / "pairs.md", "\n".join(["# Teacher-student pairs", "", NOTE, "", source,
                                                "", pairs_table(rows), ""]))
    write_csv(args.out / "pairs.csv", rows)
    plot_pairs(args.out / "pairs.png", rows)
    print(f"{len(rows)} teacher(s) -> {args.out}/pairs.md")


if __name__ == "__main__":
    main()
