"""Sweep results read on val: the points, the best one, the CSV and the plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from catdog.tuning import best_point, main, standard_error, val_points


def _entry(name: str, t: float, alpha: float, val: float | None, epochs: int = 10) -> dict:
    metrics = {"metrics/time/distill-kd.json": {"data": {"seconds": 5.0}}}
    if val is not None:
        metrics["models/kd.json"] = {"data": {"val_accuracy": val, "epochs": epochs, "train_seconds": 4.0}}
    params = {"distill": {"temperature": t, "alpha": alpha}, "data": {"size": 3000, "val": 180}}
    return {"rev": name * 8, "name": name, "data": {"params": {"params.yaml": {"data": params}},
                                                   "metrics": metrics}}


def _show() -> list[dict]:
    grid = [("a", 1.0, 0.5, 0.80), ("b", 4.0, 0.5, 0.86), ("c", 1.0, 0.9, 0.84),
            ("d", 4.0, 0.9, 0.86), ("e", 8.0, 0.9, 0.83)]
    exps = [{"executor": {"state": "success"}, "revs": [_entry(*g)]} for g in grid]
    exps.append({"executor": {"state": "failed"}, "revs": [_entry("f", 2.0, 0.9, 0.99)]})
    exps.append({"executor": {"state": "success"}, "revs": [_entry("g", 2.0, 0.9, None)]})
    exps.append({"executor": None, "revs": [_entry("w", 2.0, 0.5, 0.82)]})  # ran in the workspace
    workspace = _entry("workspace", 8.0, 0.9, 0.83)
    workspace["name"] = None
    workspace["rev"] = "workspace"
    return [workspace, {**_entry("base", 4.0, 0.9, None), "experiments": exps}]


def test_points_skip_failed_and_untrained_runs_and_the_workspace_but_keep_workspace_experiments() -> None:
    points = val_points(_show(), "kd", "distill.temperature", "distill.alpha")
    assert sorted(p["name"] for p in points) == ["a", "b", "c", "d", "e", "w"]
    assert {p["val_accuracy"] for p in points} == {0.80, 0.86, 0.84, 0.83, 0.82}


def test_standard_error_is_binomial_on_the_val_size() -> None:
    points = val_points(_show(), "kd", "distill.temperature", "distill.alpha")
    b = next(p for p in points if p["name"] == "b")
    assert b["val_images"] == 180
    assert standard_error(b) == pytest.approx((0.86 * 0.14 / 180) ** 0.5)
    assert standard_error({**b, "score_images": None}) == 0.0


def test_best_point_breaks_ties_by_fewer_epochs() -> None:
    points = val_points(_show(), "kd", "distill.temperature", "distill.alpha")
    for p in points:
        p["epochs"] = 7 if p["name"] == "d" else 12
    assert best_point(points)["name"] == "d"


def _cli_rows(tmp_path: Path, *args: str) -> list[dict[str, str]]:
    """Run the CLI on _show() with `args` and return the CSV it wrote."""
    show = tmp_path / "show.json"
    show.write_text(json.dumps(_show()))
    main(["kd", "--x", "distill.temperature", *args, "--out", str(tmp_path / "out"),
          "--show-json", str(show)])
    return list(csv.DictReader((tmp_path / "out/kd.csv").open()))


def test_cli_writes_csv_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _cli_rows(tmp_path, "--series", "distill.alpha")
    assert len(rows) == 6 and {"distill.temperature", "distill.alpha", "val_accuracy"} <= set(rows[0])
    with Image.open(tmp_path / "out/kd.png") as img:
        assert img.size[0] > 300 and img.convert("L").getextrema()[0] < 100  # not blank
    assert "best on val 0.860" in capsys.readouterr().out


def test_where_keeps_only_one_sweeps_points(tmp_path: Path) -> None:
    show = _show()
    other = _entry("h", 4.0, 0.9, 0.95)
    other["data"]["params"]["params.yaml"]["data"]["data"]["size"] = 10000  # e.g. a profile run
    show[1]["experiments"].append({"executor": {"state": "success"}, "revs": [other]})
    every = val_points(show, "kd", "distill.temperature", "distill.alpha")
    assert "h" in {p["name"] for p in every}
    mine = val_points(show, "kd", "distill.temperature", "distill.alpha", {"data.size": 3000})
    assert sorted(p["name"] for p in mine) == ["a", "b", "c", "d", "e", "w"]
    assert val_points(show, "kd", "distill.temperature", "distill.alpha", {"distill.epochs": 20}) == []
    (tmp_path / "show.json").write_text(json.dumps(show))
    with pytest.raises(SystemExit, match="data.size=6000"):
        main(["kd", "--x", "distill.temperature", "--series", "distill.alpha", "--out",
              str(tmp_path / "out"), "--show-json", str(tmp_path / "show.json"), "--where", "data.size=6000"])
    with pytest.raises(SystemExit, match="PARAM=VALUE"):
        main(["kd", "--x", "distill.temperature", "--series", "distill.alpha", "--where", "data.size"])


def test_a_one_param_sweep_needs_no_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _cli_rows(tmp_path, "--where", "distill.alpha=0.9")
    assert sorted(r["name"] for r in rows) == ["c", "d", "e"]
    assert "distill.alpha" not in rows[0]
    assert [float(r["distill.temperature"]) for r in sorted(rows, key=lambda r: r["name"])] == [1.0, 4.0, 8.0]
    with Image.open(tmp_path / "out/kd.png") as img:
        assert img.convert("L").getextrema()[0] < 100  # not blank
    out = capsys.readouterr().out
    assert "best on val 0.860 at distill.temperature=4.0 (d)" in out and "alpha" not in out


def test_a_sweep_can_be_read_on_teacher_agreement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    show = _show()
    agree = {"a": 0.70, "b": 0.74, "c": 0.78, "d": 0.72, "e": 0.71, "w": 0.69}
    for group in show[1]["experiments"]:
        for entry in group["revs"]:
            info = entry["data"]["metrics"].get("models/kd.json")
            if info and entry["name"] in agree:
                info["data"]["heldout_agree"] = agree[entry["name"]]
                entry["data"]["params"]["params.yaml"]["data"]["data"]["heldout"] = 2000
    points = val_points(show, "kd", "distill.temperature", "distill.alpha", metric="heldout_agree")
    assert best_point(points)["name"] == "c"  # on val "b" and "d" lead: the metric decides
    c = next(p for p in points if p["name"] == "c")
    assert standard_error(c) == pytest.approx((0.78 * 0.22 / 2000) ** 0.5)
    (tmp_path / "show.json").write_text(json.dumps(show))
    main(["kd", "--x", "distill.temperature", "--series", "distill.alpha", "--metric", "heldout_agree",
          "--out", str(tmp_path / "out"), "--show-json", str(tmp_path / "show.json")])
    assert "best teacher agreement 0.780" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "out/kd.csv").open()))
    assert {"heldout_agree", "val_accuracy"} <= set(rows[0])


def test_a_categorical_param_can_be_the_x_axis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    show = _show()
    modes = {"a": "cached", "b": "crops", "c": "online", "d": "crops", "e": "cached", "w": "online"}
    for group in show[1]["experiments"]:
        for entry in group["revs"]:
            if entry["name"] in modes:
                distill = entry["data"]["params"]["params.yaml"]["data"]["distill"]
                distill["teacher_mode"] = modes[entry["name"]]
    (tmp_path / "show.json").write_text(json.dumps(show))
    main(["kd", "--x", "distill.teacher_mode", "--series", "distill.alpha", "--out", str(tmp_path / "out"),
          "--show-json", str(tmp_path / "show.json")])
    assert "best on val 0.860 at distill.teacher_mode=crops" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "out/kd.csv").open()))
    assert sorted(r["distill.teacher_mode"] for r in rows) == ["cached", "cached", "crops", "crops",
                                                               "online", "online"]
    with Image.open(tmp_path / "out/kd.png") as img:
        assert img.convert("L").getextrema()[0] < 100  # not blank


def test_all_commits_asks_dvc_for_every_commits_experiments(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import catdog.tuning

    asked = []
    monkeypatch.setattr(catdog.tuning, "exp_show", lambda path, args=(): asked.append(args) or _show())
    main(["kd", "--x", "distill.temperature", "--out", str(tmp_path / "head")])
    main(["kd", "--x", "distill.temperature", "--all-commits", "--out", str(tmp_path / "all")])
    assert asked == [(), ("--all-commits",)]
    assert (tmp_path / "all/kd.csv").read_text() == (tmp_path / "head/kd.csv").read_text()
