"""What the reports say about the convergence of the stability index, worded by its test.

One place for the words, so the table, the Markdown, the figure and the batch report
never claim more than the surrogate test does: an "early warning" is printed only for a
convergence its time-shuffled surrogates do not reach as early (p below the significance
level), and a convergence without a test says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynatrain.defaults import SIGNIFICANCE_LEVEL
from dynatrain.report._format import p_value_text

__all__ = [
    "converged_text",
    "convergence_headline",
    "convergence_p_text",
    "distinguishable",
    "early_warning_text",
    "relapse_text",
]


def convergence_p_text(convergence: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """``"p = 0.02"`` (``"p ≤ 0.005"`` at the floor), ``""`` without a p-value."""
    drawn = settings.get("convergence_surrogates", settings.get("surrogates"))
    return p_value_text(convergence.get("p"), drawn)


def distinguishable(convergence: Mapping[str, Any]) -> bool | None:
    """Whether the convergence beats its surrogates: None if untested or not converged."""
    p = convergence.get("p")
    if convergence.get("epoch") is None or p is None:
        return None
    return p < SIGNIFICANCE_LEVEL


def relapse_text(convergence: Mapping[str, Any]) -> str:
    """``"relapse 12%"``: windows after the decision back above the threshold."""
    relapse = convergence.get("relapse")
    return "" if relapse is None else f"relapse {relapse:.0%}"


def converged_text(convergence: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[str, str]:
    """``(value, uncertainty)`` of the "DSI converged" row.

    The value is the converged epoch; the uncertainty says when it was decided, its
    p-value and whether the surrogates converge as early, and the relapse.
    """
    epoch = convergence.get("epoch")
    if epoch is None:
        return "not converged", ""
    decided = convergence.get("decided_epoch")
    parts = [] if decided is None else [f"decided {decided:g}"]
    p_text = convergence_p_text(convergence, settings)
    verdict = distinguishable(convergence)
    if verdict is None:
        parts.append("untested (no surrogates)")
    elif verdict:
        parts.append(p_text)
    else:
        parts.append(f"{p_text}, surrogates converge as early")
    if relapse := relapse_text(convergence):
        parts.append(relapse)
    return f"epoch {epoch:g}", ", ".join(parts)


def early_warning_text(convergence: Mapping[str, Any]) -> tuple[str, str]:
    """``(value, qualifier)`` of the "early warning" row, worded by the convergence's test.

    A lead in epochs is shown only when the convergence came before the plateau and is
    distinguishable from its surrogates (or untested, which is said).
    """
    lead = convergence.get("lead_epochs")
    if convergence.get("epoch") is None:
        return "none", "the stability index did not converge"
    if lead is None:
        metric = convergence.get("metric")
        return "-", ("no accuracy metric" if metric is None else f"{metric} did not plateau")
    verdict = distinguishable(convergence)
    if verdict is False:
        return "none", "convergence not distinguishable from its surrogates"
    if lead <= 0:
        when = "at the plateau" if lead == 0 else f"{-lead:g} epochs after the plateau"
        return "none", f"convergence decided {when}"
    unit = "epoch" if lead == 1 else "epochs"
    if verdict is None:
        return f"{lead:g} {unit}", "untested (no surrogates)"
    return f"{lead:g} {unit}", ""


def convergence_headline(
    convergence: Mapping[str, Any], settings: Mapping[str, Any], metric: str | None
) -> str:
    """One line on the convergence and what it says about the accuracy plateau."""
    epoch = convergence.get("epoch")
    if epoch is None:
        missing = "" if metric is not None else "; no accuracy metric to compare with"
        return "the stability index did not converge" + missing
    # .get: a result saved by version 0.1 has no decision and no p-value.
    decided = convergence.get("decided_epoch")
    verdict = distinguishable(convergence)
    about = [] if decided is None else [f"decided at {decided:g}"]
    about.append("untested" if verdict is None else convergence_p_text(convergence, settings))
    head = f"stability index converged at epoch {epoch:g} ({', '.join(about)})"
    if verdict is False:
        return head + ", but its time-shuffled surrogates converge as early: no early warning"
    lead = convergence.get("lead_epochs")
    if lead is None:
        missing = "no accuracy metric" if metric is None else f"{metric} did not plateau"
        return f"{head}; {missing}"
    if lead == 0:
        return f"{head}, when {metric} plateaued"
    unit = "epoch" if abs(lead) == 1 else "epochs"
    when = "before" if lead > 0 else "after"
    return f"{head}, {abs(lead):g} {unit} {when} {metric} plateaued"
