r"""The SPO+ loss (Elmachtoub and Grigas 2022): a convex surrogate of the decision regret."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..argmin._common import (
    as_batch,
    check_costs,
    check_oracle,
    check_shape,
    solve,
    solve_array,
    to_array64,
    to_cpu64,
)
from ._common import check_reduction
from ._dfl import check_pair, reduce_mean

__all__ = ["SPOPlusLoss", "spo_plus_loss"]


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
    `B` problems per forward, none in backward. The loss is evaluated as
    $(2\theta - c)^\top (y - x^\star(2\theta - c))$ with torch operations on the inputs'
    device (only the oracle call goes through the CPU, in float64), so autograd returns
    exactly these subgradients (and $x^\star(2\theta - c) - y$ in $c$, $2\theta - c$ in $y$).

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
    check_reduction(reduction)
    check_shape(pred_costs, n, "pred_costs")
    if true_solutions is None:
        check_pair(pred_costs, true_costs, n, ("pred_costs", "true_costs"))
        c = to_cpu64(as_batch(true_costs))
        y = solve(oracle, c, "true_costs").to(device=true_costs.device, dtype=true_costs.dtype)
        true_solutions = y.reshape(true_costs.shape)
    else:
        check_pair(pred_costs, true_costs, n, ("pred_costs", "true_costs"), values=False)
        check_pair(pred_costs, true_solutions, n, ("pred_costs", "true_solutions"), values=False)
    # The loss is w @ (y - x*(w)) with x*(w) held constant: autograd then gives exactly
    # the subgradients 2 (y - x*(w)) in pred_costs, x*(w) - y in true_costs and w in y,
    # with no custom Function (whose per-call overhead exceeded the rest of the loss).
    w = 2 * pred_costs - true_costs
    w64 = to_array64(as_batch(w))
    if not np.isfinite(w64).all():  # name the argument: NaN/inf shows in w
        check_costs(pred_costs, n, "pred_costs")
        check_costs(true_costs, n, "true_costs")
        raise ValueError("`2 * pred_costs - true_costs` overflows float64.")
    x_w = solve_array(oracle, w64, "2 * pred_costs - true_costs")
    x_w = torch.from_numpy(x_w).to(device=w.device, dtype=w.dtype).reshape(w.shape)
    per_item = (w * (true_solutions - x_w)).sum(-1)
    if not _all_finite(per_item):  # the only input left unchecked is true_solutions
        check_costs(true_solutions, n, "true_solutions")
        raise ValueError("the SPO+ loss overflows (`pred_costs` is too large).")
    per_item = per_item.to(pred_costs.dtype)
    if pred_costs.dim() == 1:  # one item: every reduction is its loss
        return per_item
    return reduce_mean(per_item, reduction, False)


def _all_finite(t: torch.Tensor) -> bool:
    t = t.detach()
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(t.numpy()).all())
    return bool(torch.isfinite(t).all())


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
