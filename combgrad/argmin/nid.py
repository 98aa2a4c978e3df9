r"""Negative identity (Sahoo et al. 2023): the exact minimizer with backward $-g$."""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._autograd import cached_forward_signature
from ._common import as_batch, check_costs, check_oracle, solve, to_cpu64

__all__ = ["NegativeIdentity", "nid"]


@cached_forward_signature
class NegativeIdentity(torch.autograd.Function):
    r"""`torch.autograd.Function` behind [nid][combgrad.argmin.nid.nid]: forward
    $x^\star(\theta)$, backward $-g$."""

    @staticmethod
    def forward(costs: torch.Tensor, oracle: Any) -> torch.Tensor:
        x = solve(oracle, to_cpu64(as_batch(costs)))
        return x.to(device=costs.device, dtype=costs.dtype).reshape(costs.shape)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        pass

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        return (-grad if ctx.needs_input_grad[0] else None), None


def nid(costs: torch.Tensor, oracle: Any) -> torch.Tensor:
    r"""The exact minimizer, with the negative identity as its Jacobian.

    Sahoo et al. (2023), *Backpropagation through Combinatorial Algorithms: Identity with
    Projection Works*. Forward: $\hat x = x^\star(\theta)$. Backward: $\partial L / \partial
    \theta = -g$ for the incoming gradient $g = \partial L / \partial \hat x$, with no extra
    solve: for minimization, raising $\theta_i$ lowers $x_i$, hence the minus sign.

    Args:
        costs: `(B, n)` or `(n,)` floating costs $\theta$ (any device; solved on the CPU).
        oracle: an argmin oracle with `.n == n` and `.solve(costs) -> (x, values)`.

    Returns:
        `(B, n)` (or `(n,)`) minimizers on the device and dtype of `costs`.

    Raises:
        ValueError: bad shape, NaN/inf costs, or an oracle returning no solution.
        TypeError: `costs` not a floating tensor, or `oracle` without `solve`/`n`.
    """
    n = check_oracle(oracle)
    check_costs(costs, n)
    return NegativeIdentity.apply(costs, oracle)
