"""A test plugin: the non-saturating loss, with NaN losses at chosen steps (counted in G updates)."""

from advnets import Component, hookimpl
from advnets.losses import NonSaturatingLoss


class FaultyLoss(NonSaturatingLoss):
    """Non-saturating loss that returns NaN at the steps listed, and from ``nan_from`` on."""

    capturable = False  # it counts steps in Python: a CUDA graph's replay would not

    def __init__(self, nan_steps: list[int] = (), nan_from: int = -1, where: str = "both"):
        self.nan_steps, self.nan_from, self.where = set(nan_steps), nan_from, where
        self.step = 0  # counts generator updates: one per training step

    def _poisoned(self) -> bool:
        return self.step in self.nan_steps or 0 <= self.nan_from <= self.step

    def discriminator_loss(self, real_logits, fake_logits):
        loss = super().discriminator_loss(real_logits, fake_logits)
        return loss * float("nan") if self._poisoned() and self.where in ("both", "d") else loss

    def generator_loss(self, fake_logits):
        loss = super().generator_loss(fake_logits)
        poisoned = self._poisoned() and self.where in ("both", "g")
        self.step += 1
        return loss * float("nan") if poisoned else loss


@hookimpl
def register_components(register):
    register(Component(kind="loss", name="faulty", factory=FaultyLoss))
