r"""Noise-contrastive estimation over a solution pool (Mulamba et al. 2021), for minimization."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..argmin._common import as_batch, check_costs, check_oracle, solve, to_cpu64
from ._common import check_reduction
from ._dfl import check_pair, reduce_mean

__all__ = ["NCELoss", "SolutionPool", "nce_loss"]

CONTRASTS = ("mean", "best")


def _check_contrast(contrast: str) -> None:
    if contrast not in CONTRASTS:
        raise ValueError(f"`contrast` must be one of {CONTRASTS}; got {contrast!r}.")


class SolutionPool:
    """A growing set of distinct feasible solutions (float64 rows of length `n`).

    Args:
        n: solution length.
        solutions: optional initial `(P, n)` solutions (tensor or array).
    """

    def __init__(self, n: int, solutions: Any = None) -> None:
        self.n = int(n)
        self._seen: set[bytes] = set()
        self._rows: list[np.ndarray] = []
        self._tensor: torch.Tensor | None = None
        if solutions is not None:
            self.add(solutions)

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, solutions: Any) -> int:
        """Add the rows of `solutions` (`(P, n)` or `(n,)`) not yet in the pool.

        Returns:
            The number of new solutions.
        """
        if isinstance(solutions, torch.Tensor):
            solutions = solutions.detach().cpu().double().numpy()
        arr = np.atleast_2d(np.asarray(solutions, dtype=np.float64))
        if arr.ndim != 2 or arr.shape[1] != self.n:
            raise ValueError(
                f"pool solutions must have shape (P, {self.n}); got {np.shape(solutions)}."
            )
        if not np.isfinite(arr).all():
            raise ValueError("pool solutions must be finite.")
        added = 0
        for row in np.round(arr, 9) + 0.0:  # + 0.0 folds -0.0 into 0.0
            key = row.tobytes()
            if key not in self._seen:
                self._seen.add(key)
                self._rows.append(row)
                added += 1
        if added:
            self._tensor = None
        return added

    def tensor(self) -> torch.Tensor:
        """The pool as a `(P, n)` float64 CPU tensor."""
        if self._tensor is None:
            self._tensor = torch.from_numpy(np.array(self._rows).reshape(-1, self.n))
        return self._tensor


def nce_loss(
    pred_costs: torch.Tensor,
    true_solutions: torch.Tensor,
    pool: torch.Tensor,
    contrast: str = "mean",
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Noise-contrastive loss of predicted costs: the target against a pool of solutions.

    Mulamba et al. (2021), *Contrastive Losses and Solution Caching for Predict-and-Optimize*,
    for minimization: the target solution $y$ should be cheaper under $\theta$ than the
    solutions $x$ of the pool $S$,

    $$\ell_{\mathrm{mean}}(\theta) = \theta^\top y - \frac{1}{|S|} \sum_{x \in S} \theta^\top x,
    \qquad \nabla_\theta \ell = y - \frac{1}{|S|}\sum_{x \in S} x,$$

    or, with `contrast="best"` (NCE-MAP), $\ell = \theta^\top y - \min_{x \in S} \theta^\top x
    \ge 0$ when $y \in S$, with gradient $y - x_{\min}$. Both are linear in $\theta$ (piecewise
    linear for `"best"`) and use no solver; the `"mean"` form is unbounded below, so the
    scale of $\theta$ must be controlled (a bounded model, weight decay, or normalisation).

    Args:
        pred_costs: `(B, n)` or `(n,)` predicted costs $\theta$.
        true_solutions: targets $y$, same shape.
        pool: `(P, n)` feasible solutions, a tensor (any device; moved to that of
            `pred_costs`).
        contrast: `"mean"` (NCE) or `"best"` (NCE-MAP).
        reduction: `"mean"` (over items), `"sum"` or `"none"` (`(B,)`).

    Returns:
        The reduced loss, differentiable in `pred_costs` by plain autograd.
    """
    _check_contrast(contrast)
    check_reduction(reduction)
    if not isinstance(pool, torch.Tensor) or pool.dim() != 2 or pool.shape[0] == 0:
        shape = tuple(pool.shape) if isinstance(pool, torch.Tensor) else type(pool).__name__
        raise ValueError(f"`pool` must be a (P, n) tensor with P >= 1; got {shape}.")
    n = pool.shape[1]
    check_costs(pred_costs, n, "pred_costs")
    check_pair(pred_costs, true_solutions, n, ("pred_costs", "true_solutions"))
    theta = as_batch(pred_costs)
    y = as_batch(true_solutions).to(theta)
    pool = pool.to(theta)
    pool_values = theta @ pool.T  # (B, P)
    contrast_value = pool_values.mean(1) if contrast == "mean" else pool_values.min(1).values
    per_item = (theta * y).sum(-1) - contrast_value
    return reduce_mean(per_item, reduction, pred_costs.dim() == 1)


class NCELoss(nn.Module):
    r"""Noise-contrastive loss with a growing solution pool (solution caching).

    Module form of [nce_loss][combgrad.losses.nce.nce_loss] that keeps the pool: it starts
    with `solution_pool` (typically the training set's $x^\star(c)$), adds every batch's
    targets, and, with probability `solve_ratio` per call, solves $x^\star(\theta)$ for the
    batch's predictions (one oracle call) and adds those as well (Mulamba et al. 2021).

    Args:
        oracle: an argmin oracle (minimization; for a maximization problem pass negated
            costs).
        solution_pool: optional initial `(P, n)` feasible solutions.
        solve_ratio: probability in `[0, 1]` of growing the pool with $x^\star(\theta)$ at a
            call.
        contrast: `"mean"` (NCE) or `"best"` (NCE-MAP).
        generator: optional `torch.Generator` for the solve/no-solve draws.
        reduction: `"mean"` (over items), `"sum"` or `"none"`.

    Attributes:
        pool: the [SolutionPool][combgrad.losses.SolutionPool].

    Shape:
        `pred_costs`, `true_solutions`: `(B, n)` or `(n,)`. Output: scalar, or `(B,)` with
        `reduction="none"`.

    Examples:
        ```python
        import torch
        import solvers
        from combgrad.losses import NCELoss

        lp = solvers.LinearProgram([0.0] * 4, A_eq=[[1.0] * 4], b_eq=[1.0], bounds=(0, 1))
        oracle = solvers.Oracle.from_problem(lp)
        targets = torch.eye(4)[[0, 2, 1]].double()
        criterion = NCELoss(oracle, solution_pool=targets, solve_ratio=0.5)
        pred = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        criterion(pred, targets).backward()
        print(len(criterion.pool))  # 3 or 4 distinct solutions so far
        ```
    """

    def __init__(
        self,
        oracle: Any,
        solution_pool: Any = None,
        solve_ratio: float = 1.0,
        contrast: str = "mean",
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        n = check_oracle(oracle)
        if isinstance(solve_ratio, bool) or not 0.0 <= float(solve_ratio) <= 1.0:
            raise ValueError(f"`solve_ratio` must be in [0, 1]; got {solve_ratio!r}.")
        _check_contrast(contrast)
        check_reduction(reduction)
        self.oracle = oracle
        self.pool = SolutionPool(n, solution_pool)
        self.solve_ratio = float(solve_ratio)
        self.contrast = contrast
        self.generator = generator
        self.reduction = reduction

    def forward(self, pred_costs: torch.Tensor, true_solutions: torch.Tensor) -> torch.Tensor:
        n = self.pool.n
        check_costs(pred_costs, n, "pred_costs")
        check_pair(pred_costs, true_solutions, n, ("pred_costs", "true_solutions"))
        self.pool.add(as_batch(true_solutions))
        if self.solve_ratio > 0:
            draw = torch.rand((), generator=self.generator, device=self._generator_device())
            if float(draw) < self.solve_ratio:
                self.pool.add(solve(self.oracle, to_cpu64(as_batch(pred_costs)), "pred_costs"))
        return nce_loss(
            pred_costs, true_solutions, self.pool.tensor(), self.contrast, self.reduction
        )

    def _generator_device(self) -> torch.device:
        return self.generator.device if self.generator is not None else torch.device("cpu")
