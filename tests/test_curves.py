"""catdog.curves: dvclive TSV curves drawn into one PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

from catdog import curves


def tsv(path: Path, rows: list[tuple[int, float]], column: str = "acc") -> Path:
    path.write_text(f"step\t{column}\n" + "".join(f"{s}\t{v}\n" for s, v in rows))
    return path


def test_two_curves_make_one_png_labelled_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tsv(tmp_path / "as-trained.tsv", [(0, 0.5), (1, 0.9), (2, 0.6)])
    b = tsv(tmp_path / "recalibrated.tsv", [(0, 0.6), (1, 0.9), (2, 0.95)])
    drawn = {}
    real = curves.save_figure
    monkeypatch.setattr(curves, "save_figure", lambda path, fig, dpi: drawn.update(
        {line.get_label(): list(line.get_xdata()) for line in fig.axes[0].lines}) or real(path, fig, dpi))
    curves.main([str(a), str(b), "--y", "acc", "--out", str(tmp_path / "out/val.png")])
    assert (tmp_path / "out/val.png").read_bytes()[:4] == b"\x89PNG"
    assert drawn == {"as-trained": [1, 2, 3], "recalibrated": [1, 2, 3]}  # epochs: step + 1


def test_a_missing_file_or_column_is_named_and_nothing_is_drawn(tmp_path: Path) -> None:
    good = tsv(tmp_path / "good.tsv", [(0, 0.5)])
    with pytest.raises(SystemExit, match=r"missing\.tsv not found"):
        curves.main([str(good), str(tmp_path / "missing.tsv"), "--y", "acc",
                     "--out", str(tmp_path / "a.png")])
    loss = tsv(tmp_path / "loss.tsv", [(0, 1.2)], column="loss")
    with pytest.raises(SystemExit, match=r"loss\.tsv has no column 'acc' \(columns: step, loss\)"):
        curves.main([str(good), str(loss), "--y", "acc", "--out", str(tmp_path / "b.png")])
    assert not list(tmp_path.glob("*.png"))
