"""Weakly supervised learning from unordered label sets: the exact bipartite-matching loss."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import solvers

from .._compile import eager_under_compile
from ._common import (
    check_finite_or_neg_inf,
    check_index_tensor,
    check_log_probs,
    check_reduction,
    check_solver,
    empty_batch_loss,
    reduce_loss,
    warn_if_not_log_probs,
)
from ._gather import gather_rows
from .smoothing import check_smoothing, perturbation_noise

__all__ = ["MatchingLoss", "matching_loss"]


def _compact(valid: torch.Tensor) -> torch.Tensor:
    """Order that moves the valid entries of each row first (stable)."""
    return torch.argsort((~valid).to(torch.int8), dim=1, stable=True)


def _indicator_lp(
    cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, backend: str, per_bag: int = 1
) -> np.ndarray:
    indicator = np.zeros(cost.shape, dtype=bool)
    for b in range(cost.shape[0]):
        block = cost[b, : rows[b], : cols[b]]
        if block.size == 0:
            continue
        sol = solvers.solve(solvers.assignment_lp(block), backend)
        if sol.status == solvers.Status.INFEASIBLE:
            raise solvers.InfeasibleError(f"bag {b // per_bag}: {_INFEASIBLE} ({sol.message}).")
        if not sol.success:
            raise solvers.SolverError(f"matching_loss: bag {b // per_bag}: {sol.message}")
        indicator[b, : rows[b], : cols[b]] = sol.x.reshape(block.shape) > 0.5
    return indicator


_INFEASIBLE = (
    "its labels cannot all be matched to instances of nonzero probability "
    "(log_probs is -inf on every complete matching)"
)


def _raise_if_infeasible(values: np.ndarray, per_bag: int) -> None:
    infeasible = ~np.isfinite(values)
    if infeasible.any():
        b = int(np.flatnonzero(infeasible)[0]) // per_bag
        raise solvers.InfeasibleError(f"bag {b}: {_INFEASIBLE}.")


def _solve(
    cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, solver: str, backend: str, per_bag: int
) -> np.ndarray:
    """Matched compact instance per (problem, label), or -1: shape (P, L).

    `per_bag` problems in a row belong to one bag (the perturbed copies), for messages.
    """
    if solver == "exact":
        values, matched = solvers.assignment_batch(
            cost, row_counts=rows, col_counts=cols, return_indices=True
        )
        _raise_if_infeasible(values, per_bag)
        return matched
    indicator = _indicator_lp(cost, rows, cols, backend, per_bag)
    return np.where(indicator.any(2), indicator.argmax(2), -1)


def _solve_gather(
    log_probs: torch.Tensor,
    compact_labels: torch.Tensor,
    inst_order: torch.Tensor | None,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """The exact, unperturbed path: matched compact instance per (bag, label), or -1.

    The kernel reads cost[b, l, i] = -log_probs[b, inst_order[b, i], label l] itself, so
    no dense (B, L, k) float64 cost tensor is built or copied.
    """
    scores = log_probs.detach().to("cpu")
    if scores.dtype not in (torch.float32, torch.float64):  # e.g. bfloat16: no numpy view
        scores = scores.double()
    values, matched, _ = solvers.assignment_batch_gather(
        scores.numpy(),
        compact_labels.to("cpu").numpy(),
        None if inst_order is None else inst_order.to("cpu").numpy(),
        row_counts=rows,
        col_counts=cols,
    )
    _raise_if_infeasible(values, 1)
    return matched


@eager_under_compile  # the solver is not traceable: a graph break under torch.compile
def matching_loss(
    log_probs: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
    solver: str = "exact",
    backend: str = "highs",
    sigma: float = 0.0,
    n_samples: int = 1,
    noise: str = "gumbel",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Exact minimum-cost matching of each bag's labels to its instances.

    Each bag holds `k` instances (e.g. faces in a photo) and an unordered multiset of
    $L_b \le k_b$ class labels (the names in its caption). The loss of a bag is

    $$\ell_b = \min_{\pi} \sum_{l=1}^{L_b} -\log p(y_{b,l} \mid x_{b,\pi(l)}),$$

    over injective assignments $\pi$ of labels to distinct real instances; instances
    left over cost nothing. Its generalized gradient with respect to the cost matrix is the
    optimal assignment's 0/1 indicator, so backpropagation is cross-entropy on the
    currently best-matching pseudo-labels, with no surrogate.

    Ties are broken deterministically by the compiled assignment kernel of
    `solvers.combinatorial` (or the LP backend's vertex with `solver="lp"`); the
    indicator returned is an optimal vertex, hence a valid element of the generalized
    gradient.

    **Perturbed smoothing** (`sigma > 0`). Let $\theta_b$ be the bag's
    (label, instance) cost matrix $-\log p$. The loss is then the Monte-Carlo estimate
    of the smoothed value $F_\sigma(\theta) = \mathbb{E}_Z[\min_x (\theta + \sigma Z)^\top x]$
    (Berthet et al. 2020) with `n_samples` independent draws of $Z$ per bag: the mean
    over draws of the perturbed optimal value, *including* the noise term
    $\sigma Z^\top x^\star$. Its gradient is the mean of the perturbed optimal
    assignments' indicators, an unbiased estimate of $\nabla F_\sigma$. All
    $B \times$ `n_samples` perturbed problems go to the solver in one batched call. The
    noise is centred (see [perturbation_noise][combgrad.losses.smoothing.perturbation_noise]),
    so $F_\sigma \le F_0$ and `sigma = 0` is exactly the unsmoothed loss; anneal `sigma`
    to 0 with [sigma_schedule][combgrad.losses.smoothing.sigma_schedule].

    Args:
        log_probs: `(B, k, C)` per-instance log-probabilities (e.g. `log_softmax`).
            `-inf` forbids a pair; NaN and `+inf` are errors. Entries above 0, or rows
            that do not exponentiate to a distribution, trigger a one-time warning.
        labels: `(B, L)` integer class ids of each bag, padded with `ignore_index`
            (repeats allowed: a multiset). Any integer dtype.
        mask: `(B, k)` bool, True for real instances (default: all real).
        reduction: `"mean"` (sum over bags / number of matched labels), `"sum"`,
            or `"none"` (shape `(B,)`). An empty batch gives an empty tensor with
            `"none"`, 0 with `"sum"`, and a `ValueError` with `"mean"`.
        ignore_index: label value marking padding.
        solver: `"exact"` (Hungarian algorithm, batched) or `"lp"` (the assignment LP
            through `backend`). Both return optimal values and valid gradients; the
            gradients are identical where the optimal matching is unique, and may be
            different (equally optimal) vertices at ties.
        backend: a `solvers` backend name, used with `solver="lp"`.
        sigma: noise scale of the perturbed smoothing (0: the exact loss).
        n_samples: noise draws per bag when `sigma > 0`.
        noise: `"gumbel"` (centred) or `"normal"`.
        generator: a `torch.Generator` for reproducible noise.

    Returns:
        The reduced loss (scalar), or `(B,)` with `reduction="none"`.

    Raises:
        ValueError: shapes, dtypes, out-of-range labels, NaN/+inf, more labels than
            real instances in a bag, bad smoothing options, or `reduction="mean"` on an
            empty batch (messages name the argument and bag).
        solvers.InfeasibleError: a bag whose labels cannot all be matched to instances of
            nonzero probability (the same error with either `solver`; the message names
            the bag).
    """
    check_reduction(reduction)
    check_solver(solver)
    sigma, n_samples = check_smoothing(sigma, n_samples, noise, generator)
    check_log_probs(log_probs, "(B, k, C)")
    B, k, C = log_probs.shape
    check_index_tensor(labels, "labels", B, "class ids")
    check_finite_or_neg_inf(log_probs, "log_probs")
    labels = labels.to(device=log_probs.device, dtype=torch.int64)
    label_valid = labels != ignore_index
    bad = label_valid & ((labels < 0) | (labels >= C))
    if bad.any():
        b, l = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"`labels`: bag {b} position {l} holds {int(labels[b, l])}, outside [0, {C}) "
            f"and not ignore_index={ignore_index}."
        )
    if mask is None:
        inst_valid = torch.ones(B, k, dtype=torch.bool, device=log_probs.device)
    else:
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (B, k):
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask)
            raise ValueError(f"`mask` must have shape (B, k) = ({B}, {k}); got {shape}.")
        inst_valid = mask.to(device=log_probs.device, dtype=torch.bool)

    L = labels.shape[1]
    n_labels = label_valid.sum(1)
    n_inst = inst_valid.sum(1)
    too_many = n_labels > n_inst
    if too_many.any():
        b = int(too_many.nonzero()[0, 0])
        raise ValueError(
            f"bag {b} has {int(n_labels[b])} labels but only {int(n_inst[b])} real instances: "
            "each label must be matched to a distinct instance."
        )
    if B == 0:
        return empty_batch_loss(log_probs, reduction, "log_probs")
    warn_if_not_log_probs(log_probs, inst_valid, "log_probs")
    if L == 0 or k == 0:  # no labels to match (k = 0 forces L_b = 0): every bag costs 0
        per_bag = log_probs.reshape(B, k * C)[:, :0].sum(1)
        return reduce_loss(per_bag, reduction, n_labels.to(per_bag.dtype))
    compacted = not (bool(label_valid.all()) and bool(inst_valid.all()))
    if compacted:
        label_order = _compact(label_valid)
        inst_order = _compact(inst_valid)
        compact_labels = labels.gather(1, label_order).clamp(0, C - 1)  # padding -> any class
    else:  # nothing padded or masked: the common training case skips the compaction
        compact_labels = labels
    rows = n_labels.cpu().numpy()
    cols = n_inst.cpu().numpy()
    S = n_samples if sigma > 0.0 else 1
    noise_value = None
    if sigma == 0.0 and solver == "exact":  # the common case: costs read from log_probs
        matched = _solve_gather(
            log_probs, compact_labels, inst_order if compacted else None, rows, cols
        )
    else:
        with torch.no_grad():
            # cost[b, l, i] = -log p(label l | instance i); valid labels and instances first.
            compact_lp = (
                log_probs.gather(1, inst_order[:, :, None].expand(B, k, C))
                if compacted
                else log_probs
            )
            cost = -compact_lp.gather(2, compact_labels[:, None, :].expand(B, k, L))
            cost_np = cost.transpose(1, 2).to("cpu", torch.float64).numpy()
        if sigma > 0.0:
            # S perturbed copies of every bag, solved in one batched call: problem b * S + s.
            z = perturbation_noise((B, S, L, k), noise, generator).numpy()
            perturbed = (cost_np[:, None] + sigma * z).reshape(B * S, L, k)
            matched = _solve(perturbed, np.repeat(rows, S), np.repeat(cols, S), solver, backend, S)
            hit = matched >= 0
            z_flat = z.reshape(B * S, L, k)
            z_picked = np.take_along_axis(z_flat, np.maximum(matched, 0)[:, :, None], 2)[..., 0]
            noise_value = sigma * np.where(hit, z_picked, 0.0).sum(1).reshape(B, S).mean(1)
            matched = matched.reshape(B, S * L)
            compact_labels = compact_labels.repeat(1, S)  # column s * L + l holds label l
        else:
            matched = _solve(cost_np, rows, cols, solver, backend, 1)
    # The loss is the sum of the matched entries, gathered straight from `log_probs`: its
    # gradient is the optimal assignment's indicator, with no dense cost tensor in the graph.
    matched_t = torch.from_numpy(matched).to(log_probs.device)  # (B, S*L) compact instance or -1
    is_matched = matched_t >= 0
    instance = matched_t.clamp(min=0)
    if compacted:
        instance = inst_order.gather(1, instance)
    flat_index = instance * C + compact_labels.clamp(0, C - 1)
    if S == 1:  # each (instance, class) cell is picked at most once: a scatter backward
        per_bag = -gather_rows(log_probs.reshape(B, k * C), flat_index.masked_fill(~is_matched, -1))
        per_bag = per_bag.sum(1)
    else:  # perturbed copies may pick one cell several times: an accumulating gather
        picked = log_probs.reshape(B, k * C).gather(1, flat_index)
        per_bag = -picked.masked_fill(~is_matched, 0.0).sum(1)
    if noise_value is not None:
        per_bag = per_bag / S + torch.from_numpy(noise_value).to(per_bag)
    return reduce_loss(per_bag, reduction, n_labels.to(per_bag.dtype))


class MatchingLoss(nn.Module):
    """Module form of [matching_loss][combgrad.losses.matching.matching_loss].

    Every argument is validated here, at construction. `sigma` is a plain attribute that
    a training loop may change between steps (e.g. with
    [sigma_schedule][combgrad.losses.smoothing.sigma_schedule]).

    Args:
        reduction: as for `matching_loss`.
        ignore_index: as for `matching_loss`.
        solver: as for `matching_loss`.
        backend: as for `matching_loss`.
        sigma: as for `matching_loss`.
        n_samples: as for `matching_loss`.
        noise: as for `matching_loss`.
        generator: as for `matching_loss`.

    Shape:
        - log_probs: `(B, k, C)`; labels: `(B, L)`; mask: `(B, k)` or None.
        - Output: scalar, or `(B,)` with `reduction="none"`.

    Examples:
        ```python
        import torch
        from combgrad import MatchingLoss

        loss_fn = MatchingLoss()
        log_probs = torch.randn(8, 4, 10, requires_grad=True).log_softmax(-1)
        labels = torch.randint(0, 10, (8, 4))
        loss_fn(log_probs, labels).backward()
        ```
    """

    def __init__(
        self,
        reduction: str = "mean",
        *,
        ignore_index: int = -100,
        solver: str = "exact",
        backend: str = "highs",
        sigma: float = 0.0,
        n_samples: int = 1,
        noise: str = "gumbel",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        check_solver(solver)
        if not isinstance(backend, str):
            raise TypeError(f"`backend` must be a backend name; got {type(backend).__name__}.")
        sigma, n_samples = check_smoothing(sigma, n_samples, noise, generator)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.solver = solver
        self.backend = backend
        self.sigma = sigma
        self.n_samples = n_samples
        self.noise = noise
        self.generator = generator

    def forward(
        self, log_probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return matching_loss(
            log_probs,
            labels,
            mask,
            self.reduction,
            ignore_index=self.ignore_index,
            solver=self.solver,
            backend=self.backend,
            sigma=self.sigma,
            n_samples=self.n_samples,
            noise=self.noise,
            generator=self.generator,
        )

    def extra_repr(self) -> str:
        text = f"reduction={self.reduction!r}, solver={self.solver!r}"
        if self.sigma > 0:
            text += f", sigma={self.sigma}, n_samples={self.n_samples}, noise={self.noise!r}"
        return text
