"""Every progress bar of the project, made in one place.

On a terminal a bar redraws itself in place and tqdm's defaults suit it. Written to a file (a
queued `dvc exp run`, `nohup ... > log`, CI) each refresh is kept: a 60-minute training at
tqdm's 0.1 s refresh leaves megabytes of bars in the log. Off a terminal a bar therefore
refreshes at most every LOG_INTERVAL seconds, enough to follow a log with `tail -f`.
"""
from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm

# seconds between two refreshes of a bar written to a file, not a terminal
LOG_INTERVAL = 30.0


def is_terminal(stream: IO) -> bool:
    """True when `stream` is an interactive terminal (a closed or odd stream counts as not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def bar(iterable: Any = None, *, file: IO | None = None, **kwargs: Any) -> tqdm:
    """tqdm on stderr (or `file`), refreshing every LOG_INTERVAL s when that is not a terminal.

    kwargs go to tqdm; an explicit mininterval or maxinterval wins over the log interval.
    """
    stream = sys.stderr if file is None else file
    if not is_terminal(stream):
        kwargs.setdefault("mininterval", LOG_INTERVAL)
        # tqdm's monitor thread forces a refresh every maxinterval (10 s by default)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL, kwargs["mininterval"]))
    return tqdm(iterable, file=stream, **kwargs)
