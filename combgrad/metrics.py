r"""Decision-quality metrics for predict-then-optimize: the regret of predicted costs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .argmin._common import check_oracle, solve

__all__ = ["regret"]


def _as_cpu64(t: Any, name: str, n: int) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        arr = t.detach().to(device="cpu", dtype=torch.float64)
    else:
        try:
            arr = torch.as_tensor(np.asarray(t, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`{name}` must be a (B, {n}) array of numbers.") from exc
    if arr.dim() == 1:
        arr = arr.unsqueeze(0)
    if arr.dim() != 2 or arr.shape[1] != n:
        raise ValueError(
            f"`{name}` must have shape (B, n) or (n,) with n = oracle.n = {n}; "
            f"got {tuple(arr.shape)}."
        )
    finite = torch.isfinite(arr)
    if not bool(finite.all()):
        where = tuple((~finite).nonzero()[0].tolist())
        raise ValueError(f"`{name}` must be finite; found {arr[where].item()} at index {where}.")
    return arr


def regret(
    pred_costs: Any,
    true_costs: Any,
    oracle: Any,
    normalized: bool = True,
    *,
    true_solutions: Any = None,
) -> float:
    r"""Regret of the decisions made with predicted costs, PyEPO's definition.

    For each item, the decision $x^\star(\hat c)$ taken with the predicted costs is evaluated
    under the true costs and compared with the best decision (minimization):
    $r_i = c_i^\top x^\star(\hat c_i) - z^\star(c_i) \ge 0$. The normalized regret of a data
    set is $\sum_i r_i / \sum_i |z^\star(c_i)|$ (PyEPO's `pyepo.metric.regret`, without its
    $10^{-7}$ guard); unnormalized, it is $\sum_i r_i$. For a maximization problem, pass
    negated costs for both.

    Args:
        pred_costs: `(B, n)` or `(n,)` predicted costs (tensor or array; no gradient).
        true_costs: true costs, same shape.
        oracle: an argmin oracle with `.n == n` (e.g. a [solvers.Oracle][solvers.oracle.Oracle]).
        normalized: divide by $\sum_i |z^\star(c_i)|$.
        true_solutions: optional $x^\star(c)$, same shape, to skip one oracle call.

    Returns:
        The (normalized) regret as a Python float.

    Raises:
        ValueError: shapes that disagree with each other or with `oracle.n`, NaN/inf
            entries, or `normalized=True` with all optimal values zero.

    Examples:
        ```python
        import numpy as np
        import solvers
        from combgrad.metrics import regret

        lp = solvers.LinearProgram([0.0] * 3, A_eq=[[1.0] * 3], b_eq=[1.0], bounds=(0, 1))
        oracle = solvers.Oracle.from_problem(lp)  # pick the cheapest of 3 items
        true = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 1.0]])
        pred = np.array([[2.0, 1.0, 3.0], [0.0, 1.0, 2.0]])
        print(regret(pred, true, oracle))  # (1 + 1) / (1 + 1) = 1.0
        ```
    """
    n = check_oracle(oracle)
    pred = _as_cpu64(pred_costs, "pred_costs", n)
    true = _as_cpu64(true_costs, "true_costs", n)
    if pred.shape != true.shape:
        raise ValueError(
            f"`true_costs` must have the shape of `pred_costs`, {tuple(pred.shape)}; "
            f"got {tuple(true.shape)}."
        )
    if true_solutions is None:
        best = solve(oracle, true, "true_costs")
    else:
        best = _as_cpu64(true_solutions, "true_solutions", n)
        if best.shape != true.shape:
            raise ValueError(
                f"`true_solutions` must have the shape of `true_costs`, {tuple(true.shape)}; "
                f"got {tuple(best.shape)}."
            )
    decisions = solve(oracle, pred, "pred_costs")
    optimal = (true * best).sum(-1)
    total = float(((true * decisions).sum(-1) - optimal).sum())
    if not normalized:
        return total
    scale = float(optimal.abs().sum())
    if scale == 0.0:
        raise ValueError(
            "normalized regret is undefined: the optimal values z*(true_costs) are all zero; "
            "use `normalized=False`."
        )
    return total / scale
