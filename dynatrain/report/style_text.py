"""What the reports say about the training style, worded by its surrogate test.

The label is "coupled" or "antagonistic" only when the Spearman rho of the windowed
integration and metastability is both strong (``|rho| >= settings.style_threshold``)
and significant against surrogates with the same spectra (p at or below
``settings.significance_level``); otherwise "independent".  Every report shows the
label with its rho and p, says when rho is strong but surrogates correlate as strongly,
and says when the label was not tested (``--surrogates 0``, or a result saved before
the test existed: the label then comes from the threshold alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynatrain._format import format_number, p_value_text
from dynatrain.defaults import STYLE_THRESHOLD
from dynatrain.report.convergence_text import significance_level

__all__ = ["style_headline", "style_text", "style_verdict"]


def style_verdict(style: Mapping[str, Any], settings: Mapping[str, Any] | None) -> str:
    """Why the style has its label, in a few words (after rho and p).

    ``"untested (no surrogates)"``, ``"surrogates correlate as strongly"`` (rho strong,
    p above the level: hence "independent"), or ``""`` when the label says it all.
    """
    p = style.get("p")
    if p is None:
        return "untested (no surrogates)"
    rho = style.get("spearman")
    threshold = (settings or {}).get("style_threshold")
    threshold = STYLE_THRESHOLD if threshold is None else float(threshold)
    if rho is not None and abs(rho) >= threshold and p > significance_level(settings):
        return "surrogates correlate as strongly"
    return ""


def style_text(
    style: Mapping[str, Any] | None, settings: Mapping[str, Any] | None
) -> tuple[str, str]:
    """``(value, uncertainty)`` of the "training style" row of a table.

    >>> style_text({"label": "independent", "spearman": 0.41, "p": 0.3}, {"surrogates": 199})
    ('independent', 'rho = 0.410, p = 0.3, surrogates correlate as strongly')
    """
    if style is None:
        return "-", ""
    parts = [] if style.get("spearman") is None else [f"rho = {format_number(style['spearman'])}"]
    p_text = p_value_text(style.get("p"), (settings or {}).get("surrogates"))
    parts += [part for part in (p_text, style_verdict(style, settings)) if part]
    return str(style["label"]), ", ".join(parts)


def style_headline(style: Mapping[str, Any] | None, settings: Mapping[str, Any] | None) -> str:
    """One line for a figure: ``"style coupled (Spearman ρ = 0.520, p = 0.01)"``."""  # noqa: RUF002
    if style is None:
        return "no training style (too few windows)"
    _, detail = style_text(style, settings)
    detail = detail.replace("rho =", "Spearman ρ =")  # noqa: RUF001
    return f"style {style['label']}" + (f" ({detail})" if detail else "")
