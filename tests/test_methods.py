"""dvc.yaml, the profiles, the report and the README table all follow the method registry
(catdog.methods): a method added there and not in dvc.yaml (or the other way) fails here."""

from __future__ import annotations

import yaml
from dvc_yaml import REPO

from catdog.methods import METHODS, STUDENTS


def _dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_dvc_yaml_scores_and_trains_exactly_the_registered_students() -> None:
    doc = _dvc_yaml()
    assert doc["vars"][0]["students"] == list(STUDENTS)
    for loop in ("finetune", "distill"):
        assert list(doc["stages"][loop]["foreach"]) == [n for n, m in METHODS.items() if m.trains == loop]


def test_each_methods_own_stage_exists_in_dvc_yaml() -> None:
    stages = _dvc_yaml()["stages"]
    for method in METHODS.values():
        for stage in method.stages:
            loop, _, key = stage.partition("-")
            assert loop in stages, (method.name, stage)
            if key:
                assert key in stages[loop]["foreach"], (method.name, stage)


def test_plots_and_artifacts_cover_every_student() -> None:
    doc = _dvc_yaml()
    plotted = yaml.safe_dump(doc["plots"])
    for name in STUDENTS:
        for path in (f"plots/{name}/confusion.csv", f"plots/{name}/roc.csv", f"plots/{name}/featuremaps"):
            assert path in plotted, path
    assert {a["path"] for a in doc["artifacts"].values()} == {f"models/{m}.pt" for m in METHODS}


def test_profiles_report_and_readme_read_the_registry() -> None:
    from catdog.profiles import METHOD_STAGES
    from catdog.readme_results import method_label
    from catdog.report import PREFERRED_METHODS, label

    assert list(METHOD_STAGES) == list(METHODS) == list(PREFERRED_METHODS)
    for name, method in METHODS.items():
        assert label(name) == method.label and method_label(name) == method.title
