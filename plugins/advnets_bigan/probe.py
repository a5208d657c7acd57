"""How good are E's features? Donahue et al.'s test: a 1-nearest-neighbour classifier on them.

Each test image takes the label of the training image whose features are nearest
in Euclidean distance (BiGAN's Table 1 protocol: 97.39% test accuracy on
permutation-invariant MNIST with a 50-d uniform z, beside 97.58% for an l2
autoencoder). The distances come from one matrix product per chunk of test
points, in float32:

    argmin_j ||a - b_j||^2 = argmin_j (||b_j||^2 - 2 a.b_j)     (||a||^2 is the same for every j)
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from advnets import Data


@torch.no_grad()
def nearest_neighbour_labels(train: Tensor, train_labels: Tensor, test: Tensor, chunk: int = 500) -> Tensor:
    """For each test row, the label of the nearest training row (Euclidean; the first one on a tie)."""
    train = train.flatten(1).float()
    train_norms = train.square().sum(1)
    found = []
    for start in range(0, len(test), chunk):  # chunk x len(train) distances at a time: 120 MB for MNIST
        block = test[start : start + chunk].flatten(1).float().to(train.device)
        found.append(train_labels[torch.addmm(train_norms, block, train.T, alpha=-2).argmin(1).to(train_labels.device)])
    return torch.cat(found)


def nearest_neighbour_accuracy(train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor) -> float:
    """The share of test rows whose nearest training row has their label."""
    predicted = nearest_neighbour_labels(train, train_labels.to(train.device), test)
    return float((predicted == test_labels.to(predicted.device)).double().mean())


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """The modules in eval mode (running batch-norm statistics, no dropout) for the block, then as they were."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


@torch.no_grad()
def features(encoder: nn.Module, raw: Tensor, data: Data, device: torch.device, chunk: int = 1000) -> Tensor:
    """E(x) for stored samples ``raw`` (decoded to the model's range chunk by chunk), E in eval mode."""
    with evaluating(encoder):
        return torch.cat([encoder(data.decode(raw[i : i + chunk].to(device))) for i in range(0, len(raw), chunk)])


def freshly_initialised(module: nn.Module, seed: int) -> nn.Module:
    """A copy of ``module`` with every layer re-initialised as torch initialises it, from ``seed``.

    Initialised on the CPU (the same weights on any device), outside the global random stream.
    """
    device = next(module.parameters()).device
    fresh = copy.deepcopy(module).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in fresh.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    return fresh.to(device)
