"""advnets-parzen: the paper's Table 1 evaluation, the Parzen-window log-likelihood, as a plugin.

Registers the metric ``parzen`` (any dataset with a test split, and a validation
split or held-out training samples to choose the window's width on). The MNIST
presets name it; so can any run: ``--set 'eval.metrics.parzen={}'``.
"""

from __future__ import annotations

from advnets import Component, hookimpl


@hookimpl
def register_components(register):
    register(Component(kind="metric", name="parzen", factory="advnets_parzen.metrics:Parzen"))
