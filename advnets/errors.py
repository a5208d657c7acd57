"""The one exception type that means "the user asked for something that cannot be done".

The CLI turns an :class:`AdvnetsError` into a one-line message on stderr and exit
code 2; anything else escaping is a bug in advnets or in a plugin and keeps its
traceback.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path


class AdvnetsError(Exception):
    """Bad input: an unknown name, a wrong value, a missing or broken file."""


class ConfigError(AdvnetsError):
    """A setting that does not exist or has a value it cannot take."""


class PluginError(AdvnetsError):
    """A plugin that cannot be loaded or that registers something invalid."""


class CheckpointError(AdvnetsError):
    """A checkpoint or run folder that cannot be read or written."""


class WriteError(CheckpointError):
    """A file of a run could not be written (a full disk, a read-only folder); it names the file.

    During training ``advnets run`` ends on it with exit code 1, after keeping the
    trained steps in a final checkpoint if that can still be written.
    """


@contextlib.contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn an OSError inside the block into a WriteError naming ``path`` and ``what`` it holds."""
    try:
        yield
    except OSError as exc:
        raise WriteError(f"{path}: cannot write {what} ({exc.strerror or exc})") from None


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean: a, b?)"`` for the nearest candidates, or ``""``."""
    found = difflib.get_close_matches(word, sorted(set(candidates)), n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(found)}?)" if found else ""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type's name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def exception_line(exc: BaseException) -> str:
    """What went wrong in plugin code, in one line: the exception's type and its message's first line."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: the plugin called sys.exit({exc.code!r})"
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
