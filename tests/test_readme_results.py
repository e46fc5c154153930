"""README.md's results tables are generated from results/<set>/summary.csv (catdog.readme_results)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catdog import readme_results
from catdog.readme_results import (
    END,
    START,
    check_readme,
    main,
    markers,
    results_table,
    shown_sets,
    update_readme,
)

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "method,size,runs,accuracy_mean,accuracy_std,precision_cat_mean,precision_cat_std,"
    "recall_cat_mean,recall_cat_std\n"
)


def test_committed_readme_matches_committed_summary() -> None:
    readme, summary = ROOT / "README.md", ROOT / "results" / "cpu" / "summary.csv"
    assert check_readme(readme, summary) is None
    text = readme.read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    assert results_table(summary) in text
    for name in shown_sets(readme):  # every other set the README shows matches its summary too
        assert check_readme(readme, ROOT / "results" / name / "summary.csv", name) is None


def write_summary(path: Path) -> Path:
    rows = [
        # other methods first and out of order: the table orders them, not the file
        "zeta_method,10000,1,0.5,nan,0,0,0,0",
        "imagenet_kd,10000,2,0.8,0.01,0,0,0,0",
        "kd,10000,3,0.90421,0.007354,0,0,0,0",
        "kd,3000,2,0.8767,0.010041,0,0,0,0",  # no 6k run of kd
        "kd[distill.alpha=0.9],10000,1,0.8919,nan,0,0,0,0",
        "scratch,10000,2,0.5773,0.012869,0,0,0,0",
        "scratch,6000,2,0.5773,0.012869,0,0,0,0",
        "scratch,3000,2,0.5773,0.012869,0,0,0,0",
        "simclr,6000,2,0.5777,0.011172,0,0,0,0",
        "teacher,10000,2,0.982,0.0,0,0,0,0",
    ]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def parse(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]


def test_table_rows_columns_and_cells(tmp_path: Path) -> None:
    rows = parse(results_table(write_summary(tmp_path / "summary.csv")))
    assert rows[0] == ["Method", "10k", "6k", "3k", "Reference study (10k / 6k / 3k)"]
    assert rows[1] == ["---", "---", "---", "---", "---"]
    body = {r[0]: r[1:] for r in rows[2:]}
    assert [r[0] for r in rows[2:]] == [
        "Teacher (EfficientNet-Lite2)",
        "SimCLR + fine-tune",
        "KD",
        "KD [distill.alpha=0.9]",
        "Scratch (random init)",
        "ImageNet + KD",
        "zeta_method",
    ]
    assert body["KD"] == ["0.904 ± 0.007 (3)", "—", "0.877 ± 0.010 (2)", "0.92 / 0.84 / 0.75"]
    assert body["KD [distill.alpha=0.9]"] == ["0.892 (1)", "—", "—", "0.92 / 0.84 / 0.75"]
    assert body["SimCLR + fine-tune"] == ["—", "0.578 ± 0.011 (2)", "—", "0.78 / 0.76 / 0.72"]
    assert body["Teacher (EfficientNet-Lite2)"] == ["0.982 ± 0.000 (2)", "—", "—", "—"]
    assert body["Scratch (random init)"] == ["0.577 ± 0.013 (2)"] * 3 + ["—"]
    assert body["ImageNet + KD"] == ["0.800 ± 0.010 (2)", "—", "—", "—"]
    assert body["zeta_method"] == ["0.500 (1)", "—", "—", "—"]


def test_simclr_imagenet_sits_between_simclr_and_kd(tmp_path: Path) -> None:
    summary = tmp_path / "summary.csv"
    summary.write_text(HEADER + "kd,3000,1,0.9,nan,0,0,0,0\nsimclr_imagenet,3000,1,0.7,nan,0,0,0,0\n"
                       "simclr,3000,1,0.6,nan,0,0,0,0\n")
    rows = parse(results_table(summary))
    assert rows[0] == ["Method", "3k", "Reference study (3k)"]
    assert [r[0] for r in rows[2:]] == ["SimCLR + fine-tune", "SimCLR from ImageNet + fine-tune", "KD"]
    assert rows[2][2] == "0.72" and rows[3][2] == "—"


def test_update_replaces_only_the_marked_block_and_is_idempotent(tmp_path: Path) -> None:
    summary = write_summary(tmp_path / "summary.csv")
    before, after = "# Title\n\nIntro.\n\n## Results\n\n", "\n\nText under the table.\n\n## Next\n"
    readme = tmp_path / "README.md"
    readme.write_text(f"{before}{START}\n| stale | table |\n{END}{after}")
    assert check_readme(readme, summary) is not None
    assert update_readme(readme, summary) is True
    text = readme.read_text()
    assert text == f"{before}{START}\n{results_table(summary)}\n{END}{after}"
    assert "stale" not in text
    assert check_readme(readme, summary) is None
    assert update_readme(readme, summary) is False
    assert readme.read_text() == text


def test_missing_markers_are_an_error(tmp_path: Path) -> None:
    summary = write_summary(tmp_path / "summary.csv")
    readme = tmp_path / "README.md"
    readme.write_text("# No markers here\n")
    with pytest.raises(ValueError, match="results:cpu:start"):
        update_readme(readme, summary)
    message = check_readme(readme, summary)
    assert message is not None and "\n" not in message


def test_cli_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = write_summary(tmp_path / "summary.csv")
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\nold\n{END}\n")
    args = ["--readme", str(readme), "--summary", str(summary)]
    assert main([*args, "--check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "python -m catdog.readme_results" in err
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    assert readme.read_text() == f"{START}\n{readme_results.results_table(summary)}\n{END}\n"


def test_each_marked_set_gets_its_own_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("cpu", "h200"):
        Path("results", name).mkdir(parents=True)
    cpu = write_summary(Path("results/cpu/summary.csv"))
    h200 = Path("results/h200/summary.csv")
    h200.write_text(HEADER + "kd,10000,1,0.95,nan,0,0,0,0\n")
    h200_start, h200_end = markers("h200")
    Path("README.md").write_text(f"{START}\nold\n{END}\nbetween\n{h200_start}\nold\n{h200_end}\n")
    assert shown_sets(Path("README.md")) == ["cpu", "h200"]
    assert main(["--check"]) == 1
    assert capsys.readouterr().err.count("\n") == 2  # one line per stale table
    assert main([]) == 0
    text = Path("README.md").read_text()
    assert text == (f"{START}\n{results_table(cpu)}\n{END}\nbetween\n"
                    f"{h200_start}\n{results_table(h200)}\n{h200_end}\n")
    assert "0.950 (1)" in results_table(h200) and "0.950 (1)" not in results_table(cpu)
    assert main(["--check"]) == 0
    h200.write_text(HEADER + "kd,10000,1,0.96,nan,0,0,0,0\n")  # only h200's table goes stale
    assert main(["--check"]) == 1
    assert "h200" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --summary names one set's file: ambiguous for two
        main(["--summary", str(h200)])
