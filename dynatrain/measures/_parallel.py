"""Chunked loops spread over a few threads, with the same bits as one thread.

The costly measures (the surrogate nulls, the windows, the finite-size calibration)
loop over chunks of about 0.5 MiB whose results do not depend on one another.  Inside
:func:`threads`, :func:`ordered_map` computes those chunks on a pool of threads (NumPy
releases the GIL in its loops and FFTs), while the caller keeps drawing the random
numbers of the next chunks in order and takes the results in order: the draws, the
sums and therefore every output are the same as with one thread, whatever the number
of threads and however the chunks finish.

A chunk computed on a pool thread runs its own inner loops on that thread (the pool is
seen by the thread that entered :func:`threads` only): no nested submission, no
deadlock, no more threads than asked for.

Inside :func:`reporting`, the surrogate nulls say how many surrogates they have done
(:func:`report`, called in the thread that entered the block, between chunks): a long
analysis can show where it is.  Reporting changes no result.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map", "report", "reporting", "threads"]

#: ``callback(stage, done, total)`` of :func:`reporting`.
ProgressCallback = Callable[[str, int, int], None]

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

#: The pool of the innermost :func:`threads` block of this thread, with its size.
_POOL: contextvars.ContextVar[tuple[ThreadPoolExecutor, int] | None] = contextvars.ContextVar(
    "dynatrain_measures_pool", default=None
)

#: The progress callback of the innermost :func:`reporting` block of this thread.
_PROGRESS: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar(
    "dynatrain_measures_progress", default=None
)


@contextlib.contextmanager
def reporting(callback: ProgressCallback | None) -> Iterator[None]:
    """Tell `callback` how far the surrogate nulls called in this block are.

    Parameters
    ----------
    callback : callable or None
        ``callback(stage, done, total)``, called as a null starts (``done`` 0) and
        after each chunk of its surrogates:
        `stage` is "shuffle null" (integration), "phase null" (synchrony and
        metastability) or "convergence null"; `done` of at most `total` surrogates
        are computed (the convergence null may stop before `total`: its last call
        then has the number it drew).  None reports nothing (also within an
        enclosing block).  Called in the thread that entered the block; what it
        raises ends the computation.
    """
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def report(stage: str, done: int, total: int) -> None:
    """Pass ``(stage, done, total)`` to the callback of :func:`reporting`, if any."""
    callback = _PROGRESS.get()
    if callback is not None:
        callback(stage, done, total)


@contextlib.contextmanager
def threads(n_threads: int) -> Iterator[None]:
    """Compute the chunks of the measures called in this block on `n_threads` threads.

    Parameters
    ----------
    n_threads : int
        Threads that compute chunks; 1 (or less) computes them in the calling thread,
        as outside any block (also within an enclosing block of more threads).

    Notes
    -----
    Results are bit-for-bit those of one thread (see the module notes); only time
    changes.  The pool is closed, its running chunks finished, when the block ends.
    """
    if n_threads <= 1:  # also inside another block: one thread means one
        token = _POOL.set(None)
        try:
            yield
        finally:
            _POOL.reset(token)
        return
    with ThreadPoolExecutor(n_threads, thread_name_prefix="dynatrain-measures") as pool:
        token = _POOL.set((pool, n_threads))
        try:
            yield
        finally:
            _POOL.reset(token)


def ordered_map(function: Callable[[_Item], _Result], items: Iterable[_Item]) -> Iterator[_Result]:
    """``function(item)`` for each item, in the order of `items`.

    `items` is iterated in the calling thread, one item ahead of each result taken
    (so random draws made while producing the items happen in order).  In a
    :func:`threads` block the calls run on its pool, at most one more than its threads
    at a time, so memory holds a few chunks, not all; elsewhere they run here, one after
    the other.  A consumer that stops early leaves the chunks not yet started undone.
    """
    state = _POOL.get()
    if state is None:
        for item in items:
            yield function(item)
        return
    pool, n_threads = state
    pending: deque[Future[_Result]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) > n_threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
