"""Weakly supervised learning from unordered label sets: the exact bipartite-matching loss."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import solvers

from ._common import (
    check_finite_or_neg_inf,
    check_index_tensor,
    check_log_probs,
    check_reduction,
    check_solver,
    reduce_loss,
)
from ._gather import gather_rows

__all__ = ["MatchingLoss", "matching_loss"]


def _compact(valid: torch.Tensor) -> torch.Tensor:
    """Order that moves the valid entries of each row first (stable)."""
    return torch.argsort((~valid).to(torch.int8), dim=1, stable=True)


def _indicator_lp(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, backend: str) -> np.ndarray:
    indicator = np.zeros(cost.shape, dtype=bool)
    for b in range(cost.shape[0]):
        block = cost[b, : rows[b], : cols[b]]
        if block.size == 0:
            continue
        sol = solvers.solve(solvers.assignment_lp(block), backend)
        if not sol.success:
            raise solvers.SolverError(f"matching_loss: bag {b}: {sol.message}")
        indicator[b, : rows[b], : cols[b]] = sol.x.reshape(block.shape) > 0.5
    return indicator


def matching_loss(
    log_probs: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
    solver: str = "exact",
    backend: str = "highs",
) -> torch.Tensor:
    r"""Exact minimum-cost matching of each bag's labels to its instances.

    Each bag holds ``k`` instances (e.g. faces in a photo) and an unordered multiset of
    ``L_b <= k_b`` class labels (the names in its caption). The loss of a bag is

    .. math::

        \ell_b = \min_{\sigma} \sum_{l=1}^{L_b} -\log p(y_{b,l} \mid x_{b,\sigma(l)}),

    over injective assignments :math:`\sigma` of labels to distinct real instances;
    instances left over cost nothing. Its generalized gradient with respect to the cost
    matrix is the optimal assignment's 0/1 indicator, so backpropagation is cross-entropy
    on the currently best-matching pseudo-labels, with no surrogate.

    Ties are broken deterministically by the compiled assignment kernel of
    `solvers.combinatorial` (or the LP backend's vertex with ``solver="lp"``); the
    indicator returned is an optimal vertex, hence a valid element of the generalized
    gradient.

    Args:
        log_probs: (B, k, C) per-instance log-probabilities (e.g. ``log_softmax``).
            ``-inf`` forbids a pair; NaN and ``+inf`` are errors.
        labels: (B, L) integer class ids of each bag, padded with ``ignore_index``
            (repeats allowed: a multiset).
        mask: (B, k) bool, True for real instances (default: all real).
        reduction: ``"mean"`` (sum over bags / number of matched labels), ``"sum"``,
            or ``"none"`` (shape (B,)).
        ignore_index: label value marking padding.
        solver: ``"exact"`` (Hungarian algorithm, batched) or ``"lp"`` (the assignment LP
            through ``backend``); both give identical values and gradients.
        backend: a `solvers` backend name, used with ``solver="lp"``.

    Returns:
        The reduced loss (scalar), or (B,) with ``reduction="none"``.

    Raises:
        ValueError: shapes, dtypes, out-of-range labels, NaN/+inf, more labels than
            real instances in a bag, or a bag whose labels cannot all be matched to
            instances of nonzero probability (messages name the argument and bag).
    """
    check_reduction(reduction)
    check_solver(solver)
    check_log_probs(log_probs, "(B, k, C)")
    B, k, C = log_probs.shape
    check_index_tensor(labels, "labels", B, "class ids")
    check_finite_or_neg_inf(log_probs, "log_probs")
    labels = labels.to(log_probs.device)
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
    compacted = not (bool(label_valid.all()) and bool(inst_valid.all()))
    if compacted:
        label_order = _compact(label_valid)
        inst_order = _compact(inst_valid)
        compact_labels = labels.gather(1, label_order).clamp(0, C - 1)  # padding -> any class
    else:  # nothing padded or masked: the common training case skips the compaction
        compact_labels = labels
    rows = n_labels.cpu().numpy()
    cols = n_inst.cpu().numpy()
    if solver == "exact":
        # The kernel reads cost[b, l, i] = -log_probs[b, inst_order[b, i], label l] itself:
        # no dense (B, L, k) float64 cost tensor is built or copied.
        scores = log_probs.detach().to("cpu")
        if scores.dtype not in (torch.float32, torch.float64):  # e.g. bfloat16: no numpy view
            scores = scores.double()
        values, matched, _ = solvers.assignment_batch_gather(
            scores.numpy(),
            compact_labels.to("cpu").numpy(),
            inst_order.to("cpu").numpy() if compacted else None,
            row_counts=rows,
            col_counts=cols,
        )
        infeasible = ~np.isfinite(values)
        if infeasible.any():
            b = int(np.flatnonzero(infeasible)[0])
            raise ValueError(
                f"bag {b}: its labels cannot all be matched to instances of nonzero probability "
                "(log_probs is -inf on every complete matching)."
            )
    else:
        with torch.no_grad():
            # cost[b, l, i] = -log p(label l | instance i); valid labels and instances first.
            compact_lp = (
                log_probs.gather(1, inst_order[:, :, None].expand(B, k, C))
                if compacted
                else log_probs
            )
            cost = -compact_lp.gather(2, compact_labels[:, None, :].expand(B, k, L)).transpose(1, 2)
            cost_np = cost.to("cpu", torch.float64).numpy()
        indicator = _indicator_lp(cost_np, rows, cols, backend)
        matched = np.where(indicator.any(2), indicator.argmax(2), -1)
    # The loss is the sum of the matched entries, gathered straight from `log_probs`: its
    # gradient is the optimal assignment's indicator, with no dense cost tensor in the graph.
    matched_t = torch.from_numpy(matched).to(log_probs.device)  # (B, L) compact instance or -1
    is_matched = matched_t >= 0
    instance = matched_t.clamp(min=0)
    if compacted:
        instance = inst_order.gather(1, instance)
    flat_index = (instance * C + compact_labels.clamp(0, C - 1)).masked_fill(~is_matched, -1)
    per_bag = -gather_rows(log_probs.reshape(B, k * C), flat_index).sum(1)
    return reduce_loss(per_bag, reduction, n_labels.to(per_bag.dtype))


class MatchingLoss(nn.Module):
    """Module form of :func:`matching_loss` (weakly supervised learning from label bags).

    Args:
        reduction: as for :func:`matching_loss`.
        ignore_index: as for :func:`matching_loss`.
        solver: as for :func:`matching_loss`.
        backend: as for :func:`matching_loss`.

    Shape:
        - log_probs: (B, k, C); labels: (B, L); mask: (B, k) or None.
        - Output: scalar, or (B,) with ``reduction="none"``.

    Example:
        >>> loss_fn = MatchingLoss()
        >>> log_probs = torch.log_softmax(torch.randn(8, 4, 10, requires_grad=True), -1)
        >>> labels = torch.randint(0, 10, (8, 4))
        >>> loss_fn(log_probs, labels).backward()
    """

    def __init__(
        self,
        reduction: str = "mean",
        *,
        ignore_index: int = -100,
        solver: str = "exact",
        backend: str = "highs",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.solver = solver
        self.backend = backend

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
        )

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, solver={self.solver!r}"
