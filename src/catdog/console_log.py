"""Console logs kept in results/: a training's log with every tqdm refresh is mostly progress bars
(results/cpu/run.log: 1.08 MB, of which 0.1 MB is not a bar refresh). Keeping each bar's last
state says the same (the per-epoch bar holds the epoch's metrics) at a tenth of the size, and the
working tree that every device call carries stays small (docs/device.md). Bars written to a file
now refresh every 30 s at most (catdog.progress_bar), so new logs start small; this trims the
rest, and the logs written before.

    python -m catdog.console_log results/cpu/run.log     # rewrites it in place (scripts/cpu-run.sh does)
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from catdog.atomic import save_text

# "desc:  42%|####      | 34/81 [...]": a tqdm bar, named by its description
BAR = re.compile(r"^(?P<desc>.*?):\s+\d+%\|")


def strip_progress(text: str) -> str:
    """`text` with each run of refreshes of one progress bar cut to its last state, the line
    breaks tqdm writes as carriage returns made newlines, and runs of blank lines made one."""
    pieces = [piece.rstrip() for piece in re.split(r"\r\n|\r|\n", text)]
    kept: list[str] = []
    later: str | None = None  # the next non-blank piece, scanning backwards
    for piece in reversed(pieces):
        bar = BAR.match(piece)
        if bar and later is not None and (nxt := BAR.match(later)) and nxt["desc"] == bar["desc"]:
            continue  # refreshed by a later piece
        if piece:
            later = piece
        kept.append(piece)
    kept.reverse()
    out: list[str] = []
    for piece in kept:
        if piece or (out and out[-1]):
            out.append(piece)
    return "\n".join(out).strip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Cut the progress-bar refreshes out of console "
                                                 "logs, in place.")
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for log in args.logs:
        before = log.read_bytes()
        after = strip_progress(before.decode("utf-8", errors="replace"))
        save_text(log, after)  # atomic: the log is whole, before or after
        print(f"{log}: {len(before):,} -> {log.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
