"""Wall time of each pipeline stage, a cached output of it: metrics/time/<stage>.json.

Each stage starts a StageClock when it knows its name (e.g. "distill-kd") and saves it as its
last step, so the report can sum the stages each method needs (for experiments, read back by
catdog.experiments; DVC's metrics table keeps to the comparison). A training stage resumed after an
interruption adds the training seconds its earlier runs spent (`carried`), so the figure is
what the stage cost in all, less the start-up of the runs that were cut.
"""

from __future__ import annotations

import time
from pathlib import Path

from catdog.atomic import save_json

TIME_DIR = Path("metrics/time")


def time_file(stage: str) -> Path:
    return TIME_DIR / f"{stage}.json"


class StageClock:
    """Started on creation; `save()` writes {"seconds": s} for the stage and returns s, where s
    is the wall time since creation plus `carried` seconds done by earlier runs."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.start = time.perf_counter()

    def save(self, carried: float = 0.0) -> float:
        seconds = round(time.perf_counter() - self.start + carried, 2)
        save_json(time_file(self.stage), {"seconds": seconds})
        return seconds
