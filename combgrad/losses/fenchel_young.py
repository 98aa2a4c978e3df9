r"""The perturbed Fenchel-Young loss (Berthet et al. 2020), PFYL, for minimization."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .._autograd import cached_forward_signature
from ..argmin._common import (
    as_batch,
    check_costs,
    check_n_samples,
    check_oracle,
    check_positive,
    solve,
    to_cpu64,
)
from ..argmin._noise import check_noise, perturb
from ._common import check_reduction
from ._dfl import check_pair, reduce_mean

__all__ = ["FenchelYoung", "FenchelYoungLoss", "fenchel_young_loss"]


@cached_forward_signature
class FenchelYoung(torch.autograd.Function):
    r"""`torch.autograd.Function` behind
    [fenchel_young_loss][combgrad.losses.fenchel_young.fenchel_young_loss].

    Per item: forward $\frac1S \sum_s (\theta + \sigma Z_s)^\top (y - x_s)$ with
    $x_s = x^\star(\theta + \sigma Z_s)$; backward $\partial \ell / \partial \theta =
    y - \frac1S \sum_s x_s$. Returns the `(B,)` losses, the mean solution and the mean
    perturbed costs, `(B, n)` each (non-differentiable).
    """

    @staticmethod
    def forward(
        pred_costs: torch.Tensor,
        true_solutions: torch.Tensor,
        oracle: Any,
        sigma: float,
        n_samples: int,
        noise: str,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        theta, y = to_cpu64(as_batch(pred_costs)), to_cpu64(as_batch(true_solutions))
        thetas, _ = perturb(theta, sigma, n_samples, noise, generator)
        s, b, n = thetas.shape
        xs = solve(oracle, thetas.reshape(s * b, n), "perturbed pred_costs").reshape(s, b, n)
        loss = (thetas * (y.unsqueeze(0) - xs)).sum(-1).mean(0)
        return loss.to(device=pred_costs.device, dtype=pred_costs.dtype), xs.mean(0), thetas.mean(0)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        pred_costs, true_solutions = inputs[:2]
        _, x_mean, mean_thetas = output
        ctx.mark_non_differentiable(x_mean, mean_thetas)
        ctx.save_for_backward(pred_costs, true_solutions, x_mean, mean_thetas)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, _gx: Any, _gt: Any) -> tuple:
        pred_costs, true_solutions, x_mean, mean_thetas = ctx.saved_tensors
        g = to_cpu64(grad).unsqueeze(-1)
        d_pred = d_sol = None
        if ctx.needs_input_grad[0]:
            y = to_cpu64(as_batch(true_solutions))
            d_pred = (g * (y - x_mean)).to(device=pred_costs.device, dtype=pred_costs.dtype)
            d_pred = d_pred.reshape(pred_costs.shape)
        if ctx.needs_input_grad[1]:
            d_sol = (g * mean_thetas).to(device=true_solutions.device, dtype=true_solutions.dtype)
            d_sol = d_sol.reshape(true_solutions.shape)
        return d_pred, d_sol, None, None, None, None, None


def fenchel_young_loss(
    pred_costs: torch.Tensor,
    true_solutions: torch.Tensor,
    oracle: Any,
    sigma: float = 1.0,
    n_samples: int = 1,
    noise: str = "normal",
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Perturbed Fenchel-Young loss (PFYL) of predicted costs against target solutions.

    Berthet et al. (2020), *Learning with Differentiable Perturbed Optimizers*, written for
    minimization. With the perturbed optimal value $F_\sigma(\theta) =
    \mathbb{E}[\min_{x \in X} (\theta + \sigma Z)^\top x]$ (concave, smooth,
    $\nabla F_\sigma(\theta) = \mathbb{E}[x^\star(\theta + \sigma Z)]$) the loss is

    $$\ell(\theta, y) = \theta^\top y - F_\sigma(\theta) \quad (+\ \text{a constant}),
    \qquad \nabla_\theta \ell = y - \mathbb{E}\big[x^\star(\theta + \sigma Z)\big].$$

    It is estimated with `n_samples` draws $Z_s$ (one oracle call of `n_samples * B`
    problems, none in backward) as $\frac1S \sum_s (\theta + \sigma Z_s)^\top
    (y - x^\star(\theta + \sigma Z_s))$, which differs from $\theta^\top y - F_\sigma$
    only by the $\theta$-free term $\sigma \bar Z^\top y$ and is $\ge 0$ for every
    draw when $y$ is feasible.

    Args:
        pred_costs: `(B, n)` or `(n,)` predicted costs $\theta$ (any device).
        true_solutions: target solutions $y$ (usually $x^\star(c)$), same shape.
        oracle: an argmin oracle with `.n == n` (e.g. a [solvers.Oracle][solvers.oracle.Oracle]).
        sigma: noise scale $\sigma > 0$.
        n_samples: Monte-Carlo samples per item (1 is common).
        noise: `"normal"` or `"gumbel"` (see [sample_noise][combgrad.argmin._noise.sample_noise]).
        generator: optional `torch.Generator` for reproducible noise.
        reduction: `"mean"` (over items), `"sum"` or `"none"` (`(B,)`).

    Returns:
        The reduced loss, on the device and dtype of `pred_costs`.

    Raises:
        ValueError: shapes that disagree with each other or with `oracle.n`, NaN/inf
            entries, bad `sigma`, `n_samples`, `noise` or `reduction`, or an oracle
            returning no solution.
    """
    n = check_oracle(oracle)
    check_costs(pred_costs, n, "pred_costs")
    check_pair(pred_costs, true_solutions, n, ("pred_costs", "true_solutions"))
    sigma = check_positive(sigma, "sigma")
    n_samples = check_n_samples(n_samples)
    check_noise(noise)
    check_reduction(reduction)
    loss, _, _ = FenchelYoung.apply(
        pred_costs, true_solutions, oracle, sigma, n_samples, noise, generator
    )
    return reduce_mean(loss, reduction, pred_costs.dim() == 1)


class FenchelYoungLoss(nn.Module):
    r"""Module form of [fenchel_young_loss][combgrad.losses.fenchel_young.fenchel_young_loss].

    Args:
        oracle: an argmin oracle (minimization; for a maximization problem pass negated
            costs).
        sigma: noise scale $\sigma > 0$.
        n_samples: Monte-Carlo samples per item.
        noise: `"normal"` or `"gumbel"`.
        generator: optional `torch.Generator`, advanced at every call.
        reduction: `"mean"` (over items), `"sum"` or `"none"`.

    Shape:
        `pred_costs`, `true_solutions`: `(B, n)` or `(n,)`. Output: scalar, or `(B,)` with
        `reduction="none"`.

    Examples:
        ```python
        import torch
        import solvers
        from combgrad.losses import FenchelYoungLoss

        lp = solvers.LinearProgram([0.0] * 4, A_eq=[[1.0] * 4], b_eq=[1.0], bounds=(0, 1))
        oracle = solvers.Oracle.from_problem(lp)
        true_costs = torch.rand(8, 4)
        targets = torch.as_tensor(oracle.solve(true_costs.double().numpy())[0])
        criterion = FenchelYoungLoss(oracle, sigma=0.5, n_samples=4)
        pred = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
        criterion(pred, targets).backward()
        ```
    """

    def __init__(
        self,
        oracle: Any,
        sigma: float = 1.0,
        n_samples: int = 1,
        noise: str = "normal",
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_oracle(oracle)
        self.sigma = check_positive(sigma, "sigma")
        self.n_samples = check_n_samples(n_samples)
        check_noise(noise)
        check_reduction(reduction)
        self.oracle, self.noise, self.generator, self.reduction = (
            oracle,
            noise,
            generator,
            reduction,
        )

    def forward(self, pred_costs: torch.Tensor, true_solutions: torch.Tensor) -> torch.Tensor:
        return fenchel_young_loss(
            pred_costs,
            true_solutions,
            self.oracle,
            self.sigma,
            self.n_samples,
            self.noise,
            self.generator,
            self.reduction,
        )
