"""Average ranks along the last axis, vectorised (private; scipy.stats is slow to import)."""

from __future__ import annotations

import numpy as np

__all__ = ["average_ranks"]


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing the mean of their ranks.

    Same as ``scipy.stats.rankdata(x, method="average", axis=-1)`` for finite
    float input.
    """
    n = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    ordered = np.take_along_axis(x, order, axis=-1)
    position = np.arange(n)
    starts = np.ones(x.shape, dtype=bool)  # position opens a run of equal values
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    ends = np.ones(x.shape, dtype=bool)  # position closes a run
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[..., ::-1], axis=-1)[..., ::-1]
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=-1)
    return ranks
