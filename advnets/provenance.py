"""The plugin files a run used, recorded so that the run can be continued without retyping them.

A run started with ``--plugin FILE`` (or ``ADVNETS_PLUGINS``) records each file in its
config.json as ``plugin_files: [{"path": ABSOLUTE PATH, "sha256": HEX}]``. ``run --resume``,
``sample``, ``eval``, ``plot`` and a rerun of the config file load them again by themselves:

* a recorded file that is still where it was, with the same content, is loaded;
* one that a ``--plugin`` names again (by its path, or by a file with the same content
  somewhere else) is loaded as given: this is how a moved file is found, and how a
  deliberately edited one is accepted;
* one that is gone while ``--plugin`` gives files that match no record (moved and
  edited) is replaced by them, with a note;
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

from .errors import AdvnetsError, ConfigError

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
    digest_of = {path: file_digest(path) for path in given if path.is_file()}  # each given file hashed once
    given_digests: dict[str, Path] = {}
    for path, found in digest_of.items():
        given_digests.setdefault(found, path)
    # given files that stand for no record by path or content: a moved file that was also edited, perhaps
    recorded_paths, recorded_digests = {Path(e["path"]) for e in recorded}, {e["sha256"] for e in recorded}
    unrecorded = [p for p in given if p not in recorded_paths and digest_of.get(p) not in recorded_digests]
    extra: list[Path] = []
    notes: list[str] = []
    for entry in recorded:
        path, digest = Path(entry["path"]), entry["sha256"]
        if path in given:
            if path in digest_of and digest_of[path] != digest:
                notes.append(f"plugin file {path} changed since {where} recorded it; loading it as it is now (--plugin names it)")
            continue
        if digest in given_digests:
            continue  # the same file, moved: --plugin names its new place
        if not path.is_file() and unrecorded:
            notes.append(
                f"{where} records the plugin file {path}, which is no longer there; going on with "
                f"{', '.join(str(p) for p in unrecorded)} (given, with other content) in its place"
            )
            continue
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


def load_for(files: Iterable[str | os.PathLike[str]] = (), source: str | os.PathLike[str] | None = None) -> tuple[Any, list[str]]:
    """The plugins to load for a command: installed ones, ``files`` (and ADVNETS_PLUGINS), and
    the files ``source`` (a run folder, a checkpoint or a config file) records; with the notes
    and warnings to show (a changed file given again, a plugin that did not load)."""
    from .plugins import load_plugins, plugin_file_paths

    files = [Path(f) for f in files]
    extra: list[Path] = []
    notes: list[str] = []
    if source is not None:
        recorded, where = recorded_by(Path(source))
        if recorded:
            extra, notes = files_to_load(recorded, plugin_file_paths(files, os.environ), where)
    plugins = load_plugins([*files, *extra])
    if plugins.filter_note:
        notes.append(f"warning: {plugins.filter_note}")
    notes += [f"warning: plugin {info.name!r} not loaded: {info.error}" for info in plugins.errors]
    return plugins, notes


def recorded_by(source: Path) -> tuple[list[dict[str, str]], str]:
    """The plugin files a run folder, checkpoint or config file records, and what to call it.

    Only regular files are read; an unreadable record is left for the command's own checks.
    """
    from .checkpoint import read_metadata
    from .config import is_config_file, load_config_file

    try:
        if source.is_dir():
            path = source / "config.json"
            config = load_config_file(path) if path.is_file() else None
            where = str(source)
        elif source.is_file() and is_config_file(str(source)):
            config, where = load_config_file(source), str(source)
        elif source.is_file():
            config, where = read_metadata(source).get("config"), str(source)
        else:
            return [], str(source)
    except AdvnetsError:
        return [], str(source)
    return recorded_in(config, where), where


def file_records(plugins: Any) -> list[dict[str, str]]:
    """Records (path, sha256) of the plugin files that loaded: what a new run's config.json keeps."""
    return records_of(Path(info.location) for info in plugins.infos if info.source == "file" and not info.error)
