"""The plugin contract.

A plugin is a module (or any object) with functions marked ``@hookimpl`` whose
names match the hook specifications below. pluggy calls every hook with keyword
arguments only, and never passes an implementation's own argument defaults.
A misspelled hook name is an error at load time, not a silent no-op.

A whole plugin can be this short::

    from advnets import Component, hookimpl

    def scaled_hinge(margin: float = 1.0):
        "Hinge loss with a settable margin."
        ...

    @hookimpl
    def register_components(register):
        register(Component(kind="loss", name="scaled-hinge", factory=scaled_hinge))
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "advnets"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_components(register):
    """Register components: call ``register(Component(kind=..., name=..., factory=...))`` once for each.

    Kinds are plain strings (``generator``, ``discriminator``, ``dataset``, ``loss``,
    ``metric``, ``optimizer``, ``callback``, ``preset``, or a new one), so adding a
    kind needs no new hook. The loader records which plugin each component came from.
    """
