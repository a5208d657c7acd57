"""The plugin files a run used, recorded so that the run can be continued without retyping them.

A run started with ``--plugin FILE`` (or ``ADVNETS_PLUGINS``) records each file in its
config.json as ``plugin_files: [{"path": ABSOLUTE PATH, "sha256": HEX}]``. ``run --resume``,
``sample``, ``eval``, ``plot`` and a rerun of the config file load them again by themselves:

* a recorded file that is still where it was, with the same content, is loaded;
* one that a ``--plugin`` names again (by its path, or by a file with the same content
  somewhere else) is loaded as given: this is how a moved file is found, and how a
  deliberately edited one is accepted;
* one that moved or changed and is not given is one line of error that says which and
  what to do, before anything is built or written.

Installed plugins (entry points) are not recorded here: ``advnets list plugins`` shows
their versions.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

FIELD = "plugin_files"
"""The top-level config key: not a setting, but a record of where the run's components came from."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_RECORDS = 256


def file_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def records_of(paths: Iterable[Path]) -> list[dict[str, str]]:
    """``[{"path", "sha256"}]`` for plugin files that were loaded (absolute paths)."""
    return [{"path": str(Path(p).resolve()), "sha256": file_digest(p)} for p in paths]


def check_records(value: Any, where: str = FIELD) -> list[dict[str, str]]:
    """A recorded list, checked for shape (it comes from a file a user may have edited)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_RECORDS:
        raise ConfigError(f"{where} must be a list of {{\"path\": ..., \"sha256\": ...}} (at most {_MAX_RECORDS})")
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"path", "sha256"}:
            raise ConfigError(f"{where}[{i}] must be an object with exactly path and sha256")
        if not isinstance(entry["path"], str) or not entry["path"] or "\0" in entry["path"]:
            raise ConfigError(f"{where}[{i}].path must be a file path (a non-empty string)")
        if not isinstance(entry["sha256"], str) or not _SHA256.match(entry["sha256"]):
            raise ConfigError(f"{where}[{i}].sha256 must be 64 lowercase hexadecimal digits")
    return value


def recorded_in(config: Any, where: str) -> list[dict[str, str]]:
    """The plugin files a config (a run's config.json, a checkpoint's config) records."""
    if not isinstance(config, Mapping):
        return []
    try:
        return check_records(config.get(FIELD), FIELD)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def files_to_load(recorded: list[dict[str, str]], given: Iterable[Path], where: str) -> tuple[list[Path], list[str]]:
    """The recorded files to load besides ``given`` (absolute paths), and notes to print.

    Raises a one-line :class:`ConfigError` for a recorded file that moved or changed and
    that no given file stands in for.
    """
    given = [Path(p) for p in given]
    given_digests: dict[str, Path] = {}
    for path in given:
        if path.is_file():
            given_digests.setdefault(file_digest(path), path)
    extra: list[Path] = []
    notes: list[str] = []
    for entry in recorded:
        path, digest = Path(entry["path"]), entry["sha256"]
        if path in given:
            if path.is_file() and file_digest(path) != digest:
                notes.append(f"plugin file {path} changed since {where} recorded it; loading it as it is now (--plugin names it)")
            continue
        if digest in given_digests:
            continue  # the same file, moved: --plugin names its new place
        if not path.is_file():
            raise ConfigError(
                f"{where} records the plugin file {path}, which is no longer there; "
                "put it back, or name its new place with --plugin"
            )
        now = file_digest(path)
        if now != digest:
            raise ConfigError(
                f"the plugin file {path} changed since {where} recorded it (sha256 {digest[:12]}..., now "
                f"{now[:12]}...); restore it, or give --plugin {path} to load it as it is now"
            )
        if path not in extra:
            extra.append(path)
    return extra, notes
