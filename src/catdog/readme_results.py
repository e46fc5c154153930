"""The README's results tables, generated from published summary.csv files.

README.md shows a table of test accuracy per result set (results/<set>/summary.csv): a row per
method, a column per pool size, each cell "mean ± std (runs)" over seeds, and the reference
study's accuracy where it reports one. Each table sits between two markers in README.md,
`<!-- results:<set>:start -->` and `<!-- results:<set>:end -->`, and is written by this module,
never by hand:

    python -m catdog.readme_results            # rewrite every marked table from its summary.csv
    python -m catdog.readme_results --check    # exit 1 when a marked table is out of date

Paths default to the current directory (the repository root).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from catdog.experiments import base_method
from catdog.methods import METHODS, REFERENCE_ACCURACY

SETS = ("cpu", "h200")  # result sets the README may show, in this order; cpu is required
README = Path("README.md")
MISSING = "—"


def markers(name: str) -> tuple[str, str]:
    """The README's start and end markers of result set `name`'s table."""
    return f"<!-- results:{name}:start -->", f"<!-- results:{name}:end -->"


def summary_path(name: str) -> Path:
    return Path("results") / name / "summary.csv"


START, END = markers("cpu")
SUMMARY = summary_path("cpu")


def method_label(method: str) -> str:
    base = base_method(method)
    tag = method[len(base) :]
    label = METHODS[base].title if base in METHODS else base
    return f"{label} {tag}" if tag else label


def method_key(method: str) -> tuple[int, str, str]:
    base = base_method(method)
    order = list(METHODS)
    rank = order.index(base) if base in order else len(order)
    return rank, base, method


def size_label(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def cell(mean: float, std: float, runs: int) -> str:
    """`0.904 ± 0.007 (2)`; a single run has no std: `0.904 (1)`."""
    if math.isnan(mean):
        return MISSING
    spread = "" if math.isnan(std) else f" ± {std:.3f}"
    return f"{mean:.3f}{spread} ({runs})"


def reference_cell(method: str, sizes: list[int]) -> str:
    """The reference study's accuracy at `sizes`, e.g. `0.92 / 0.84 / 0.75`; `—` where it has none."""
    reference = REFERENCE_ACCURACY.get(base_method(method))
    if not reference:
        return MISSING
    return " / ".join(f"{reference[s]:.2f}" if s in reference else MISSING for s in sizes)


def read_summary(summary: Path) -> dict[str, dict[int, str]]:
    """method -> pool size -> formatted cell, from the report's summary.csv."""
    cells: dict[str, dict[int, str]] = {}
    with summary.open(newline="") as f:
        for row in csv.DictReader(f):
            mean, std = float(row["accuracy_mean"]), float(row["accuracy_std"] or "nan")
            cells.setdefault(row["method"], {})[int(row["size"])] = cell(mean, std, int(row["runs"]))
    return cells


def results_table(summary: Path) -> str:
    """The markdown table of test accuracy in `summary` (no trailing newline)."""
    cells = read_summary(summary)
    sizes = sorted({size for by_size in cells.values() for size in by_size}, reverse=True)
    reference_header = "Reference study (" + " / ".join(size_label(s) for s in sizes) + ")"
    header = ["Method", *(size_label(s) for s in sizes), reference_header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in sorted(cells, key=method_key):
        measured = [cells[method].get(s, MISSING) for s in sizes]
        row = [method_label(method), *measured, reference_cell(method, sizes)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def replace_block(text: str, table: str, name: str = "cpu") -> str:
    """`text` with everything between set `name`'s markers replaced by `table`."""
    start_marker, end_marker = markers(name)
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"README has no {start_marker} ... {end_marker} block")
    return text[: start + len(start_marker)] + "\n" + table + "\n" + text[end:]


def update_readme(readme: Path, summary: Path, name: str = "cpu") -> bool:
    """Write `summary`'s table into `readme`'s block of set `name`; True when the file changed."""
    text = readme.read_text()
    new = replace_block(text, results_table(summary), name)
    if new == text:
        return False
    readme.write_text(new)
    return True


def check_readme(readme: Path, summary: Path, name: str = "cpu") -> str | None:
    """None when `readme`'s table of set `name` is what `summary` gives, else a one-line message
    saying why not."""
    text = readme.read_text()
    try:
        new = replace_block(text, results_table(summary), name)
    except ValueError as e:
        return f"{readme}: {e}"
    if new != text:
        return f"{readme}: results table differs from {summary}; run `python -m catdog.readme_results`"
    return None


def shown_sets(readme: Path) -> list[str]:
    """The result sets whose tables `readme` marks (cpu always: its markers are required)."""
    text = readme.read_text()
    return [name for name in SETS if name == "cpu" or markers(name)[0] in text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=README, help="default: %(default)s")
    parser.add_argument("--set", dest="sets", action="append", choices=SETS,
                        help="a result set to write or check (repeatable; default: every set the "
                             "README marks)")
    parser.add_argument("--summary", type=Path,
                        help="the summary.csv of the one set given (default: results/<set>/summary.csv)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    sets = args.sets or shown_sets(args.readme)
    if args.summary and len(sets) != 1:
        parser.error("--summary needs exactly one set (--set NAME)")
    status = 0
    for name in sets:
        summary = args.summary or summary_path(name)
        if args.check:
            problem = check_readme(args.readme, summary, name)
            if problem:
                print(problem, file=sys.stderr)
                status = 1
            else:
                print(f"{args.readme}: results table {name} matches {summary}")
            continue
        changed = update_readme(args.readme, summary, name)
        print(f"{args.readme}: table {name} {'updated' if changed else 'already up to date'} from {summary}")
    return status


if __name__ == "__main__":
    sys.exit(main())
