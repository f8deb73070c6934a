"""Shared matplotlib set-up for every dynatrain figure.

Import this module only when plotting: it imports matplotlib (with the
non-interactive Agg back end) and never touches global ``rcParams``; figures get
their style from :func:`new_figure` and :func:`plot_style` instead.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from typing import Any, cast

import matplotlib

matplotlib.use("Agg", force=False)  # no display needed; a no-op if a back end is already set

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from dynatrain._format import printable
from dynatrain.report.outputs import write_file

__all__ = [
    "OKABE_ITO",
    "PLOT_FORMATS",
    "color_cycle",
    "new_figure",
    "plot_style",
    "save_figure",
]

#: Output formats of ``--plot-format``.
PLOT_FORMATS = ("png", "svg", "pdf")

#: Okabe & Ito's colour-blind-safe palette (black left out: it is for text and marks).
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
)

_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    # SVG element ids are salted with a random UUID unless a salt is set: fix it, so
    # the same figure gives the same bytes.
    "svg.hashsalt": "dynatrain",
}


def plain_text(text: str) -> str:
    r"""``text`` for a matplotlib label or title, drawn as it is.

    Matplotlib reads text between two ``$`` as mathtext (``$\oops$`` fails the whole
    figure); an escaped ``\$`` is drawn as a dollar sign. Control characters are
    written as escapes (:func:`~dynatrain._format.printable`): one in an SVG is
    not valid XML. Run ids, layer, metric and group names come from archives: every one
    goes through here before it is drawn.
    """
    return printable(text).replace("$", r"\$")


def color_cycle(n: int) -> list[str]:
    """``n`` colours from the Okabe-Ito palette, repeating if needed."""
    return [OKABE_ITO[i % len(OKABE_ITO)] for i in range(n)]


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """Apply dynatrain's style to everything drawn inside the ``with`` block.

    Legends, titles and colour bars read ``rcParams`` when they are created, not
    when their figure is, so draw inside this context as well as creating the
    figure with :func:`new_figure`. Global ``rcParams`` are restored on exit.
    """
    with plt.rc_context(cast(Any, _STYLE)):  # typed as a dict of known keys only
        yield


def new_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: Sequence[float] = (7.0, 4.0), **kwargs: Any
) -> tuple[Figure, Any]:
    """A figure and its axes with dynatrain's style (local to this figure).

    Returns what ``plt.subplots`` returns. The style applies while the figure and
    axes are created (draw inside :func:`plot_style` for the rest); global
    ``rcParams`` are left as they were.
    """
    with plot_style():
        return plt.subplots(nrows, ncols, figsize=tuple(figsize), **kwargs)


def save_figure(
    figure: Figure, directory: str | os.PathLike[str], name: str, fmt: str | None = None
) -> str:
    """Save ``figure`` as ``<directory>/<name>.<fmt>``, close it, return the path.

    ``fmt=None``: ``name`` is the whole file name, and its suffix the format.

    The file is written as every output is (:func:`~dynatrain.report.outputs.write_file`):
    whatever is at that name, a link included, is replaced, never written through.
    """
    if fmt is None:
        name, _, fmt = name.rpartition(".")
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"invalid plot format {fmt!r}: use one of {', '.join(PLOT_FORMATS)}")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(os.fspath(directory), f"{name}.{fmt}")
    image = io.BytesIO()
    try:
        with plot_style():
            # Fixed metadata: the same figure gives the same bytes (no creation date).
            metadata = {
                "png": {"Software": None},
                "svg": {"Date": None},
                "pdf": {"CreationDate": None},
            }[fmt]
            figure.savefig(image, format=fmt, metadata=metadata)
    finally:
        plt.close(figure)
    return write_file(path, image.getvalue())
