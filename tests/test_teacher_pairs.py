"""The teacher-student pairs table: one row per teacher and pool size, from runs or snapshots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from catdog.experiments import Run, make_run


def pair_run(name: str, arch: str, seed: int, student: float | None, teacher: float = 0.95,
             logits_seconds: float = 100.0, size: int = 3000, ece: float | None = None) -> Run:
    params = {"data.size": size, "data.labeled": 420, "data.max_size": 9580,
              "teacher.arch": arch, "train.seed": seed}
    metrics = {"teacher": {"accuracy": teacher} | ({} if ece is None else {"ece": ece})}
    if student is not None:
        metrics["kd"] = {"accuracy": student, "ece": 0.05, "corruption_accuracy": student - 0.1}
    times = {"teacher_logits": logits_seconds} | ({} if student is None else {"distill-kd": 900.0 + seed})
    return make_run(name, params, metrics, times)


def test_rows_average_the_students_per_teacher_and_order_them_best_first() -> None:
    from catdog.teacher_pairs import pair_rows, pairs_table

    runs = [pair_run("a0", "lite0", 0, 0.80, logits_seconds=50),
            pair_run("a1", "lite0", 1, 0.84, logits_seconds=50),
            pair_run("b0", "lite2", 0, 0.88, teacher=0.98), pair_run("b1", "lite2", 1, 0.86, teacher=0.98),
            # a teacher-only run (teacher_score alone) adds its scores to the teacher's cells
            pair_run("b-teacher", "lite2", 0, None, teacher=0.98, ece=0.02)]
    rows = pair_rows(runs)
    assert [r["teacher"] for r in rows] == ["lite2", "lite0"]  # best student first
    lite2, lite0 = rows
    assert lite2["student_runs"] == 2 and lite0["student_runs"] == 2
    assert lite2["student_accuracy_mean"] == pytest.approx(0.87)
    assert lite2["student_accuracy_std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert lite2["teacher_ece_mean"] == pytest.approx(0.02)  # only the run that measured it
    assert math.isnan(lite0["teacher_ece_mean"])
    # img/s: (labeled + max_size) images over the teacher_logits stage's seconds
    assert lite0["teacher_img_per_s_mean"] == pytest.approx(200.0)
    assert lite2["teacher_img_per_s_mean"] == pytest.approx(100.0)
    table = pairs_table(rows)
    assert "| 3000 | lite2 | 0.980 | 0.020 | – | 100 | 2 | 0.870 ± 0.014 |" in table
    assert "| 3000 | lite0 | 0.950 | – | – | 200 | 2 | 0.820 ± 0.028 |" in table
    assert lite0["student_seconds_mean"] == pytest.approx(900.5)  # the students' distill stage only
    assert table.splitlines()[2].endswith("| 0.050 | 0.770 ± 0.014 | 900 ± 1 |")


def test_pools_are_rows_of_their_own_and_runs_without_a_teacher_arch_are_left_out() -> None:
    from catdog.teacher_pairs import pair_rows

    runs = [pair_run("a", "lite0", 0, 0.80), pair_run("b", "lite0", 0, 0.90, size=10000),
            make_run("old", {"data.size": 3000}, {"kd": {"accuracy": 0.5}})]
    rows = pair_rows(runs)
    assert [(r["teacher"], r["size"]) for r in rows] == [("lite0", 10000), ("lite0", 3000)]
    assert [r["student_accuracy_mean"] for r in rows] == pytest.approx([0.90, 0.80])


def test_the_report_gets_a_pairs_section_only_with_several_teachers(tmp_path: Path) -> None:
    from catdog.report import main

    runs = tmp_path / "runs"
    write_snapshot(runs / "lite2-s0", "efficientnet_lite2", 0, 0.85)
    write_snapshot(runs / "lite2-6k-s0", "efficientnet_lite2", 0, 0.88, size=6000)  # one teacher, two sizes
    main(["--runs-dir", str(runs), "--out", str(tmp_path / "one")])
    assert "Teacher-student pairs" not in (tmp_path / "one/report.md").read_text()
    write_snapshot(runs / "mnv2-s0", "mobilenet_v2", 0, 0.80)
    main(["--runs-dir", str(runs), "--out", str(tmp_path / "two")])  # KD rows tagged by teacher.arch
    text = (tmp_path / "two/report.md").read_text()
    section = text.split("## Teacher-student pairs")[1].split("\n## ")[0]
    assert section.index("| efficientnet_lite2 |") < section.index("| mobilenet_v2 |")


def write_snapshot(folder: Path, arch: str, seed: int, student: float, size: int = 3000) -> None:
    (folder / "metrics/time").mkdir(parents=True)
    params = {"data": {"size": size, "labeled": 420, "max_size": 9580},
              "teacher": {"arch": arch}, "train": {"seed": seed}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    (folder / "metrics/teacher.json").write_text(json.dumps({"accuracy": 0.97}))
    (folder / "metrics/kd.json").write_text(json.dumps({"accuracy": student}))
    (folder / "metrics/time/teacher_logits.json").write_text(json.dumps({"seconds": 40.0}))


def test_main_writes_the_table_csv_and_plot_from_snapshots(tmp_path: Path) -> None:
    from catdog.teacher_pairs import main

    runs = tmp_path / "runs"
    write_snapshot(runs / "lite0-s0", "efficientnet_lite0", 0, 0.82)
    write_snapshot(runs / "mnv2-s0", "mobilenet_v2", 0, 0.78)
    main(["--runs-dir", str(runs), "--out", str(tmp_path / "out")])
    table = (tmp_path / "out/pairs.md").read_text()
    assert table.index("efficientnet_lite0") < table.index("mobilenet_v2")
    rows = list(csv.DictReader((tmp_path / "out/pairs.csv").open()))
    assert [r["teacher"] for r in rows] == ["efficientnet_lite0", "mobilenet_v2"]
    assert float(rows[0]["teacher_img_per_s_mean"]) == pytest.approx(250.0)
    assert (tmp_path / "out/pairs.png").stat().st_size > 0


def test_main_refuses_snapshots_without_a_teacher(tmp_path: Path) -> None:
    from catdog.teacher_pairs import main

    (tmp_path / "runs/a/metrics").mkdir(parents=True)
    (tmp_path / "runs/a/params.yaml").write_text(yaml.safe_dump({"data": {"size": 3000}}))
    (tmp_path / "runs/a/metrics/kd.json").write_text(json.dumps({"accuracy": 0.8}))
    with pytest.raises(SystemExit, match="teacher.arch"):
        main(["--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])


def test_speeds_measured_on_an_idle_machine_replace_the_stages_rate(tmp_path: Path) -> None:
    from catdog.teacher_pairs import main

    runs = tmp_path / "runs"
    write_snapshot(runs / "lite0-s0", "efficientnet_lite0", 0, 0.82)
    write_snapshot(runs / "mnv2-s0", "mobilenet_v2", 0, 0.78)
    speeds = tmp_path / "speeds.json"  # as benchmarks/bench_teachers.py --json writes it
    speeds.write_text(json.dumps({"device": "cpu", "rows": [
        {"arch": "efficientnet_lite0", "image_size": 224, "precision": "bf16", "img_per_s": 123.4}]}))
    main(["--runs-dir", str(runs), "--out", str(tmp_path / "out"), "--speeds", str(speeds)])
    rows = {r["teacher"]: r for r in csv.DictReader((tmp_path / "out/pairs.csv").open())}
    assert float(rows["efficientnet_lite0"]["teacher_img_per_s_mean"]) == pytest.approx(123.4)
    assert float(rows["mobilenet_v2"]["teacher_img_per_s_mean"]) == pytest.approx(250.0)  # not named
    assert "speeds.json" in (tmp_path / "out/pairs.md").read_text()
