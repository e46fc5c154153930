"""Wall time of each pipeline stage, kept as a DVC metric: metrics/time/<stage>.json.

Each stage starts a StageClock when it knows its name (e.g. "distill-kd") and saves it as its
last step, so `dvc metrics show` / `dvc exp show` list the seconds next to the accuracies and
the report can sum the stages each method needs. A resumed training stage reports the seconds
of the run that finished it; models/<method>.json keeps train_seconds summed over all runs.
"""

from __future__ import annotations

import time
from pathlib import Path

from catdog.atomic import save_json

TIME_DIR = Path("metrics/time")


def time_file(stage: str) -> Path:
    return TIME_DIR / f"{stage}.json"


class StageClock:
    """Started on creation; `save()` writes {"seconds": s} for the stage and returns s."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.start = time.perf_counter()

    def save(self) -> float:
        seconds = round(time.perf_counter() - self.start, 2)
        save_json(time_file(self.stage), {"seconds": seconds})
        return seconds
