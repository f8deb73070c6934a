"""A transient status line for one long analysis: which null, how many surrogates.

``dynatrain analyze`` of a long run spends seconds to minutes in its surrogate nulls (a
run of 50 layers x 10,000 checkpoints whose convergence is significant draws all 99
convergence surrogates: about two minutes on two cores).  At a terminal, a status line on
stderr says where it is; it appears only once the analysis has run for
:data:`STATUS_AFTER` seconds (a sample run shows none) and is erased when it ends, so the
table printed next is the same as without it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from dynatrain._format import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

__all__ = ["STATUS_AFTER", "analysis_status"]

#: Seconds of analysis before the status line appears.
STATUS_AFTER = 1.0
#: What each null of :func:`dynatrain.measures.reporting` is for, in the status line.
_PURPOSE = {
    "shuffle null": "the integration p-value",
    "phase null": "the synchrony and metastability p-values",
    "convergence null": "the convergence p-value",
}


@contextlib.contextmanager
def analysis_status(
    label: str,
    console: Console | None,
    *,
    after: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress callback for :func:`dynatrain.analysis.analyze` that shows a status line.

    Parameters
    ----------
    label : str
        What is analysed (the run's path), shown first (control characters made
        visible).
    console : rich.console.Console or None
        Where the line goes (stderr at a terminal); None: no line, the callback is None.
    after : float, optional
        Seconds, from entering the block, before a report is shown (default
        :data:`STATUS_AFTER`).
    clock : callable, optional
        Monotonic time in seconds (tests pass their own).

    Yields
    ------
    callable or None
        ``progress(stage, done, total)``, as :func:`dynatrain.measures.reporting` calls it.
    """
    if console is None:
        yield None
        return
    from rich.text import Text

    wait = STATUS_AFTER if after is None else after
    start = clock()
    status: Status | None = None
    name = printable(label)

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal status
        if status is None:
            if clock() - start < wait:
                return
            status = console.status("", spinner="dots")
            status.start()
        purpose = _PURPOSE.get(stage, stage)
        status.update(Text(f"{name}: surrogates for {purpose}, {done} of {total}"))

    try:
        yield progress
    finally:
        if status is not None:
            status.stop()
