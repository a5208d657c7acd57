"""Train small fixed configurations for a few steps and print a hash of everything they end with.

``tests/test_objectives.py`` runs this script in a fresh process (one thread, CPU)
twice: against the trainer as it was before the step became a component (commit
c37e44d, taken from the checkout's git history) and against this one, and the two
must agree bit for bit. Float results depend on the machine's vector units, so the
comparison is made on the machine that runs the test. ``step_reference.json``
keeps the hashes the old trainer gave on the machines it was run on, for a
checkout without history.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys

import torch
from torch import nn

torch.set_num_threads(1)

from advnets import AdversarialTrainer, Data  # noqa: E402
from advnets.losses import BUILTIN_LOSSES  # noqa: E402
from advnets.optim import adam, sgd  # noqa: E402



class Gen(nn.Module):
    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], batchnorm: bool = False) -> None:
        super().__init__()
        self.latent_dim, self.out_shape = latent_dim, out_shape
        width = int(torch.tensor(out_shape).prod())
        norm = [nn.BatchNorm1d(32)] if batchnorm else []
        self.net = nn.Sequential(nn.Linear(latent_dim, 32), *norm, nn.ReLU(), nn.Linear(32, width), nn.Tanh())

    def forward(self, z):
        return self.net(z).view(-1, *self.out_shape)


class Disc(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], batchnorm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        width = int(torch.tensor(in_shape).prod())
        extra = [nn.BatchNorm1d(32)] if batchnorm else []
        extra += [nn.Dropout(dropout)] if dropout else []
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(width, 32), *extra, nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def images() -> Data:
    rng = torch.Generator().manual_seed(123)
    train = torch.randint(0, 256, (200, 1, 6, 6), generator=rng, dtype=torch.uint8)
    return Data(train=train, raw_range=(0.0, 255.0), model_range=(-1.0, 1.0), name="tiny-images")


def points() -> Data:
    rng = torch.Generator().manual_seed(7)
    return Data(train=torch.randn(300, 1, generator=rng) * 0.5 + 4.0, name="tiny-points")


CASES = {
    # name: (data, G kwargs, D kwargs, loss, trainer kwargs)
    "toy-ns-k2-ema": (points, {}, {}, ("non-saturating", {}), {"k": 2, "ema_decay": 0.9, "noise": "uniform", "batch_size": 16}),
    # ema_norm_batches 0: the hashes were taken when the average copied G's batch-norm statistics
    # (the steps themselves do not depend on it; test_trainer checks the recomputed statistics).
    "images-minimax-dropout": (
        images, {"batchnorm": True}, {"dropout": 0.3}, ("minimax", {}), {"batch_size": 8, "ema_decay": 0.99, "ema_start": 5, "ema_norm_batches": 0}
    ),
    "images-wgan-gp-bn-d": (images, {}, {"batchnorm": True}, ("wasserstein", {}), {"batch_size": 8, "k": 3}),
    "images-hinge-cosine-sgd": (images, {}, {}, ("hinge", {}), {"batch_size": 8, "lr_schedule": "cosine", "sgd": True}),
    "images-lsgan-linear": (images, {}, {}, ("least-squares", {}), {"batch_size": 8, "lr_schedule": "linear"}),
}


def digest(state) -> str:
    h = hashlib.sha256()

    def walk(node, key=""):
        if isinstance(node, torch.Tensor):
            h.update(key.encode())
            h.update(node.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        elif isinstance(node, dict):
            for k in sorted(node, key=str):
                walk(node[k], f"{key}.{k}")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{key}.{i}")
        else:
            h.update(f"{key}={node!r}".encode())

    walk(state)
    return h.hexdigest()


def run(name: str) -> dict[str, str]:
    make_data, g_kwargs, d_kwargs, (loss_name, loss_kwargs), trainer_kwargs = CASES[name]
    trainer_kwargs = dict(trainer_kwargs)
    if "ema_norm_batches" not in inspect.signature(AdversarialTrainer).parameters:
        trainer_kwargs.pop("ema_norm_batches", None)  # the trainer of c37e44d: it always copied the statistics
    data = make_data()
    torch.manual_seed(0)
    shape = data.sample_shape
    generator = Gen(2, shape, **g_kwargs)
    discriminator = Disc(shape, **d_kwargs)
    maker = sgd(lr=0.01) if trainer_kwargs.pop("sgd", False) else adam(lr=1e-3, betas=[0.5, 0.999])
    trainer = AdversarialTrainer(
        generator, discriminator, BUILTIN_LOSSES[loss_name](**loss_kwargs), data,
        g_optimizer=maker, d_optimizer=maker, device="cpu", seed=11, log_every=5, **trainer_kwargs,
    )
    records = []

    class Keep:
        def __getattr__(self, hook):
            return lambda *args, **kwargs: None

        def on_log(self, trainer, record):
            records.append({k: v for k, v in record.items() if k not in ("time", "samples_per_s")})

    trainer.callbacks.append(Keep())
    trainer.fit(steps=40)
    weights = {
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "g_optimizer": trainer.g_optimizer.state_dict()["state"],
        "d_optimizer": trainer.d_optimizer.state_dict()["state"],
        "ema": None if trainer.generator_ema is None else trainer.generator_ema.state_dict(),
    }
    counters = {"step": trainer.step, "epoch": trainer.epoch}
    return {"weights": digest(weights), "records": json.dumps(records, sort_keys=True), "counters": json.dumps(counters)}


if __name__ == "__main__":
    import advnets.trainer

    result = {name: run(name) for name in CASES}
    print(json.dumps({**result, "_trainer": advnets.trainer.__file__}, sort_keys=True))
