r"""Text and number formats shared by every output: tables, reports, figures, exports, CLI.

Numbers for people go through :func:`format_number` (and :func:`format_interval`,
:func:`p_value_text`), so a measure reads the same in the terminal panel, the batch
tables, the Markdown, the HTML report and the figures. Machine formats (JSON, CSV)
write full precision instead.

Strings from the data (paths, run ids, metadata, layer and metric names, error
messages quoting them) may hold anything an archive can store. Before they reach a
terminal, a Markdown or CSV cell, or a figure, :func:`printable` makes their control
characters visible instead of letting them act: an ``ESC [ 2 J`` in a run id would
clear the screen, a ``\r`` would overwrite the line it is on, and an SVG with a
control character in it is not valid XML.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence

__all__ = [
    "DECIMALS",
    "cell_text",
    "did_you_mean",
    "format_interval",
    "format_number",
    "p_value_text",
    "printable",
    "spreadsheet_safe",
]

#: Decimals of a measure shown to people (integration, metastability, rho, ...).
DECIMALS = 3
#: Beyond this magnitude, or below one unit of the last decimal shown, fixed decimals
#: would be unreadable or read 0: such values are written in scientific notation.
_LARGEST_FIXED = 1e6

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


def format_number(value: object, decimals: int | None = DECIMALS, *, missing: str = "-") -> str:
    """A number for people: the one rule of every table, report, figure and message.

    * ``None`` and NaN: ``missing``;
    * integers (Python or NumPy): as they are (``101``);
    * ``decimals=None`` (epochs, leads, settings): the shortest form, ``53`` or ``0.5``;
    * otherwise ``decimals`` fixed decimals with trailing zeros kept, so the values of a
      column line up (``0.180``, ``1.200``, ``12.345``); a value that would read as 0 at
      that many decimals, or one of a million or more, in scientific notation with as many
      significant digits (``4.20e-05``); ``-0.000`` is written ``0.000``.

    Parameters
    ----------
    value : number or None
    decimals : int or None
    missing : str
        Text for a missing value.

    Examples
    --------
    >>> format_number(0.18), format_number(1.2), format_number(0.1808)
    ('0.180', '1.200', '0.181')
    >>> format_number(53.0, None), format_number(None), format_number(4.2e-05)
    ('53', '-', '4.20e-05')
    """
    if value is None:
        return missing
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if not isinstance(value, numbers.Real):
        return printable(value)
    number = float(value)
    if math.isnan(number):
        return missing
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if decimals is None:
        return f"{number:g}" if number != 0 else "0"
    size = abs(number)
    if size >= _LARGEST_FIXED or (0 < size < 0.5 * 10.0**-decimals):
        return f"{number:.{max(decimals - 1, 1)}e}"
    text = f"{number:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def format_interval(interval: Sequence[object] | None, decimals: int | None = DECIMALS) -> str:
    """``"[0.510, 1.200]"`` (:func:`format_number` for each end); ``"-"`` if missing."""
    if not interval or any(end is None for end in interval):
        return "-"
    low, high = interval
    return f"[{format_number(low, decimals)}, {format_number(high, decimals)}]"


def cell_text(value: object, decimals: int | None = DECIMALS) -> str:
    """A table cell for people: a number by :func:`format_number`, text by :func:`printable`."""
    if isinstance(value, str):
        return printable(value)
    return format_number(value, decimals)


def did_you_mean(name: str, choices: Sequence[str], n: int = 3) -> str:
    """``"; did you mean 'dataset', 'data_seed'?"`` for the choices close to ``name``.

    ``""`` when none is close (:func:`difflib.get_close_matches`, cutoff 0.6): the start
    of every "unknown name" message, for options, metadata keys and columns alike.
    """
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""
