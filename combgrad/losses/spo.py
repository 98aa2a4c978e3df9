r"""The SPO+ loss (Elmachtoub and Grigas 2022): a convex surrogate of the decision regret."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .._autograd import cached_forward_signature
from ..argmin._common import as_batch, check_costs, check_oracle, solve, to_cpu64
from ._common import check_reduction
from ._dfl import check_pair, reduce_mean

__all__ = ["SPOPlus", "SPOPlusLoss", "spo_plus_loss"]


@cached_forward_signature
class SPOPlus(torch.autograd.Function):
    r"""`torch.autograd.Function` behind [spo_plus_loss][combgrad.losses.spo.spo_plus_loss].

    Per item, with $w = 2\theta - c$ and $y = x^\star(c)$: forward
    $-w^\top x^\star(w) + 2\theta^\top y - c^\top y$, backward
    $\partial \ell / \partial \theta = 2 (y - x^\star(w))$,
    $\partial \ell / \partial c = x^\star(w) - y$, $\partial \ell / \partial y = 2\theta - c$.
    Returns the `(B,)` losses and $x^\star(w)$ `(B, n)` (non-differentiable).
    """

    @staticmethod
    def forward(
        pred_costs: torch.Tensor,
        true_costs: torch.Tensor,
        true_solutions: torch.Tensor,
        oracle: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        theta, c, y = (to_cpu64(as_batch(t)) for t in (pred_costs, true_costs, true_solutions))
        w = 2 * theta - c
        x_w = solve(oracle, w, "2 * pred_costs - true_costs")
        loss = -(w * x_w).sum(-1) + 2 * (theta * y).sum(-1) - (c * y).sum(-1)
        return loss.to(device=pred_costs.device, dtype=pred_costs.dtype), x_w

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        pred_costs, true_costs, true_solutions, _ = inputs
        _, x_w = output
        ctx.mark_non_differentiable(x_w)
        ctx.save_for_backward(pred_costs, true_costs, true_solutions, x_w)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, _gx: Any) -> tuple:
        pred_costs, true_costs, true_solutions, x_w = ctx.saved_tensors
        g = to_cpu64(grad).unsqueeze(-1)  # (B, 1)
        y = to_cpu64(as_batch(true_solutions))

        def back(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return t.to(device=like.device, dtype=like.dtype).reshape(like.shape)

        d_pred = d_true = d_sol = None
        if ctx.needs_input_grad[0]:
            d_pred = back(2 * g * (y - x_w), pred_costs)
        if ctx.needs_input_grad[1]:
            d_true = back(g * (x_w - y), true_costs)
        if ctx.needs_input_grad[2]:
            theta, c = to_cpu64(as_batch(pred_costs)), to_cpu64(as_batch(true_costs))
            d_sol = back(g * (2 * theta - c), true_solutions)
        return d_pred, d_true, d_sol, None


def spo_plus_loss(
    pred_costs: torch.Tensor,
    true_costs: torch.Tensor,
    oracle: Any,
    true_solutions: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""SPO+ loss of predicted costs against true costs, for minimization problems.

    Elmachtoub and Grigas (2022), *Smart "Predict, then Optimize"*. With predicted
    costs $\theta$, true costs $c$, $y = x^\star(c)$ and $z^\star(c) = c^\top y$:

    $$\ell_{\mathrm{SPO+}}(\theta, c) = -z^\star(2\theta - c) + 2\theta^\top y - z^\star(c),$$

    a convex upper bound of the regret $c^\top x^\star(\theta) - z^\star(c)$, zero at
    $\theta = c$. Its subgradient is $2\,(y - x^\star(2\theta - c))$: one oracle call of
    `B` problems per forward, none in backward.

    Args:
        pred_costs: `(B, n)` or `(n,)` predicted costs $\theta$ (any device).
        true_costs: true costs $c$, same shape.
        oracle: an argmin oracle with `.n == n` (e.g. a [solvers.Oracle][solvers.oracle.Oracle]).
        true_solutions: $x^\star(c)$, same shape; solved (one more oracle call) when None.
            Cache them per training item to save that call.
        reduction: `"mean"` (over items), `"sum"` or `"none"` (`(B,)`).

    Returns:
        The reduced loss, on the device and dtype of `pred_costs`.

    Raises:
        ValueError: shapes that disagree with each other or with `oracle.n`, NaN/inf
            entries, an unknown `reduction`, or an oracle returning no solution.

    Examples:
        ```python
        import numpy as np
        import torch
        from combgrad.losses import spo_plus_loss

        class Simplex:
            n = 3
            def solve(self, costs):
                x = np.eye(3)[costs.argmin(axis=1)]
                return x, (costs * x).sum(axis=1)

        true = torch.tensor([[1.0, 2.0, 3.0]])
        pred = torch.tensor([[2.0, 1.0, 3.0]], requires_grad=True)
        loss = spo_plus_loss(pred, true, Simplex())
        loss.backward()
        print(loss.item(), pred.grad)  # 3.0, [[2., -2., 0.]]
        ```
    """
    n = check_oracle(oracle)
    check_costs(pred_costs, n, "pred_costs")
    check_pair(pred_costs, true_costs, n, ("pred_costs", "true_costs"))
    check_reduction(reduction)
    if true_solutions is None:
        c = to_cpu64(as_batch(true_costs))
        y = solve(oracle, c, "true_costs").to(device=true_costs.device, dtype=true_costs.dtype)
        true_solutions = y.reshape(true_costs.shape)
    else:
        check_pair(pred_costs, true_solutions, n, ("pred_costs", "true_solutions"))
    loss, _ = SPOPlus.apply(pred_costs, true_costs, true_solutions, oracle)
    return reduce_mean(loss, reduction, pred_costs.dim() == 1)


class SPOPlusLoss(nn.Module):
    r"""Module form of [spo_plus_loss][combgrad.losses.spo.spo_plus_loss].

    Args:
        oracle: an argmin oracle (minimization; for a maximization problem pass negated
            costs for both predictions and truths).
        reduction: `"mean"` (over items), `"sum"` or `"none"`.

    Shape:
        `pred_costs`, `true_costs`, `true_solutions`: `(B, n)` or `(n,)`. Output: scalar,
        or `(B,)` with `reduction="none"`.

    Examples:
        ```python
        import torch
        import solvers
        from combgrad.losses import SPOPlusLoss

        # choose exactly one of 4 items: x in the simplex
        lp = solvers.LinearProgram([0.0] * 4, A_eq=[[1.0] * 4], b_eq=[1.0], bounds=(0, 1))
        criterion = SPOPlusLoss(solvers.Oracle.from_problem(lp))
        pred = torch.randn(8, 4, requires_grad=True)
        loss = criterion(pred, torch.rand(8, 4))
        loss.backward()
        ```
    """

    def __init__(self, oracle: Any, reduction: str = "mean") -> None:
        super().__init__()
        check_oracle(oracle)
        check_reduction(reduction)
        self.oracle = oracle
        self.reduction = reduction

    def forward(
        self,
        pred_costs: torch.Tensor,
        true_costs: torch.Tensor,
        true_solutions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return spo_plus_loss(pred_costs, true_costs, self.oracle, true_solutions, self.reduction)
