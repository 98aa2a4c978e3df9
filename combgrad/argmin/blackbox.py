"""Differentiation of blackbox combinatorial solvers (Vlastelica et al. 2020, DBB)."""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._autograd import cached_forward_signature
from ._common import as_batch, check_costs, check_oracle, check_positive, solve, to_cpu64

__all__ = ["Blackbox", "blackbox"]


@cached_forward_signature
class Blackbox(torch.autograd.Function):
    r"""`torch.autograd.Function` behind [blackbox][combgrad.argmin.blackbox.blackbox].

    Forward: $\hat x = x^\star(\theta)$. Backward: one more solve,
    $\partial L / \partial \theta = (x^\star(\theta + \lambda g) - \hat x) / \lambda$.
    """

    @staticmethod
    def forward(costs: torch.Tensor, oracle: Any, lambda_: float) -> torch.Tensor:
        x = solve(oracle, to_cpu64(as_batch(costs)))
        return x.to(device=costs.device, dtype=costs.dtype).reshape(costs.shape)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        costs, oracle, lambda_ = inputs
        ctx.save_for_backward(costs, output)
        ctx.oracle, ctx.lambda_ = oracle, lambda_

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        costs, x = ctx.saved_tensors
        theta = to_cpu64(as_batch(costs))
        x_hat = to_cpu64(as_batch(x))
        shifted = theta + ctx.lambda_ * to_cpu64(as_batch(grad))
        x_shifted = solve(ctx.oracle, shifted, "costs + lambda_ * grad")
        dtheta = (x_shifted - x_hat) / ctx.lambda_
        return dtheta.to(device=costs.device, dtype=costs.dtype).reshape(costs.shape), None, None


def blackbox(costs: torch.Tensor, oracle: Any, lambda_: float = 10.0) -> torch.Tensor:
    r"""The exact minimizer, with the DBB gradient of a piecewise-linear interpolation.

    Vlastelica et al. (2020), *Differentiation of Blackbox Combinatorial Solvers*. The
    forward pass returns $\hat x = x^\star(\theta) = \arg\min_{x \in X} \theta^\top x$
    unchanged. The backward pass, given the incoming gradient $g = \partial L / \partial \hat x$,
    solves once more at costs shifted along $g$ and returns

    $$\frac{\partial L}{\partial \theta} = \frac{x^\star(\theta + \lambda g) - \hat x}{\lambda},$$

    the gradient of a piecewise-linear interpolation of $L(x^\star(\theta))$; larger
    $\lambda$ reaches further (typical values 1 to 20).

    Args:
        costs: `(B, n)` or `(n,)` floating costs $\theta$ (any device; solved on the CPU).
        oracle: an argmin oracle with `.n == n` and `.solve(costs) -> (x, values)`.
        lambda_: interpolation strength $\lambda > 0$.

    Returns:
        `(B, n)` (or `(n,)`) minimizers on the device and dtype of `costs`.

    Raises:
        ValueError: bad shape, NaN/inf costs, bad `lambda_`, or an oracle returning no
            solution.
        TypeError: `costs` not a floating tensor, or `oracle` without `solve`/`n`.

    Examples:
        ```python
        import numpy as np
        import torch
        from combgrad.argmin import blackbox

        class Simplex:
            n = 3
            def solve(self, costs):
                x = np.eye(3)[costs.argmin(axis=1)]
                return x, (costs * x).sum(axis=1)

        theta = torch.tensor([[0.0, 0.5, 2.0]], requires_grad=True)
        target = torch.tensor([[0.0, 1.0, 0.0]])
        x = blackbox(theta, Simplex(), lambda_=1.0)
        ((x - target) ** 2).sum().backward()
        print(theta.grad)  # descent lowers theta_1 and raises theta_0
        ```
    """
    n = check_oracle(oracle)
    check_costs(costs, n)
    lambda_ = check_positive(lambda_, "lambda_")
    return Blackbox.apply(costs, oracle, lambda_)
