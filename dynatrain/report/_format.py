"""Number formats shared by the tables, the figures and the reports."""

from __future__ import annotations

__all__ = ["p_value_text"]


def p_value_text(p_value: float | None, n_surrogates: int | None) -> str:
    """``"p = 0.035"``, or ``"p ≤ 0.005"`` at the smallest p the surrogates can give.

    With N surrogates, a value more extreme than every surrogate gets
    p = 1 / (N + 1): the test cannot say how much smaller the true p is, so it
    is shown as a bound.

    Parameters
    ----------
    p_value : float or None
        The surrogate p-value; None gives ``""``.
    n_surrogates : int or None
        Surrogates behind it (``settings.surrogates``); None: always ``=``.
    """
    if p_value is None:
        return ""
    if n_surrogates and p_value <= 1.0 / (n_surrogates + 1) * (1 + 1e-9):
        return f"p ≤ {p_value:.3g}"
    return f"p = {p_value:.3g}"
