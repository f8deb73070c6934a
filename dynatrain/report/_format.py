r"""Text and number formats shared by the tables, the figures, the exports and the CLI.

Strings from the data (paths, run ids, metadata, layer and metric names, error
messages quoting them) may hold anything an archive can store. Before they reach a
terminal, a Markdown or CSV cell, or a figure, :func:`printable` makes their control
characters visible instead of letting them act: an ``ESC [ 2 J`` in a run id would
clear the screen, a ``\r`` would overwrite the line it is on, and an SVG with a
control character in it is not valid XML.
"""

from __future__ import annotations

import re

__all__ = ["p_value_text", "printable", "spreadsheet_safe"]

#: Characters that act on a terminal or a document instead of being shown: the C0 and
#: C1 control characters and DEL (ESC, CSI, CR, BEL, ...), the line and paragraph
#: separators, and the bidirectional overrides and isolates that reorder what follows
#: them on screen.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV
#: injection"): = + - @, and tab and carriage return, which some strip first.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A plain decimal number, which a spreadsheet reads as that number, never a formula.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    r"""``str(text)`` with every control character written as an escape, on one line.

    ``"run\x1b[2J"`` gives ``"run\\x1b[2J"`` (the characters backslash, x, 1, b),
    ``"a\nb"`` gives ``"a\\nb"``; text without control characters is returned as it is.
    """
    text = str(text)
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) else text


def spreadsheet_safe(text: str) -> str:
    """A CSV text cell that a spreadsheet shows as text, never runs as a formula.

    A text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
    leading ``'`` (what OWASP recommends, and what spreadsheets read as "text"), unless
    it is a plain number such as ``-0.5``; control characters are escaped
    (:func:`printable`), so each row stays on one line. Numbers written as numbers are
    not text and never pass through here.
    """
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        text = "'" + text
    return printable(text)


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
