"""Checks shared by the hostile-input tests: one line on stderr, exit 2, nothing else."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Longest error line accepted: every name and list in a message is capped.
MAX_LINE = 600


def assert_one_line_error(result: Any, path: Path | str, *phrases: str) -> str:
    """Exit 2, exactly one line on stderr naming ``path`` and every phrase, empty stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout[:500])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert str(path) in line, line
    for phrase in phrases:
        assert phrase in line, line
    assert "Traceback" not in result.stderr
    assert "internal error" not in line, line
    assert len(line) <= MAX_LINE, len(line)
    assert result.stdout == ""
    return line


def assert_validate_lists(result: Any, path: Path | str, *phrases: str) -> list[str]:
    """``validate`` exits 2 and prints an ``invalid`` line for ``path`` with every phrase."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stdout.splitlines() if str(path) in line]
    assert any(all(p in line for p in phrases) for line in lines), result.stdout
    assert all(len(line) <= MAX_LINE for line in result.stdout.splitlines())
    assert result.stderr == "", result.stderr
    return lines


@contextmanager
def no_hang(seconds: int = 30) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block blocks for ``seconds``.

    SIGALRM interrupts a blocking ``open`` of a FIFO in the main thread: the handler's
    exception then propagates from it.
    """

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
