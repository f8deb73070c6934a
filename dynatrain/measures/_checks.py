"""Argument checks shared by the measures (private).

Every public measure checks its arguments on entry and raises a plain
:class:`ValueError` whose message names the offending value and, for arrays,
the shape.  Arrays are converted to float64 here, so that HDF5/Zarr read-only
arrays, float16/32 and integer input are all accepted.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_choice",
    "check_fraction",
    "check_generator",
    "check_int",
    "check_layers",
    "normalize_axis",
]


def as_float_array(
    x: Any, name: str = "x", *, min_ndim: int = 1, allow_nan: bool = False
) -> np.ndarray:
    """Return `x` as a float64 array, refusing non-real or non-finite input.

    Never copies float64 input and never writes to the result, so read-only
    arrays are fine.  With ``allow_nan=True`` NaN passes but ±inf does not.
    """
    try:
        array = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} must be an array of real numbers: {exc}") from None
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must hold real numbers, got dtype {array.dtype} with shape {array.shape}"
        )
    if array.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {array.shape}"
        )
    array = array.astype(np.float64, copy=False)
    if array.size:
        if allow_nan:
            if np.isinf(array).any():
                raise ValueError(f"{name} contains infinite values (shape {array.shape})")
        elif not np.isfinite(array).all():
            n_bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise ValueError(
                f"{name} contains {n_bad} non-finite value(s) (NaN or inf) "
                f"in an array of shape {array.shape}"
            )
    return array


def normalize_axis(axis: Any, ndim: int, shape: tuple[int, ...]) -> int:
    """Return `axis` as a non-negative integer valid for an array of `shape`."""
    try:
        axis = operator.index(axis)
    except TypeError:
        raise ValueError(f"axis must be an integer, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(f"invalid axis={axis} for an array of shape {shape}")
    return axis % ndim


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return `value` as an int (bools refused), at least `minimum` if given."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def check_fraction(value: Any, name: str, *, low: float, high: float) -> float:
    """Return `value` as a float in the closed interval [`low`, `high`]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:  # also refuses NaN
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    return number


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return `value` if it is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_generator(rng: Any) -> np.random.Generator:
    """Return `rng` if it is a :class:`numpy.random.Generator`.

    A seed or ``None`` is a programming error here (randomness must be passed
    explicitly), hence :class:`TypeError` rather than :class:`ValueError`.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def check_layers(x: np.ndarray, *, min_points: int = 1) -> None:
    """Check that `x` is shaped ``(..., n_layers, n_points)`` with >= 2 layers."""
    if x.ndim < 2:
        raise ValueError(f"x must be shaped (..., n_layers, n_points), got shape {x.shape}")
    if x.shape[-2] < 2:
        raise ValueError(
            f"phase synchrony needs at least 2 layers (axis -2), got {x.shape[-2]} "
            f"in x.shape={x.shape}"
        )
    if x.shape[-1] < min_points:
        raise ValueError(
            f"need at least {min_points} points (axis -1), got {x.shape[-1]} in x.shape={x.shape}"
        )
