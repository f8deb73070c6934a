"""Check that an analysis result read back from JSON can be drawn, before drawing it.

``dynatrain plot RESULT.json`` draws whatever file it is given: one edited by hand,
cut short, or damaged. :func:`check_plot_input` checks every field the figures read
(types, finiteness, the lengths that must agree) and refuses the first bad one with
an :class:`~dynatrain.errors.InputError` naming its path (``timeseries.epoch[3]:
expected a finite number, got 'x'``), so a damaged file gives one line instead of
whatever NumPy or matplotlib would raise in the middle of a figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dynatrain.errors import InputError

__all__ = ["check_plot_input"]

#: Longest quotation of a bad value in a message.
_QUOTE = 40
#: Largest magnitude of a measure written in a figure's text (exponents, order
#: parameters, correlations: a few units at most). A damaged ``1e308`` would be
#: printed with 300 digits and push the axes out of the figure.
_MEASURE_LIMIT = 1e6


def check_plot_input(result: Any, *, detail: bool = True) -> None:
    """Raise :class:`InputError` unless ``result`` has what the five figures draw.

    With ``detail=False``, only what the figures that need no ``detail`` draw
    (``kuramoto``, ``style``, and ``stability`` without an accuracy metric) is checked.

    Parameters
    ----------
    result : object
        :meth:`dynatrain.analysis.AnalysisResult.to_dict` with ``detail=True``, or the
        JSON of ``dynatrain analyze --format json --detail`` read back (lists, ``null``).

    Raises
    ------
    InputError
        One line: the path of the first field that is missing or malformed, and why.
    """
    if not isinstance(result, Mapping) or "timeseries" not in result:
        raise InputError("not a dynatrain analysis result (no 'timeseries')")
    if detail and result.get("detail") is None:
        raise InputError(
            "the analysis result has no 'detail', which the plots need: write it with"
            " `dynatrain analyze RUN --format json --detail`"
        )
    _text(result, "run")
    if result.get("run_id") is not None:
        _text(result, "run_id")
    settings = _mapping(result, "settings")
    for key in ("reduce", "transform"):
        _text(settings, key, where="settings")
    for key in ("window", "vol_window"):
        _integer(settings, key, where="settings", minimum=1)
    _number(settings, "vol_threshold", where="settings", measure=True)
    if "surrogates" in settings:
        _integer(settings, "surrogates", where="settings", minimum=0, null=True)
    for key in ("style_threshold", "significance_level"):  # read by the style's words
        if key in settings:
            _number(settings, key, where="settings", null=True, measure=True)

    layers = _sequence(result, "layers", minimum=1)
    for i, layer in enumerate(layers):
        where = f"layers[{i}]"
        layer = _as_mapping(layer, where)
        _text(layer, "name", where=where)
        _number(layer, "alpha", where=where, null=True, measure=True)
    n_layers = len(layers)
    _integer(result, "layers_analysed", minimum=0)
    excluded_layers = result.get("excluded_layers")
    excluded_layers = [] if excluded_layers is None else excluded_layers
    for i, excluded in enumerate(_as_sequence(excluded_layers, "excluded_layers")):
        excluded = _as_mapping(excluded, f"excluded_layers[{i}]")
        for key in ("name", "reason"):
            _text(excluded, key, where=f"excluded_layers[{i}]")
    _number(result, "integration", null=True, measure=True)
    if "integration_corrected" in result:  # results saved before 0.2 have none
        _number(result, "integration_corrected", null=True, measure=True)
    for key in ("integration_p", "synchrony_p", "metastability_p"):
        if key in result:
            _number(result, key, null=True)
    for key in ("synchrony", "metastability"):
        _number(result, key, measure=True)
    for key in ("integration_ci95", "integration_corrected_ci95"):
        interval = result.get(key)
        if interval is not None:
            _numbers(interval, key, length=2, measure=True)
    style = result.get("style")
    if style is not None:
        style = _as_mapping(style, "style")
        _text(style, "label", where="style")
        _number(style, "spearman", where="style", null=True, measure=True)
        if "p" in style:
            _number(style, "p", where="style", null=True)
    convergence = _mapping(result, "convergence")
    for key in ("epoch", "accuracy_plateau_epoch", "lead_epochs"):
        _number(convergence, key, where="convergence", null=True)
    metric = _text(convergence, "metric", where="convergence", null=True)

    timeseries = _mapping(result, "timeseries")
    epoch = _numbers(_field(timeseries, "epoch", "timeseries"), "timeseries.epoch", minimum=1)
    _increasing(epoch, "timeseries.epoch")
    n_points = len(epoch)
    _numbers(
        _field(timeseries, "kuramoto_r", "timeseries"),
        "timeseries.kuramoto_r",
        length=n_points,
        null=True,
    )
    window_end = _numbers(
        _field(timeseries, "window_end_epoch", "timeseries"), "timeseries.window_end_epoch"
    )
    _increasing(window_end, "timeseries.window_end_epoch")
    for key in ("integration", "metastability", "stability_index", "volatility"):
        _numbers(
            _field(timeseries, key, "timeseries"),
            f"timeseries.{key}",
            length=len(window_end),
            null=True,
        )

    if not detail:
        return
    details = _mapping(result, "detail")
    zscored = _sequence(details, "zscored", where="detail", length=n_layers)
    for i, row in enumerate(zscored):
        _numbers(row, f"detail.zscored[{i}]", length=n_points, null=True)
    dfa = _mapping(details, "dfa", where="detail")
    scales = _numbers(_field(dfa, "scales", "detail.dfa"), "detail.dfa.scales", minimum=1)
    _increasing(scales, "detail.dfa.scales")
    if any(scale <= 0 for scale in scales):
        raise InputError("malformed analysis result: detail.dfa.scales: expected positive scales")
    fluctuations = _sequence(dfa, "fluctuations", where="detail.dfa", length=n_layers)
    for i, row in enumerate(fluctuations):  # F(s) > 0, on a log axis
        values = _numbers(row, f"detail.dfa.fluctuations[{i}]", length=len(scales))
        if any(value <= 0 for value in values):
            raise InputError(
                f"malformed analysis result: detail.dfa.fluctuations[{i}]: expected positive values"
            )
    _numbers(_field(dfa, "intercept", "detail.dfa"), "detail.dfa.intercept", length=n_layers)
    if metric is not None:
        curve = _mapping(details, "metric", where="detail")
        curve_epoch = _numbers(_field(curve, "epoch", "detail.metric"), "detail.metric.epoch")
        _increasing(curve_epoch, "detail.metric.epoch")
        _numbers(
            _field(curve, "values", "detail.metric"),
            "detail.metric.values",
            length=len(curve_epoch),
            null=True,
        )


# -- one field ----------------------------------------------------------------------------------


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE else text[: _QUOTE - 3] + "..."


def _bad(where: str, expected: str, value: Any) -> InputError:
    return InputError(
        f"malformed analysis result: {where}: expected {expected}, got {_quote(value)}"
    )


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _field(data: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in data:
        raise InputError(f"malformed analysis result: {_path(where, key)} is missing")
    return data[key]


def _as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(where, "an object", value)
    return value


def _mapping(data: Mapping[str, Any], key: str, *, where: str = "") -> Mapping[str, Any]:
    return _as_mapping(_field(data, key, where), _path(where, key))


def _sequence(
    data: Mapping[str, Any],
    key: str,
    *,
    where: str = "",
    minimum: int = 0,
    length: int | None = None,
) -> Sequence[Any]:
    value = _field(data, key, where)
    return _as_sequence(value, _path(where, key), minimum=minimum, length=length)


def _as_sequence(
    value: Any, where: str, *, minimum: int = 0, length: int | None = None
) -> Sequence[Any]:
    if hasattr(value, "tolist") and not isinstance(value, Sequence):
        value = value.tolist()  # a NumPy array, from the library
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _bad(where, "a list", value)
    if length is not None and len(value) != length:
        raise InputError(
            f"malformed analysis result: {where}: expected {length} values, got {len(value)}"
        )
    if len(value) < minimum:
        raise InputError(
            f"malformed analysis result: {where}: expected at least {minimum} value(s),"
            f" got {len(value)}"
        )
    return value


def _is_number(value: Any) -> bool:
    """A real, finite number that fits a float (``True`` is not a number here)."""
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str):
        return False
    try:
        return math.isfinite(float(value))
    except (OverflowError, TypeError, ValueError):
        return False


def _check_number(value: Any, where: str, *, null: bool, measure: bool = False) -> None:
    if null and (value is None or (isinstance(value, float) and math.isnan(value))):
        return  # JSON null, or the NaN it stands for in the library's data
    if not _is_number(value):
        raise _bad(where, "a finite number" + (" or null" if null else ""), value)
    if measure and abs(float(value)) > _MEASURE_LIMIT:
        raise _bad(where, f"a measure within +-{_MEASURE_LIMIT:g}", value)


def _number(
    data: Mapping[str, Any],
    key: str,
    *,
    where: str = "",
    null: bool = False,
    measure: bool = False,
) -> None:
    _check_number(_field(data, key, where), _path(where, key), null=null, measure=measure)


def _integer(
    data: Mapping[str, Any], key: str, *, where: str = "", minimum: int, null: bool = False
) -> None:
    value = _field(data, key, where)
    if null and value is None:
        return
    if not _is_number(value) or float(value) != int(value) or int(value) < minimum:
        raise _bad(_path(where, key), f"an integer >= {minimum}", value)


def _text(data: Mapping[str, Any], key: str, *, where: str = "", null: bool = False) -> str | None:
    value = _field(data, key, where)
    if value is None and null:
        return None
    if not isinstance(value, str):
        raise _bad(_path(where, key), "a string" + (" or null" if null else ""), value)
    return value


def _numbers(
    value: Any,
    where: str,
    *,
    length: int | None = None,
    minimum: int = 0,
    null: bool = False,
    measure: bool = False,
) -> list[float]:
    """The list at ``where`` as floats (NaN for null), each checked."""
    values = _as_sequence(value, where, length=length, minimum=minimum)
    for i, item in enumerate(values):
        _check_number(item, f"{where}[{i}]", null=null, measure=measure)
    return [math.nan if item is None else float(item) for item in values]


def _increasing(values: Sequence[float], where: str) -> None:
    """Refuse epochs (or scales) that do not strictly increase, as the format has them."""
    for i in range(1, len(values)):
        if not values[i] > values[i - 1]:
            raise InputError(
                f"malformed analysis result: {where}: not increasing at [{i}]"
                f" ({values[i - 1]:g}, then {values[i]:g})"
            )
