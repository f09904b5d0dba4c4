"""Progress bars that appear only where a person watches: on a terminal, never in a log file or a pipe."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def show_progress(quiet: bool = False) -> bool:
    """Whether a progress bar should be drawn: not quiet, and stderr (where tqdm draws) is a terminal."""
    if quiet:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(iterable: Iterable | None = None, total: int | None = None, desc: str | None = None,
                 quiet: bool = False, **kwargs: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``), disabled off a terminal or when quiet."""
    return tqdm(iterable, total=total, desc=desc, disable=not show_progress(quiet), leave=False,
                dynamic_ncols=True, **kwargs)


__all__ = ["progress_bar", "show_progress"]
