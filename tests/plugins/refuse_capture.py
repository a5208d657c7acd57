"""A test plugin: a callback that puts a refusing stand-in in place of the CUDA graph, on any device.

It lets the command line's path for a failed capture (advnets.graphs, issue 15) run
on a machine without a GPU: the run's steps are "captured" through a recorder that
raises as torch does when a kernel cannot be captured.
"""

from advnets import Callback, Component, hookimpl


class _Refuses:
    def __init__(self, trainer, body) -> None:
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


class RefuseCapture(Callback):
    def check(self, trainer) -> None:
        trainer._graph_recorder = _Refuses


@hookimpl
def register_components(register):
    register(Component(kind="callback", name="refuse-capture", factory=RefuseCapture))
