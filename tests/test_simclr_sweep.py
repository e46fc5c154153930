"""SimCLR's sweep read from `dvc exp show`: what each point changed, the compute curve, the bounds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from catdog.simclr_sweep import common_recipe, compute_curve, label, main, scratch_val, sweep_points


def _entry(name: str, agree: float | None, size: int = 3000, **pretrain: float) -> dict:
    recipe = {"epochs": 30, "temperature": 0.2, "lr": 0.3} | pretrain
    metrics = {"metrics/time/pretrain.json": {"data": {"seconds": 60.0 * recipe["epochs"]}}}
    if agree is not None:
        metrics["metrics/representation/simclr.json"] = {
            "data": {"probe_val": agree + 0.01, "probe_agree": agree, "knn_val": agree - 0.01}}
        metrics["models/simclr.json"] = {"data": {"val_accuracy": agree + 0.02, "epochs": 9}}
    params = {"pretrain": recipe, "data": {"size": size, "val": 180, "heldout": 2000}}
    return {"rev": name * 8, "name": name, "data": {"params": {"params.yaml": {"data": params}},
                                                   "metrics": metrics}}


def _show() -> list[dict]:
    points = [_entry("e30", 0.59), _entry("e15", 0.57, epochs=15), _entry("e60", 0.60, epochs=60),
              _entry("e120", 0.61, epochs=120), _entry("t05", 0.63, temperature=0.5),
              _entry("t05e60", 0.64, temperature=0.5, epochs=60), _entry("big", 0.9, size=10000)]
    bounds = _entry("bounds", None)
    bounds["data"]["metrics"]["metrics/representation/bounds.json"] = {"data": {
        "random": {"probe_val": 0.57, "probe_agree": 0.56, "knn_val": 0.56},
        "imagenet": {"probe_val": 0.87, "probe_agree": 0.79, "knn_val": 0.82}}}
    stale = _entry("stale", 0.99)  # its score file is the baseline's: it did not pretrain
    exps = [{"executor": {"state": "success"}, "revs": [e]} for e in [*points, bounds, stale]]
    exps.append({"executor": {"state": "failed"}, "revs": [_entry("broken", 0.98)]})
    base = _entry("base", 0.99)
    base["data"]["metrics"]["metrics/representation/bounds.json"] = {"data": {  # another profile's
        "random": {"probe_val": 0.5, "probe_agree": 0.5, "knn_val": 0.5},
        "imagenet": {"probe_val": 0.8, "probe_agree": 0.8, "knn_val": 0.8}}}
    for e in points:  # every experiment carries the commit's bounds along, unchanged
        e["data"]["metrics"]["metrics/representation/bounds.json"] = base["data"]["metrics"][
            "metrics/representation/bounds.json"]
    return [{**base, "experiments": exps}]


def test_points_name_what_they_changed_from_the_common_recipe() -> None:
    points, bounds = sweep_points(_show(), {"data.size": 3000})
    by_name = {p["name"]: p for p in points}
    # not the failed one, the other size, the baseline, nor the one whose score is the baseline's
    assert set(by_name) == {"e30", "e15", "e60", "e120", "t05", "t05e60"}
    assert by_name["e30"]["changed"] == {}
    assert label(by_name["e30"]) == "common recipe"
    assert by_name["t05e60"]["changed"] == {"pretrain.temperature": 0.5, "pretrain.epochs": 60}
    assert by_name["e60"]["finetune_val"] == pytest.approx(0.62)
    assert bounds["random"]["probe_agree"] == 0.56  # the experiment's own, not the commit's


def test_common_recipe_is_the_value_most_points_share() -> None:
    points, _ = sweep_points(_show(), {"data.size": 3000})
    base = common_recipe(points)
    assert base["pretrain.epochs"] == 30 and base["pretrain.temperature"] == 0.2


def test_compute_curve_holds_only_points_that_changed_the_epochs_alone() -> None:
    points, _ = sweep_points(_show(), {"data.size": 3000})
    assert [p["name"] for p in compute_curve(points)] == ["e15", "e30", "e60", "e120"]


def test_cli_writes_the_table_ranked_by_agreement_and_both_plots(tmp_path: Path) -> None:
    show = tmp_path / "show.json"
    show.write_text(json.dumps(_show()))
    main(["--show-json", str(show), "--out", str(tmp_path / "out"), "--where", "data.size=3000"])
    rows = list(csv.DictReader((tmp_path / "out" / "sweep.csv").open()))
    assert [r["name"] for r in rows][:2] == ["t05e60", "t05"]
    assert len(rows) == 6
    for png in ("recipe.png", "compute.png"):
        with Image.open(tmp_path / "out" / png) as img:
            assert img.size[0] > 300


def test_cli_stops_with_one_line_when_no_point_finished(tmp_path: Path) -> None:
    show = tmp_path / "show.json"
    show.write_text(json.dumps(_show()))
    with pytest.raises(SystemExit, match="no finished experiment"):
        main(["--show-json", str(show), "--out", str(tmp_path / "out"), "--where", "data.size=6000"])


def test_a_newer_param_reads_as_its_default_in_older_points_and_bounds_follow_the_student() -> None:
    show = _show()
    exps = show[0]["experiments"]
    low = _entry("low", 0.58, epochs=8)  # a stride-1 student: made after student.stem_stride existed
    low["data"]["params"]["params.yaml"]["data"]["student"] = {"stem_stride": 1}
    low_bounds = _entry("low-bounds", None)
    low_bounds["data"]["params"]["params.yaml"]["data"]["student"] = {"stem_stride": 1}
    low_bounds["data"]["metrics"]["metrics/representation/bounds.json"] = {"data": {
        "random": {"probe_val": 0.6, "probe_agree": 0.52, "knn_val": 0.6},
        "imagenet": {"probe_val": 0.9, "probe_agree": 0.81, "knn_val": 0.8}}}
    exps += [{"executor": {"state": "success"}, "revs": [e]} for e in (low, low_bounds)]
    points, bounds = sweep_points(show, {"data.size": 3000})
    by_name = {p["name"]: p for p in points}
    assert by_name["low"]["changed"] == {"student.stem_stride": 1, "pretrain.epochs": 8}
    assert label(by_name["low"]) == "student.stem_stride=1, epochs=8"
    assert by_name["e30"]["changed"] == {}  # lacks the key: read as the common stride 2
    assert by_name["low"]["floor_agree"] == 0.52 and by_name["e30"]["floor_agree"] == 0.56
    assert bounds["random"]["probe_agree"] == 0.56  # drawn: the common recipe's floor


def test_the_fine_tune_from_random_init_is_read_for_the_comparison(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    show = _show()
    assert scratch_val(show, {"data.size": 3000}) is None
    scratch = _entry("scratch", None)
    scratch["data"]["metrics"]["models/scratch.json"] = {"data": {"val_accuracy": 0.64, "epochs": 20}}
    show[0]["experiments"].append({"executor": {"state": "success"}, "revs": [scratch]})
    assert scratch_val(show, {"data.size": 3000}) == 0.64
    (tmp_path / "show.json").write_text(json.dumps(show))
    main(["--show-json", str(tmp_path / "show.json"), "--out", str(tmp_path / "out"),
          "--where", "data.size=3000"])
    assert "fine-tune from random init: val 0.640" in capsys.readouterr().out


def test_records_saved_from_two_checkouts_are_read_as_one_sweep(tmp_path: Path) -> None:
    whole = _show()
    first, second = json.loads(json.dumps(whole)), json.loads(json.dumps(whole))
    first[0]["experiments"] = whole[0]["experiments"][:3]  # e30, e15, e60
    second[0]["rev"] = "f" * 40  # a later commit, in a new checkout: the other points and bounds
    second[0]["experiments"] = whole[0]["experiments"][3:]
    paths = []
    for i, part in enumerate((first, second)):
        paths += ["--show-json", str(tmp_path / f"show{i}.json")]
        (tmp_path / f"show{i}.json").write_text(json.dumps(part))
    main([*paths, "--out", str(tmp_path / "out"), "--where", "data.size=3000"])
    rows = list(csv.DictReader((tmp_path / "out" / "sweep.csv").open()))
    assert {r["name"] for r in rows} == {"e30", "e15", "e60", "e120", "t05", "t05e60"}
    assert {r["floor_agree"] for r in rows} == {"0.56"}  # the bounds came from the second record
