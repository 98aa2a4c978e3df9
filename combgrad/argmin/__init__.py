r"""Differentiable solution maps $\theta \mapsto x^\star(\theta)$ over any argmin oracle.

Each method is a `torch.autograd.Function` with a functional wrapper taking
`(costs, oracle, ...)` and returning `(B, n)` solutions: [perturbed][combgrad.argmin.perturbed]
(Berthet et al. 2020), [blackbox][combgrad.argmin.blackbox] (Vlastelica et al. 2020),
[imle][combgrad.argmin.imle] (Niepert et al. 2021) and [nid][combgrad.argmin.nid]
(Sahoo et al. 2023). All minimize: $x^\star(\theta) = \arg\min_{x \in X} \theta^\top x$;
for a maximization problem pass negated costs. An oracle is any object with `n` and
`solve(costs) -> (x, values)` on `(B, n)` float64 arrays, such as `solvers.Oracle`.
"""

from ._noise import noise_score, sample_noise
from .blackbox import Blackbox, blackbox
from .imle import IMLE, imle
from .nid import NegativeIdentity, nid
from .perturbed import Perturbed, perturbed

__all__ = [
    "IMLE",
    "Blackbox",
    "NegativeIdentity",
    "Perturbed",
    "blackbox",
    "imle",
    "nid",
    "noise_score",
    "perturbed",
    "sample_noise",
]
