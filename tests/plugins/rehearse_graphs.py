"""A test plugin: a callback that trains its run through advnets.graphs' CPU stand-in for a CUDA graph.

With it, ``advnets run`` on the CPU replays its steps as a graph would (the Python
state frozen at each capture), so the whole command (checkpoints, sample grids,
evaluation between replays) can be compared with the same run's eager steps.
At the end of each fit it writes how many steps were replays to graphs.json.
"""

import json

from advnets import Callback, Component, graphs, hookimpl


class RehearseGraphs(Callback):
    def check(self, trainer) -> None:
        graphs.rehearse(trainer)

    def on_fit_end(self, trainer) -> None:
        found = trainer._graphs
        counts = {"steps": 0, "replayed": 0} if found is None else {"steps": found.steps, "replayed": found.replayed}
        (trainer.run_dir / "graphs.json").write_text(json.dumps(counts))


@hookimpl
def register_components(register):
    register(Component(kind="callback", name="rehearse-graphs", factory=RehearseGraphs))
