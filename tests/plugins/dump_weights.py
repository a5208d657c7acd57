"""A test plugin: a callback that runs on every rank and saves that rank's weights at the end."""

import safetensors.torch

from advnets import Callback, Component, hookimpl


class DumpWeights(Callback):
    """Save G's and D's weights of this rank as weights-rank<R>.safetensors in the run folder."""

    all_ranks = True

    def on_fit_end(self, trainer):
        tensors = {f"generator.{k}": v.contiguous() for k, v in trainer.generator.state_dict().items()}
        tensors.update({f"discriminator.{k}": v.contiguous() for k, v in trainer.discriminator.state_dict().items()})
        safetensors.torch.save_file(tensors, trainer.run_dir / f"weights-rank{trainer.rank}.safetensors")


@hookimpl
def register_components(register):
    register(Component(kind="callback", name="dump-weights", factory=DumpWeights))
