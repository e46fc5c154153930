"""Progress bars written to a file refresh rarely; on a terminal they keep tqdm's pace."""
from __future__ import annotations

import io
import itertools

import pytest
import tqdm.std

from catdog.progress_bar import LOG_INTERVAL, bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> itertools.count:
    """tqdm's clock, one second per reading; no monitor thread to refresh behind our back."""
    seconds = itertools.count()
    monkeypatch.setattr(tqdm.std, "time", lambda: float(next(seconds)))
    monkeypatch.setattr(tqdm.std.tqdm, "monitor_interval", 0)
    return seconds


def refreshes(stream: io.StringIO, steps: int) -> int:
    for _ in bar(range(steps), file=stream, desc="train", miniters=1):
        pass
    return stream.getvalue().count("\r")


def test_a_bar_in_a_log_refreshes_every_log_interval(clock: itertools.count) -> None:
    steps = 200  # 200 steps at about two clock readings (seconds) each: minutes of "training"
    in_log = refreshes(io.StringIO(), steps)
    on_terminal = refreshes(Terminal(), steps)
    assert on_terminal >= steps  # tqdm's own pace: every step, a second apart
    assert 2 <= in_log <= 2 + 2 * steps / LOG_INTERVAL  # the first, one per interval, the last
    assert in_log < on_terminal / 5


def test_the_last_state_reaches_the_log(clock: itertools.count) -> None:
    stream = io.StringIO()
    for _ in bar(range(7), file=stream, desc="teacher"):
        pass
    last = stream.getvalue().rsplit("\r", 1)[1]  # what a reader of the log sees at the end
    assert "100%" in last and "7/7" in last


def test_an_explicit_interval_wins(clock: itertools.count) -> None:
    made = bar(range(3), file=io.StringIO(), mininterval=0.5)
    assert made.mininterval == 0.5
    assert made.maxinterval == LOG_INTERVAL
    made.close()
