"""Where the commands write: checked before any analysis runs.

dynatrain never modifies an archive it reads, so an output path (``--groups-json
FILE``, ``batch -o DIR``, ``analyze --plot DIR``, ``plot --out DIR``) is refused when
writing it would touch one of the input archives: when it *is* an input, lies inside
one (a Zarr store is a directory) or, for a folder, when one of the files the command
writes there is, or holds, an input. Paths are compared after resolving links, and
files also by identity, so neither a symbolic nor a hard link gets around the check.

A ``file://`` URL among the inputs is the local path it names, and is checked as one.

An output that cannot be written (a parent that is a file, a folder without write
permission) is refused at the same time, so a batch does not analyse every run only
to fail at the end. :func:`writing` then turns an ``OSError`` of the actual write into
the same kind of one-line error, naming the path.

Every file is written by :func:`write_file`: into a new temporary file in the same
folder, then renamed over the name. Whatever was at the name is replaced, never
written through: a symbolic link planted at ``figures/signals.png`` is replaced by the
figure, and the file it pointed to is left as it was (so is a file hard-linked to the
old output). A reader never sees a half-written file either.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dynatrain.archive.storage import local_path
from dynatrain.errors import InputError

__all__ = [
    "check_output_dir",
    "check_output_file",
    "check_plot_dir",
    "is_inside",
    "local_path",
    "run_stem",
    "write_file",
    "writing",
]

_NEVER = "dynatrain never writes into what it reads"


def check_output_file(
    path: str | os.PathLike[str], *, inputs: Iterable[str], option: str, kind: str = "archive"
) -> None:
    """Refuse an output file that is an input archive or cannot be written.

    Parameters
    ----------
    path : str or path-like
        The file to be written (replaced if it exists). Its folder must exist.
    inputs : iterable of str
        The archives read (paths; URLs such as ``s3://...`` are skipped).
    option : str
        The option that named ``path``, for the message (``"--groups-json"``).
    kind : str
        What the inputs are, for the message.

    Raises
    ------
    InputError
        One line naming ``path`` and the problem.
    """
    path = os.fspath(path)
    _refuse_inputs(path, [path], _local(inputs), option, kind, whole=False)
    if os.path.isdir(path):
        raise InputError(f"{path}: {option} needs a file, and this is a directory")
    folder = os.path.dirname(os.path.normpath(path)) or os.curdir
    if not os.path.isdir(folder):
        what = "is not a directory" if os.path.lexists(folder) else "does not exist"
        raise InputError(f"{path}: cannot write: the folder {folder} {what}")
    target = path if os.path.exists(path) else folder
    if not os.access(target, os.W_OK):
        raise InputError(f"{path}: cannot write: permission denied on {target}")


def check_output_dir(
    directory: str | os.PathLike[str],
    *,
    inputs: Iterable[str],
    option: str,
    entries: Sequence[str] | None = None,
    kind: str = "archive",
) -> None:
    """Refuse an output folder that would touch an input archive or cannot be created.

    Parameters
    ----------
    directory : str or path-like
        The folder to write into, created (with its parents) if missing.
    inputs : iterable of str
        The archives read (paths; URLs such as ``s3://...`` are skipped).
    option : str
        The option that named ``directory``, for the message (``"-o"``, ``"--plot"``).
    entries : sequence of str, optional
        The names the command writes in ``directory``: files, and subfolders it writes
        into, named with a trailing ``/`` (``"runs/"``). An input may sit in
        ``directory`` beside them. ``None``: the command may write anywhere in
        ``directory``, so no input may lie in it. A file entry that exists as a
        folder is refused too (it could not be replaced).
    kind : str
        What the inputs are, for the message.

    Raises
    ------
    InputError
        One line naming ``directory`` and the problem.
    """
    directory = os.fspath(directory)
    inputs = _local(inputs)
    _refuse_inputs(directory, [directory], inputs, option, kind, whole=entries is None, folder=True)
    if entries:
        targets = [os.path.join(directory, entry) for entry in entries]
        _refuse_inputs(directory, targets, inputs, option, kind, whole=True)
    _check_creatable(directory)
    for entry in entries or ():
        path = os.path.join(directory, entry)
        if not entry.endswith("/") and os.path.isdir(path):
            raise InputError(f"{path}: {option} would write this file, and it is a directory")


def check_plot_dir(
    directory: str | os.PathLike[str],
    *,
    inputs: Iterable[str],
    fmt: str,
    option: str,
    kind: str = "archive",
    result: Mapping[str, Any] | None = None,
) -> None:
    """:func:`check_output_dir` for the figures of one analysis (``<run>-<figure>.<fmt>``).

    ``result`` names the run (its id, else its archive's file name); without it, the
    first input does (the figures of an archive without a run id).

    Imports matplotlib (through :mod:`dynatrain.report.plots`): call it only to plot.
    """
    from dynatrain.report.plots import figure_names

    inputs = list(inputs)
    named = result if result is not None else {"run": inputs[0] if inputs else "run"}
    entries = list(figure_names(named, fmt).values())
    check_output_dir(directory, inputs=inputs, option=option, entries=entries, kind=kind)


#: Longest file-name stem derived from a run id.
MAX_STEM = 100


def run_stem(result: Mapping[str, Any]) -> str:
    """A safe file-name stem for a run: its ``run_id``, else its archive's name without suffix.

    Anything but ASCII letters, digits, ``.``, ``_`` and ``-`` becomes ``_``; leading
    and trailing dots, underscores and dashes go, so ``../../x`` gives ``x`` and
    ``/etc/passwd`` gives ``etc_passwd``; at most 100 characters; ``run`` if nothing is left.
    """
    file_name = os.path.basename(str(result.get("run", "")).rstrip("/\\"))
    name = result.get("run_id") or os.path.splitext(file_name)[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-")[:MAX_STEM] or "run"


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into an :class:`InputError` naming the path.

    The path is the one the system names (a file inside ``path``, say) when it names
    one, else ``path``.
    """
    try:
        yield
    except OSError as exc:
        where = os.fsdecode(exc.filename) if exc.filename else os.fspath(path)
        raise InputError(f"{where}: cannot write: {exc.strerror or exc}") from exc


#: Flags of the temporary file :func:`write_file` creates: a new file, never a link.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_NEW_FILE |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def write_file(path: str | os.PathLike[str], content: str | bytes) -> str:
    """Write ``content`` (text as UTF-8) to ``path`` without ever writing through a link.

    The bytes go to a new file in the same folder (created exclusively, not following
    links), which is then renamed over ``path``: whatever was there, a symbolic link
    or a file with other hard links included, is replaced, and what it pointed to is
    left alone. The folder must exist. Wrap the call in :func:`writing` for a
    one-line error.

    Returns
    -------
    str
        ``path``.
    """
    path = os.fspath(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    folder, name = os.path.split(path)
    for _ in range(100):  # a name taken by chance is drawn again
        temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, _NEW_FILE, 0o666)  # the umask applies
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(f"no free temporary name next to {path}")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


# -- helpers ---------------------------------------------------------------------------------------


def _local(inputs: Iterable[str]) -> list[str]:
    """The inputs that are local paths, ``file://`` URLs as the paths they name."""
    paths = (local_path(path) for path in inputs)
    return [path for path in paths if path is not None]


def is_inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both already resolved)."""
    return os.path.commonpath([path, folder]) == folder


def _same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one existing file (a hard link is one file too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # either is missing or unreadable: not known to be one
        return False


def _refuse_inputs(
    output: str,
    targets: Sequence[str],
    inputs: Sequence[str],
    option: str,
    kind: str,
    *,
    whole: bool,
    folder: bool = False,
) -> None:
    """Raise if writing any of ``targets`` could touch an input.

    A target touches an input when it is the input or lies inside it; with ``whole``,
    also when the input lies inside the target (the command writes anywhere in it).
    ``folder``: the targets are folders written into (for the message).
    """
    for source in inputs:
        resolved_source = os.path.realpath(source)
        for target in targets:
            resolved = os.path.realpath(target)
            if resolved == resolved_source or _same_file(target, source):
                what = f"{'into' if folder else 'over'} the input {kind} {source}"
            elif is_inside(resolved, resolved_source):
                what = f"inside the input {kind} {source}"
            elif whole and is_inside(resolved_source, resolved):
                what = f"into {target}, which holds the input {kind} {source}"
            else:
                continue
            raise InputError(f"{output}: {option} would write {what} ({_NEVER})")


def _check_creatable(directory: str) -> None:
    """Raise unless ``directory`` is a writable folder or can be created as one."""
    if os.path.lexists(directory):
        if not os.path.isdir(directory):
            raise InputError(f"{directory}: exists and is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise InputError(f"{directory}: cannot write: permission denied")
        return
    # The nearest existing ancestor, named as the user spelt it ("runs/a" -> "runs").
    ancestor = os.path.dirname(os.path.normpath(directory)) or os.curdir
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor) or os.curdir
    if not os.path.isdir(ancestor):
        raise InputError(f"{directory}: cannot create the folder: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{directory}: cannot create the folder: permission denied on {ancestor}")
