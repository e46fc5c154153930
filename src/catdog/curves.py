"""Per-epoch curves from dvclive TSV files (step and one column each) in one PNG, for result
READMEs where a picture says it faster than a table; `dvc plots show` draws the same files.

    python -m catdog.curves a.tsv b.tsv --y acc --out curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from catdog.atomic import save_figure


def read_curve(path: Path, y: str) -> pd.DataFrame:
    """A dvclive TSV's `step` and `y` columns; SystemExit naming the file when either is missing."""
    if not path.is_file():
        raise SystemExit(f"error: {path} not found")
    table = pd.read_csv(path, sep="\t")
    missing = [c for c in ("step", y) if c not in table.columns]
    if missing:
        raise SystemExit(f"error: {path} has no column {missing[0]!r} (columns: {', '.join(table.columns)})")
    return table[["step", y]]


def plot(paths: list[Path], y: str, out: Path) -> None:
    """One line per file, labelled by its name without the extension; epoch = step + 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {path.stem: read_curve(path, y) for path in paths}  # every file checked before drawing
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        ax.plot(curve["step"] + 1, curve[y], label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(out, fig, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tsv", nargs="+", type=Path, help="dvclive TSV files (step, then the metric)")
    parser.add_argument("--y", required=True, help="the column to draw, e.g. acc")
    parser.add_argument("--out", required=True, type=Path, help="the PNG to write")
    args = parser.parse_args(argv)
    plot(args.tsv, args.y, args.out)
    print(f"{len(args.tsv)} curve(s) -> {args.out}")


if __name__ == "__main__":
    main()
