"""Implicit maximum-likelihood estimation (Niepert et al. 2021), perturb-and-MAP form."""

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
from ._noise import check_noise, perturb

__all__ = ["IMLE", "imle"]


@cached_forward_signature
class IMLE(torch.autograd.Function):
    r"""`torch.autograd.Function` behind [imle][combgrad.argmin.imle.imle].

    Forward: $\hat x = \frac1S \sum_s x^\star(\theta + \sigma Z_s)$. Backward: with the same
    noise, $\partial L / \partial \theta = \frac1S \sum_s
    (x^\star(\theta + \lambda g + \sigma Z_s) - x^\star(\theta + \sigma Z_s)) / \lambda$.
    Also returns the samples and the noise, `(S, B, n)` each (non-differentiable).
    """

    @staticmethod
    def forward(
        costs: torch.Tensor,
        oracle: Any,
        lambda_: float,
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
        costs, oracle, lambda_, sigma, _, _, _ = inputs
        _, xs, z = output
        ctx.mark_non_differentiable(xs, z)
        ctx.save_for_backward(costs, xs, z)
        ctx.oracle, ctx.lambda_, ctx.sigma = oracle, lambda_, sigma

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, _gxs: Any, _gz: Any) -> tuple:
        if not ctx.needs_input_grad[0]:
            return (None,) * 7
        costs, xs, z = ctx.saved_tensors
        theta = to_cpu64(as_batch(costs))
        target = theta + ctx.lambda_ * to_cpu64(as_batch(grad))  # (B, n)
        shifted = target.unsqueeze(0) + ctx.sigma * z  # (S, B, n), the same noise
        s, b, n = shifted.shape
        x_shifted = solve(ctx.oracle, shifted.reshape(s * b, n), "costs + lambda_ * grad + noise")
        dtheta = (x_shifted.reshape(s, b, n) - xs).mean(0) / ctx.lambda_
        dtheta = dtheta.to(device=costs.device, dtype=costs.dtype).reshape(costs.shape)
        return dtheta, None, None, None, None, None, None


def imle(
    costs: torch.Tensor,
    oracle: Any,
    lambda_: float = 10.0,
    sigma: float = 1.0,
    n_samples: int = 1,
    noise: str = "gumbel",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Perturb-and-MAP samples with the I-MLE gradient estimator.

    Niepert et al. (2021), *Implicit MLE: Backpropagating Through Discrete Exponential
    Family Distributions*, in its perturb-and-MAP form. The forward pass returns a sample
    $\hat x = x^\star(\theta + \sigma Z)$ of the perturbed minimizer (the mean of
    `n_samples` samples when `n_samples > 1`). The backward pass builds the target
    costs $\theta' = \theta + \lambda g$ from the incoming gradient $g$ and, with the
    **same** noise draws, returns the difference of the two MAP states

    $$\frac{\partial L}{\partial \theta} = \frac{1}{S} \sum_{s=1}^{S}
    \frac{x^\star(\theta + \lambda g + \sigma Z_s) - x^\star(\theta + \sigma Z_s)}{\lambda}.$$

    The paper's default noise is Sum-of-Gamma; here it is Gumbel (`"gumbel"`, Gumbel-min
    so that minimization is the Gumbel-max trick) or normal (`"normal"`). With
    $\sigma \to 0$ it reduces to [blackbox][combgrad.argmin.blackbox.blackbox].

    Args:
        costs: `(B, n)` or `(n,)` floating costs $\theta$ (any device; solved on the CPU).
        oracle: an argmin oracle with `.n == n` and `.solve(costs) -> (x, values)`.
        lambda_: target distance $\lambda > 0$.
        sigma: noise scale $\sigma > 0$.
        n_samples: perturb-and-MAP samples $S$ per item, solved in one oracle call.
        noise: `"gumbel"` or `"normal"`.
        generator: optional `torch.Generator` for reproducible noise.

    Returns:
        `(B, n)` (or `(n,)`) tensor, the (mean) perturbed minimizer, on the device and dtype
            of `costs`.

    Raises:
        ValueError: bad shape, NaN/inf costs, bad `lambda_`, `sigma`, `n_samples` or
            `noise`, or an oracle returning no solution.
        TypeError: `costs` not a floating tensor, or `oracle` without `solve`/`n`.
    """
    n = check_oracle(oracle)
    check_costs(costs, n)
    lambda_ = check_positive(lambda_, "lambda_")
    sigma = check_positive(sigma, "sigma")
    n_samples = check_n_samples(n_samples)
    check_noise(noise)
    mean, _, _ = IMLE.apply(costs, oracle, lambda_, sigma, n_samples, noise, generator)
    return mean
