"""Core metrics: the Parzen-window log-likelihood of the paper's Table 1.

The estimate of Goodfellow et al. (2014), as their code computed it
(goodfeli/adversarial, ``parzen_ll.py``): G's samples are the centres of an
isotropic normal kernel of width sigma; sigma is picked from
``logspace(-1, 0, 10)`` by the mean log-likelihood of held-out images (the
dataset's ``valid`` split, or, for a dataset without one, the training samples
``valid_start:valid_start+valid_size`` that the run was told to leave unseen);
the score is the mean log-likelihood of the test images, with its standard error
std / sqrt(N). Pixels are on the [0, 1] scale.

    log p(x) = logmeanexp_i( -||x - mu_i||^2 / (2 sigma^2) ) - d log(sigma sqrt(2 pi))

The squared distances come from one matrix product per chunk of test points
(||x||^2 + ||mu||^2 - 2 x.mu, in float64) and serve every sigma at once.
Theis et al. (2016) show that this estimator can rank models badly in high
dimensions; report it beside modern metrics.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advnets import ConfigError, Data
from advnets.data import to_unit


def parzen_log_likelihood(x: Tensor, centres: Tensor, sigmas: Tensor, chunk: int = 500) -> Tensor:
    """log p(x) under the Parzen window of ``centres``, for each sigma: shape (len(x), len(sigmas)), float64."""
    x = x.reshape(len(x), -1).to(torch.float64)
    centres = centres.reshape(len(centres), -1).to(torch.float64)
    sigmas = sigmas.to(torch.float64)
    d = x.shape[1]
    centre_norms = centres.square().sum(1)
    # log of the normaliser: log m + d log(sigma sqrt(2 pi)), one per sigma
    log_norm = math.log(len(centres)) + d * torch.log(sigmas * math.sqrt(2 * math.pi))
    out = torch.empty(len(x), len(sigmas), dtype=torch.float64)
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk]
        squared = (block.square().sum(1, keepdim=True) + centre_norms - 2 * block @ centres.T).clamp_(min=0)
        for j, sigma in enumerate(sigmas.tolist()):
            out[start : start + len(block), j] = torch.logsumexp(squared / (-2 * sigma * sigma), dim=1) - log_norm[j]
    return out


class Parzen:
    """Parzen-window log-likelihood of the test set in nats (Goodfellow et al. 2014, Table 1 protocol)."""

    directions = {"parzen": "max", "parzen_valid": "max"}
    headline = ("parzen",)

    def __init__(
        self,
        sigma_min: float = 0.1,
        sigma_max: float = 1.0,
        n_sigmas: int = 10,
        valid_start: int | None = None,
        valid_size: int = 1000,
        n_test: int = 10000,
    ) -> None:
        if not 0 < sigma_min <= sigma_max or n_sigmas < 1:
            raise ConfigError("parzen: need 0 < sigma_min <= sigma_max and n_sigmas >= 1")
        if valid_start is not None and (not isinstance(valid_start, int) or isinstance(valid_start, bool) or valid_start < 0):
            raise ConfigError(f"parzen: valid_start must be null or an integer >= 0, got {valid_start!r}")
        if valid_size < 1 or n_test < 1:
            raise ConfigError("parzen: valid_size >= 1 and n_test >= 1")
        self.sigmas = torch.logspace(math.log10(sigma_min), math.log10(sigma_max), n_sigmas, dtype=torch.float64)
        self.valid = None if valid_start is None else slice(valid_start, valid_start + valid_size)
        self.n_test = n_test

    def __call__(self, samples: Tensor, data: Data) -> dict[str, float]:
        if data.test is None:
            raise ConfigError(f"parzen needs a test set; dataset {data.name!r} has none")
        if data.valid is not None:
            held_out = data.valid
        elif self.valid is None:
            raise ConfigError(
                f"parzen: dataset {data.name!r} has no validation split to choose sigma on; give it one, or "
                "name training samples the run leaves unseen with eval.metrics.parzen.valid_start"
            )
        elif len(data.train) >= self.valid.stop:
            held_out = data.train[self.valid]
        else:
            raise ConfigError(
                f"parzen: dataset {data.name!r} has no validation split, and training samples "
                f"{self.valid.start}:{self.valid.stop} are beyond its {len(data.train)}"
            )
        centres = to_unit(samples.detach().float().cpu(), data.model_range)
        valid = to_unit(data.decode(held_out.cpu()), data.model_range)
        test = to_unit(data.decode(data.test[: self.n_test].cpu()), data.model_range)
        by_sigma = parzen_log_likelihood(valid, centres, self.sigmas).mean(0)
        best = int(by_sigma.argmax())
        scores = parzen_log_likelihood(test, centres, self.sigmas[best : best + 1])[:, 0]
        return {
            "parzen": float(scores.mean()),
            "parzen_se": float(scores.std(unbiased=False) / math.sqrt(len(scores))),
            "parzen_sigma": float(self.sigmas[best]),
            # the validation images' mean at that sigma: what to pick a checkpoint by (eval.best),
            # since picking by the test set's number would tune on the test set
            "parzen_valid": float(by_sigma[best]),
        }
