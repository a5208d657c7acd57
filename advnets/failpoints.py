"""Fault injection for the crash tests: SIGKILL this process at a named point.

``ADVNETS_FAILPOINTS="step=137"`` kills the process right after its 137th training
step; ``"checkpoint-write=2"`` kills it half-way through writing its second file
(after some bytes are on disk, before the rename); ``"step=20@1"`` kills only the
process whose RANK is 1 (under torchrun). Several points are separated by
commas. Unset (always, outside tests), a hit costs one truth test.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

VARIABLE = "ADVNETS_FAILPOINTS"


def _parse(text: str, rank: str) -> dict[str, int]:
    points = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        item, _, only_rank = item.partition("@")
        if only_rank and only_rank != rank:
            continue
        name, _, count = item.partition("=")
        points[name] = int(count or 1)
    return points


_points = _parse(os.environ.get(VARIABLE, ""), os.environ.get("RANK", "0"))
_hits: Counter[str] = Counter()


def hit(name: str) -> None:
    """Count a pass through the point ``name``; die there if this is the pass the variable names."""
    if not _points or name not in _points:
        return
    _hits[name] += 1
    if _hits[name] == _points[name]:
        os.kill(os.getpid(), signal.SIGKILL)
