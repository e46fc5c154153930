"""The cross-experiment report: real `dvc exp show --json` parsing, tables, mean ± std, outputs."""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catdog.experiments import load_runs, parse_exp_show

REPO = Path(__file__).resolve().parents[1]

# A fake training stage: metrics follow from params, so every number in the report is checkable.
FAKE_TRAIN = """\
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
size, seed = p["data"]["size"], p["pretrain"]["seed"]
os.makedirs("metrics", exist_ok=True)
for method, base in [("simclr", 0.5), ("kd", 0.6)]:
    acc = base + size / 100000 + seed * 0.02
    m = {"accuracy": acc, "precision_cat": acc + 0.01, "recall_cat": acc - 0.01,
         "precision_dog": acc + 0.02, "recall_dog": acc - 0.02, "epochs": size // 100 + seed}
    json.dump(m, open(f"metrics/{method}.json", "w"))
json.dump({"accuracy": 0.97, "precision_cat": 0.96, "recall_cat": 0.98,
           "precision_dog": 0.98, "recall_dog": 0.96}, open("metrics/teacher.json", "w"))
json.dump({"knn_accuracy": 0.7}, open("metrics/pretrain.json", "w"))
os.makedirs("metrics/time", exist_ok=True)
for stage, seconds in [("teacher", 30), ("pretrain", size / 100), ("finetune-simclr", 5),
                       ("distill-kd", size / 50 + 2 * seed)]:
    json.dump({"seconds": seconds}, open(f"metrics/time/{stage}.json", "w"))
"""

DVC_YAML = """\
stages:
  train:
    cmd: {cmd}
    deps: [fake_train.py]
    params: [data.size, pretrain.seed]
    metrics:
      - metrics/simclr.json: {{cache: false}}
      - metrics/kd.json: {{cache: false}}
      - metrics/teacher.json: {{cache: false}}
      - metrics/pretrain.json: {{cache: false}}
      - metrics/time: {{cache: false}}
"""


def expected_acc(method: str, size: int, seed: int) -> float:
    return {"simclr": 0.5, "kd": 0.6}[method] + size / 100000 + seed * 0.02


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dvc(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


@pytest.fixture(scope="module")
def exp_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """git + dvc repo: committed baseline at 10k, then experiments 6k, 3k, and 3k with seed 1."""
    root = tmp_path_factory.mktemp("exp_repo")
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.name", "catdog test"], root)
    run(["git", "config", "user.email", "test@example.com"], root)
    dvc("init", "-q", cwd=root)
    (root / "params.yaml").write_text("data:\n  size: 10000\n  seed: 0\npretrain:\n  seed: 0\n")
    (root / "fake_train.py").write_text(FAKE_TRAIN)
    (root / "dvc.yaml").write_text(
        DVC_YAML.format(cmd=json.dumps(f"{shlex.quote(sys.executable)} fake_train.py"))
    )
    dvc("repro", "-q", cwd=root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "baseline"], root)
    dvc("exp", "run", "-q", "-S", "data.size=6000", cwd=root)
    dvc("exp", "run", "-q", "-S", "data.size=3000", cwd=root)
    dvc("exp", "run", "-q", "-S", "data.size=3000", "-S", "pretrain.seed=1", cwd=root)
    return root


def test_load_runs_reads_every_experiment_once(exp_repo: Path) -> None:
    runs = load_runs(exp_repo)
    # Baseline + 3 experiments; the workspace equals the last experiment and is dropped.
    assert sorted((r.size, r.seeds["pretrain.seed"]) for r in runs) == [
        (3000, 0), (3000, 1), (6000, 0), (10000, 0),
    ]  # fmt: skip
    assert "workspace" not in {r.name for r in runs}
    for r in runs:
        assert set(r.metrics) == {"simclr", "kd", "teacher"}  # pretrain.json has no accuracy
        assert r.seeds == {"data.seed": 0, "pretrain.seed": r.params["pretrain.seed"]}
        seed = r.seeds["pretrain.seed"]
        for method in ("simclr", "kd"):
            assert r.metrics[method]["accuracy"] == pytest.approx(
                expected_acc(method, r.size, seed)
            )
            assert r.metrics[method]["epochs"] == r.size // 100 + seed
        assert r.times == {"teacher": 30, "pretrain": r.size / 100, "finetune-simclr": 5,
                           "distill-kd": r.size / 50 + 2 * seed}


def test_report_tables_plot_and_csv(exp_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    run([sys.executable, "-m", "catdog.report", "--out", str(out)], exp_repo)
    md = (out / "report.md").read_text()
    rows = {line.split(" | ")[0] + " @ " + section: line
            for section, body in (s.split("\n", 1) for s in md.split("\n## ")[1:])
            for line in body.splitlines() if line.startswith("| ")}  # fmt: skip
    assert rows["| 10k @ SimCLR"] == "| 10k | 1 | 0.600 | 0.610 | 0.590 | 0.620 | 0.580 | 0.78 |"
    assert rows["| 6k @ KD"] == "| 6k | 1 | 0.660 | 0.670 | 0.650 | 0.680 | 0.640 | 0.84 |"
    # Two seeds at 3k: mean ± sample std.
    kd3 = [expected_acc("kd", 3000, s) for s in (0, 1)]
    acc = f"{np.mean(kd3):.3f} ± {np.std(kd3, ddof=1):.3f}"
    assert rows["| 3k @ KD"].startswith(f"| 3k | 2 | {acc} |")
    assert rows["| 10k @ Teacher"] == "| 10k | 1 | 0.970 | 0.960 | 0.980 | 0.980 | 0.960 |"
    # Epochs: measured per method (teacher has none), then the study's.
    assert rows["| 10k @ Epochs to converge"] == "| 10k | – | 100 | 100 | 62 | 46 |"
    assert rows["| 3k @ Epochs to converge"] == "| 3k | – | 30.5 ± 0.7 | 30.5 ± 0.7 | 59 | 25 |"
    assert md.index("## Teacher") < md.index("## SimCLR") < md.index("## KD")
    # Wall time per method = its stages (simclr: pretrain + finetune, kd: teacher + distill).
    assert rows["| 10k @ Wall time per method (s)"] == "| 10k | 30 | 105 | 230 |"
    assert rows["| 3k @ Wall time per method (s)"] == "| 3k | 30 ± 0 | 35 ± 0 | 91 ± 1 |"
    assert rows["| distill-kd @ Wall time per stage (s)"] == "| distill-kd | 200 | 120 | 61 ± 1 |"
    assert rows["| teacher @ Wall time per stage (s)"] == "| teacher | 30 | 30 | 30 ± 0 |"
    assert rows["| **total of the rows** @ Wall time per stage (s)"] == (
        "| **total of the rows** | **335** | **215** | **126** |")
    winner = md.split("## Winner at each pool size\n\n", 1)[1].splitlines()
    assert winner[0] == "- 10k: **KD** 0.700, ahead of SimCLR (0.600) by 0.100; 230 s of training stages."
    assert winner[2].startswith(f"- 3k: **KD** {acc}, ahead of SimCLR (") and "by 0.100;" in winner[2]

    runs = json.loads((out / "runs.json").read_text())
    assert [(r["size"], r["seeds"]["pretrain.seed"]) for r in runs] == [
        (10000, 0), (6000, 0), (3000, 0), (3000, 1)]
    assert runs[3]["seconds"]["distill-kd"] == 62
    assert runs[3]["metrics"]["kd"]["accuracy"] == pytest.approx(expected_acc("kd", 3000, 1))
    assert "\n## pretrain" not in md  # metrics/pretrain.json has no accuracy: not a method

    with open(out / "summary.csv") as f:
        summary = {(r["method"], int(r["size"])): r for r in csv.DictReader(f)}
    assert set(summary) == {
        (m, s) for m in ("teacher", "simclr", "kd") for s in (10000, 6000, 3000)
    }
    assert int(summary["simclr", 3000]["runs"]) == 2
    assert float(summary["simclr", 3000]["accuracy_mean"]) == pytest.approx(0.54)
    assert float(summary["simclr", 3000]["accuracy_std"]) == pytest.approx(
        0.02 / np.sqrt(2), abs=1e-6
    )

    with Image.open(out / "accuracy_vs_size.png") as im:
        assert im.format == "PNG" and im.width > 400
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert ((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum() > 1_000  # coloured method lines


def test_where_keeps_one_studys_runs(exp_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    run([sys.executable, "-m", "catdog.report", "--out", str(out), "--where", "data.size=3000"], exp_repo)
    with open(out / "summary.csv") as f:
        kept = {(r["method"], int(r["size"]), int(r["runs"])) for r in csv.DictReader(f)}
    assert kept == {("teacher", 3000, 2), ("simclr", 3000, 2), ("kd", 3000, 2)}
    done = subprocess.run([sys.executable, "-m", "catdog.report", "--out", str(out), "--where",
                           "data.size=4000"], cwd=exp_repo, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert done.returncode != 0 and "data.size=4000" in done.stderr


def test_report_workspace_only_without_commits(tmp_path: Path) -> None:
    run(["git", "init", "-q"], tmp_path)
    dvc("init", "-q", cwd=tmp_path)
    (tmp_path / "params.yaml").write_text("data:\n  size: 6000\n  seed: 0\npretrain:\n  seed: 0\n")
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    run([sys.executable, "fake_train.py"], tmp_path)
    run([sys.executable, "-m", "catdog.report"], tmp_path)
    md = (tmp_path / "reports" / "report.md").read_text()
    assert "| 6k | 1 | 0.560 | 0.570 | 0.550 | 0.580 | 0.540 | 0.76 |" in md
    assert (tmp_path / "reports" / "accuracy_vs_size.png").is_file()


def entry(rev: str, name: str | None, size: int, seed: int, acc: float) -> dict:
    """One entry shaped like dvc 3.67's `dvc exp show --json`."""
    metrics = {"accuracy": acc, "epochs": 10}
    return {
        "rev": rev,
        "name": name,
        "error": None,
        "experiments": None,
        "data": {
            "rev": rev,
            "params": {
                "params.yaml": {"data": {"data": {"size": size}, "finetune": {"seed": seed}}}
            },
            "metrics": {"metrics/kd.json": {"data": metrics}, "dvclive/metrics.json": {"data": {}}},
        },
    }


def test_parse_skips_queued_failed_and_duplicates() -> None:
    base = entry("a" * 40, "main", 10000, 0, 0.9)
    base["experiments"] = [
        {"name": "done", "executor": None, "revs": [entry("b" * 40, "done", 3000, 0, 0.7)]},
        {"name": "seed1", "executor": {"state": "success"},
         "revs": [entry("c" * 40, "seed1", 3000, 1, 0.8)]},
        {"name": "q", "executor": {"state": "queued"}, "revs": [entry("d" * 40, "q", 1, 0, 0.5)]},
        {"name": "bad", "executor": None,
         "revs": [{**entry("e" * 40, "bad", 2, 0, 0.5), "error": {"msg": "failed"}}]},
    ]  # fmt: skip
    no_metrics = entry("f" * 40, "empty", 4, 0, 0.5)
    no_metrics["data"]["metrics"] = {}
    show = [entry("workspace", None, 3000, 0, 0.7), base, no_metrics]
    runs = parse_exp_show(show)
    assert sorted((r.name, r.size, r.metrics["kd"]["accuracy"]) for r in runs) == [
        ("done", 3000, 0.7), ("main", 10000, 0.9), ("seed1", 3000, 0.8),
    ]  # fmt: skip
    assert {r.name: r.seeds for r in runs}["seed1"] == {"finetune.seed": 1}


def test_runs_of_other_recipes_are_rows_apart_and_only_seeds_are_pooled() -> None:
    from catdog.experiments import make_run, tag_recipes
    from catdog.report import label, params_of_method, summarize

    declared = {"pool": ["data.size"], "pretrain": ["pretrain", "train.seed"],
                "finetune": ["finetune", "train.seed"], "teacher": ["teacher"],
                "teacher_logits": ["data.max_size"], "distill": ["distill", "train.seed"]}
    metrics = {"kd": {"accuracy": 0.9}, "simclr": {"accuracy": 0.8}}

    def run(name: str, seed: int, mode: str, weight: float, source: str) -> object:
        return make_run(name, {"data.size": 3000, "data.source": source, "train.seed": seed,
                               "pretrain.epochs": 5, "distill.teacher_mode": mode,
                               "distill.feature_weight": weight}, metrics)

    runs = tag_recipes([run("a", 0, "cached", 0.0, "/x.zip"), run("b", 1, "cached", 0.0, "/y.zip"),
                        run("c", 0, "online", 2.0, "/x.zip")], params_of_method(declared))
    cached = "kd[distill.feature_weight=0.0,distill.teacher_mode=cached]"
    online = "kd[distill.feature_weight=2.0,distill.teacher_mode=online]"
    # a and b differ in seed and photo path only: one recipe; c's distill params differ, and
    # SimCLR's stages read no distill param, so its three runs stay one recipe
    assert [set(r.metrics) for r in runs] == [{cached, "simclr"}, {cached, "simclr"}, {online, "simclr"}]
    assert label(online) == "KD [distill.feature_weight=2.0,distill.teacher_mode=online]"
    rows = {r["method"]: r["runs"] for r in summarize(runs, [cached, online, "simclr"])}
    assert rows == {cached: 2, online: 1, "simclr": 3}
    # without dvc.yaml every param is a recipe param: the pretrain change splits SimCLR too
    other = make_run("d", {**runs[0].params, "pretrain.epochs": 9}, metrics)
    untagged = tag_recipes([make_run("a", runs[0].params, metrics), other], lambda m: None)
    assert set(untagged[1].metrics) == {"kd[pretrain.epochs=9]", "simclr[pretrain.epochs=9]"}
    # recipes are compared within a pool size: a profile's per-size epochs tag nothing
    bigger = make_run("e", {**other.params, "data.size": 10000}, metrics)
    assert set(tag_recipes([runs[0], bigger], params_of_method(declared))[1].metrics) == {"kd", "simclr"}
    # a param added after a run was made (absent from its params) splits no recipe; a param that
    # every run has and that differs still does
    older = make_run("a", runs[0].params, metrics)
    newer = make_run("f", {**older.params, "distill.label_smoothing": 0.0}, metrics)
    assert [set(r.metrics) for r in tag_recipes([older, newer], params_of_method(declared))] == [
        {"kd", "simclr"}, {"kd", "simclr"}]
    smoothed = make_run("g", {**newer.params, "distill.label_smoothing": 0.1}, metrics)
    three = tag_recipes([older, newer, smoothed], params_of_method(declared))
    assert [sorted(r.metrics) for r in three] == [
        ["kd[distill.label_smoothing=–]", "simclr"], ["kd[distill.label_smoothing=0.0]", "simclr"],
        ["kd[distill.label_smoothing=0.1]", "simclr"]]
    # with the committed defaults, the older run ran at the default: it pools with the newer run
    # that set it, and is named by it where the recipes differ
    pooled = tag_recipes([older, newer, smoothed], params_of_method(declared),
                         {"distill.label_smoothing": 0.0})
    assert [sorted(r.metrics) for r in pooled] == [
        ["kd[distill.label_smoothing=0.0]", "simclr"], ["kd[distill.label_smoothing=0.0]", "simclr"],
        ["kd[distill.label_smoothing=0.1]", "simclr"]]
    assert {r["method"]: r["runs"] for r in summarize(pooled, ["kd[distill.label_smoothing=0.0]"])} == {
        "kd[distill.label_smoothing=0.0]": 2}


def test_a_baseline_reports_the_params_its_metrics_were_made_with() -> None:
    from catdog.experiments import locked_params, parse_exp_show

    lock = ("schema: '2.0'\nstages:\n  pool:\n    params:\n      params.yaml:\n        data.size: 800\n"
            "  pretrain:\n    params:\n      params.yaml:\n        train.seed: 0\n"
            "        pretrain:\n          epochs: 6\n")
    assert locked_params(lock) == {"data.size": 800, "train.seed": 0, "pretrain.epochs": 6}
    baseline = {"rev": "abc1234def", "name": "main", "data": {
        "params": {"params.yaml": {"data": {"data": {"size": 10000}, "train": {"seed": 0}}}},
        "metrics": {"metrics/kd.json": {"data": {"accuracy": 0.5}}}}}
    assert parse_exp_show([baseline])[0].size == 10000  # params.yaml alone
    runs = parse_exp_show([baseline], lambda rev: lock if rev == "abc1234def" else None)
    assert [(r.name, r.size) for r in runs] == [("main", 800)]


def test_winner_within_one_std_is_not_called_a_clear_win() -> None:
    from catdog.report import winners

    def row(method: str, mean: float, std: float) -> dict:
        return {"method": method, "size": 3000, "runs": 3, "accuracy_mean": mean,
                "accuracy_std": std, "seconds_mean": math.nan}

    close = winners(["kd", "simclr"], [row("kd", 0.80, 0.03), row("simclr", 0.78, 0.01)])
    assert close == ["- 3k: **KD** 0.800 ± 0.030, ahead of SimCLR (0.780 ± 0.010) by 0.020 "
                     "(within one std: not a clear win)."]
    clear = winners(["kd", "simclr"], [row("kd", 0.90, 0.01), row("teacher", 0.99, 0.0),
                                       row("simclr", 0.78, 0.01)])
    assert clear == ["- 3k: **KD** 0.900 ± 0.010, ahead of SimCLR (0.780 ± 0.010) by 0.120."]
    # Single runs: the margin is weighed against the test set's standard error.
    single = [row("kd", 0.844, math.nan) | {"n_mean": 5000.0},
              row("imagenet", 0.839, math.nan) | {"n_mean": 5000.0}]
    assert winners(["kd", "imagenet"], single) == [
        "- 3k: **KD** 0.844, ahead of ImageNet (0.839) by 0.005 (within the 5000 test images' "
        "standard error of 0.007: not a clear win)."]
    single[1]["accuracy_mean"] = 0.80
    assert winners(["kd", "imagenet"], single)[0].endswith("by 0.044.")


def test_representation_scores_sit_beside_their_floor_per_pool_size(tmp_path: Path) -> None:
    from catdog.report import representation_scores, representation_table

    def snapshot(name: str, size: int, files: dict[str, dict]) -> None:
        folder = tmp_path / name
        (folder / "metrics/representation").mkdir(parents=True)
        seed = name.split("-seed")[1][0]
        (folder / "params.yaml").write_text(f"data:\n  size: {size}\ntrain:\n  seed: {seed}\n")
        for stem, value in files.items():
            (folder / f"metrics/representation/{stem}.json").write_text(json.dumps(value))

    bounds = {"random": {"probe_agree": 0.55, "probe_val": 0.5, "knn_val": 0.5},
              "imagenet": {"probe_agree": 0.9, "probe_val": 0.88, "knn_val": 0.8}}
    snapshot("3000-seed0", 3000, {"bounds": bounds, "simclr": {"probe_agree": 0.6, "probe_val": 0.62}})
    snapshot("3000-seed1", 3000, {"bounds": bounds, "simclr": {"probe_agree": 0.64, "probe_val": 0.58}})
    snapshot("6000-seed0", 6000,
             {"bounds": bounds, "simclr_imagenet": {"probe_agree": 0.95, "probe_val": 0.9}})
    # a method run on its own at the same size and seed carries the same floor: counted once
    snapshot("3000-seed1-simclr_imagenet", 3000,
             {"bounds": bounds, "simclr_imagenet": {"probe_agree": 0.8, "probe_val": 0.7}})
    (tmp_path / "10000-seed0").mkdir()  # a run made before the score existed: no row, no column
    (tmp_path / "10000-seed0/params.yaml").write_text("data:\n  size: 10000\n")
    table = representation_table(representation_scores(tmp_path)).splitlines()
    assert table[0] == "| Encoder | 6k | 3k |"
    assert table[2:] == [
        "| Random init (floor) | 0.550 (0.500) [1] | 0.550 (0.500) [2] |",
        "| ImageNet (ceiling) | 0.900 (0.880) [1] | 0.900 (0.880) [2] |",
        "| SimCLR | – | 0.620 (0.600) [2] |",
        "| SimCLR from ImageNet | 0.950 (0.900) [1] | 0.800 (0.700) [1] |",
    ]


def test_calibration_and_robustness_get_a_section_when_runs_have_them() -> None:
    from catdog.experiments import Run
    from catdog.report import render_markdown, summarize

    def run(name: str, seed: int, ece: float | None, corrupted: float | None) -> Run:
        scores = {"accuracy": 0.8, "n": 100}
        scores |= {} if ece is None else {"ece": ece, "corruption_accuracy": corrupted}
        return Run(name=name, size=3000, seeds={"train.seed": seed}, params={"data.size": 3000},
                   metrics={"kd": scores, "scratch": {"accuracy": 0.6, "n": 100}})

    runs = [run("a", 0, 0.04, 0.70), run("b", 1, 0.06, 0.74)]
    rows = summarize(runs, ["kd", "scratch"])
    kd = next(r for r in rows if r["method"] == "kd")
    assert kd["ece_mean"] == pytest.approx(0.05) and kd["corruption_accuracy_mean"] == pytest.approx(0.72)
    text = render_markdown(runs, ["kd", "scratch"], rows)
    section = text.split("## Calibration and robustness (test)")[1].split("##")[0]
    assert "| KD | 0.050 ± 0.014 | 0.720 ± 0.028 |" in section
    assert "| Scratch | – | – |" in section  # a method without the scores says so
    old = [run("c", 0, None, None)]  # runs made before the scores: no empty section
    assert "Calibration and robustness" not in render_markdown(old, ["kd"], summarize(old, ["kd"]))
