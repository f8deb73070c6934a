"""Moved to :mod:`dynatrain._format`; kept so that older imports keep working."""

from __future__ import annotations

from dynatrain._format import *  # noqa: F403
from dynatrain._format import __all__  # noqa: F401
