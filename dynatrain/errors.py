"""Exceptions raised by dynatrain.

They are plain exceptions, independent of the command line: the CLI maps every
:class:`DynatrainError` to exit code 2 and prints its message on one line.
"""

from __future__ import annotations

__all__ = ["ArchiveError", "ArchiveExistsError", "DynatrainError", "InputError", "OptionError"]


class DynatrainError(Exception):
    """Base class of every error dynatrain raises on purpose."""


class ArchiveError(DynatrainError):
    """An archive cannot be read, or does not follow the format.

    Parameters
    ----------
    path : str
        The archive, as the user named it.
    problem : str
        What is wrong, in a phrase (no trailing full stop).
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InputError(DynatrainError, ValueError):
    """The data or settings cannot be analysed (too short, non-finite, bad option).

    It is also a ``ValueError``, so library callers may catch either.
    """


class OptionError(InputError, TypeError):
    """An option that does not exist was given to a Python entry point.

    Also a ``TypeError``, as Python raises for an unexpected keyword argument.
    """


class ArchiveExistsError(InputError):
    """A writer was asked to create an archive that exists (mode ``"w-"``)."""
