"""Perturbed optimizers (Berthet et al. 2020): a smooth, differentiable expected argmin."""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._autograd import cached_forward_signature
from ._common import (
    as_batch,
    check_costs,
    check_n_samples,
    check_oracle,
    check_positive,
    solve,
    to_cpu64,
)
from ._noise import check_noise, noise_score, perturb

__all__ = ["Perturbed", "perturbed"]


@cached_forward_signature
class Perturbed(torch.autograd.Function):
    r"""`torch.autograd.Function` behind [perturbed][combgrad.argmin.perturbed.perturbed].

    Forward: $\bar x = \frac1S \sum_s x^\star(\theta + \sigma Z_s)$, all $S \cdot B$ problems
    in one oracle call. Backward: $J^\top g$ with the Monte-Carlo Jacobian
    $J = \frac{1}{\sigma S} \sum_s x^\star(\theta + \sigma Z_s)\, \nu'(Z_s)^\top$, i.e.
    $\partial L / \partial \theta = \frac{1}{\sigma S} \sum_s (g^\top x_s)\, \nu'(Z_s)$.
    It also returns the samples `(S, B, n)` and the noise `(S, B, n)` (non-differentiable).
    """

    @staticmethod
    def forward(
        costs: torch.Tensor,
        oracle: Any,
        sigma: float,
        n_samples: int,
        noise: str,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        theta = to_cpu64(as_batch(costs))
        thetas, z = perturb(theta, sigma, n_samples, noise, generator)
        s, b, n = thetas.shape
        xs = solve(oracle, thetas.reshape(s * b, n), "perturbed costs").reshape(s, b, n)
        mean = xs.mean(0).to(device=costs.device, dtype=costs.dtype).reshape(costs.shape)
        return mean, xs, z

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        costs, _, sigma, _, noise, _ = inputs
        _, xs, z = output
        ctx.mark_non_differentiable(xs, z)
        ctx.save_for_backward(xs, z)
        ctx.sigma, ctx.noise = sigma, noise
        ctx.device, ctx.dtype, ctx.shape = costs.device, costs.dtype, costs.shape

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, _gxs: Any, _gz: Any) -> tuple:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        xs, z = ctx.saved_tensors
        g = to_cpu64(as_batch(grad))  # (B, n)
        weights = (xs * g.unsqueeze(0)).sum(-1, keepdim=True)  # (S, B, 1): g . x_s
        dtheta = (weights * noise_score(z, ctx.noise)).mean(0) / ctx.sigma
        dtheta = dtheta.to(device=ctx.device, dtype=ctx.dtype).reshape(ctx.shape)
        return dtheta, None, None, None, None, None


def perturbed(
    costs: torch.Tensor,
    oracle: Any,
    sigma: float = 1.0,
    n_samples: int = 8,
    noise: str = "normal",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Expected minimizer under random cost perturbations, with its Monte-Carlo Jacobian.

    Berthet et al. (2020), *Learning with Differentiable Perturbed Optimizers*. The
    piecewise-constant map $\theta \mapsto x^\star(\theta) = \arg\min_{x \in X} \theta^\top x$
    is replaced by its smoothing

    $$\bar x_\sigma(\theta) = \mathbb{E}_Z\big[x^\star(\theta + \sigma Z)\big],$$

    estimated by the mean of `n_samples` draws, all solved in one batched oracle call of
    `n_samples * B` problems. The backward pass applies the transpose of the unbiased
    Jacobian estimate (Stein's lemma, the same for minimization and maximization)

    $$J_\sigma(\theta) = \frac{1}{\sigma}\,\mathbb{E}\big[x^\star(\theta + \sigma Z)\,
    \nu'(Z)^\top\big],$$

    where $\nu'(Z) = Z$ for normal noise and $e^{Z} - 1$ for `"gumbel"` (Gumbel-min noise;
    see [sample_noise][combgrad.argmin._noise.sample_noise]). No extra solve is needed in
    backward. On the simplex with `"gumbel"` noise, $\bar x_\sigma(\theta)$ is exactly
    $\mathrm{softmax}(-\theta / \sigma)$ in expectation.

    Args:
        costs: `(B, n)` or `(n,)` floating costs $\theta$ (any device; solved on the CPU).
        oracle: an argmin oracle with `.n == n` and `.solve(costs) -> (x, values)`, e.g.
            a [solvers.Oracle][solvers.oracle.Oracle].
        sigma: noise scale $\sigma > 0$.
        n_samples: Monte-Carlo samples $S$ per item.
        noise: `"normal"` or `"gumbel"`.
        generator: optional `torch.Generator` for reproducible noise.

    Returns:
        `(B, n)` (or `(n,)`) tensor $\bar x_\sigma(\theta)$ on the device and dtype of `costs`.

    Raises:
        ValueError: bad shape (last dimension not `oracle.n`), NaN/inf costs, bad `sigma`,
            `n_samples` or `noise`, or an oracle returning no solution.
        TypeError: `costs` not a floating tensor, or `oracle` without `solve`/`n`.

    Examples:
        ```python
        import numpy as np
        import torch
        from combgrad.argmin import perturbed

        class Simplex:  # argmin over the vertices of the probability simplex
            n = 3
            def solve(self, costs):
                x = np.eye(3)[costs.argmin(axis=1)]
                return x, (costs * x).sum(axis=1)

        theta = torch.tensor([[0.0, 0.5, 2.0]], requires_grad=True)
        x = perturbed(theta, Simplex(), sigma=0.5, n_samples=1000,
                      generator=torch.Generator().manual_seed(0))
        (x * torch.tensor([[1.0, 0.0, 0.0]])).sum().backward()
        print(x, theta.grad)  # raising theta_0 lowers the mass on vertex 0
        ```
    """
    n = check_oracle(oracle)
    check_costs(costs, n)
    sigma = check_positive(sigma, "sigma")
    n_samples = check_n_samples(n_samples)
    check_noise(noise)
    mean, _, _ = Perturbed.apply(costs, oracle, sigma, n_samples, noise, generator)
    return mean
