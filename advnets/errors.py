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


class CaptureError(AdvnetsError):
    """A training step could not be captured in a CUDA graph (``trainer.cuda_graphs``).

    Raised between steps, with the trainer's state whole: ``advnets run`` ends on it
    with exit code 1 after a final checkpoint, and says to resume with graphs off.
    torch leaves its random generators in capture mode after a failed capture, so
    the trainer must not train on in the same process: resume in a new one.
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


MAX_LINE = 400
"""The longest message an error line carries from an exception (torch can list a hundred mismatches)."""


def first_line(exc: BaseException) -> str:
    """An exception's message on one line: its lines joined by "; " (a validator's reason is often on
    the second), cut at :data:`MAX_LINE` characters; its type's name if it has no message."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = "; ".join(line.rstrip(":;") if i < len(lines) - 1 else line for i, line in enumerate(lines))
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."


def exception_line(exc: BaseException) -> str:
    """What went wrong in plugin code, in one line: the exception's type and its message (:func:`first_line`)."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: the plugin called sys.exit({exc.code!r})"
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
