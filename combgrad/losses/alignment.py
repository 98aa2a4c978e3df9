"""Sequence-to-sequence training through the exact global-alignment (Needleman-Wunsch) loss."""

from __future__ import annotations

from typing import Literal

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

__all__ = ["AlignmentLoss", "alignment_loss"]


def _lengths(value: torch.Tensor | list[int], name: str, B: int, upper: int) -> torch.Tensor:
    t = torch.as_tensor(value)
    if t.dim() != 1 or t.shape[0] != B:
        raise ValueError(f"`{name}` must have shape (B,) = ({B},); got {tuple(t.shape)}.")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold integers; got {t.dtype}.")
    t = t.to("cpu", torch.int64)
    if (t < 0).any() or (t > upper).any():
        raise ValueError(f"`{name}` must lie in [0, {upper}]; got {t.tolist()}.")
    return t


def _lp_alignments(
    cost: np.ndarray,
    gap: float,
    row_gap: np.ndarray | None,
    n_len: np.ndarray,
    m_len: np.ndarray,
    backend: str,
):
    """Reference path: each item's lattice LP through a `solvers` backend."""
    B = cost.shape[0]
    match = np.zeros(cost.shape, dtype=bool)
    gaps = np.zeros(B, dtype=np.int64)
    for b in range(B):
        n, m = int(n_len[b]), int(m_len[b])
        if n == 0 or m == 0:
            gaps[b] = n + m
            continue
        gaps_b = gap if row_gap is None else (row_gap[b, :n], gap)
        sol = solvers.solve(solvers.alignment_lp(cost[b, :n, :m], gaps_b), backend)
        if not sol.success:
            raise solvers.SolverError(f"alignment_loss: item {b}: {sol.message}")
        used = sol.x > 0.5
        match[b, :n, :m] = used[: n * m].reshape(n, m)
        gaps[b] = int(used[n * m :].sum())
    return match, gaps


def alignment_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor | list[int],
    target_lengths: torch.Tensor | list[int],
    gap_cost: float | torch.Tensor = 1.0,
    reduction: str = "mean",
    *,
    cost: Literal["nll", "prob"] = "nll",
    blank: int | None = None,
    solver: str = "exact",
    backend: str = "highs",
) -> torch.Tensor:
    r"""Exact global-alignment cost between output distributions and target tokens.

    For item ``b``, the first ``T_b = input_lengths[b]`` output positions are aligned
    monotonically (no crossings) with the first ``L_b = target_lengths[b]`` target tokens.
    Matching output ``i`` with token ``j`` costs :math:`-\log p_i(y_j)` (``cost="nll"``)
    or :math:`1 - p_i(y_j)` (``cost="prob"``); every unmatched output position and every
    unmatched target token costs ``gap_cost``. The loss is the minimum total cost, found
    by dynamic programming, and its generalized gradient is the indicator of the optimal
    path's matches (plus the gap count for a learnable ``gap_cost``): no surrogate, no
    second pass.

    Tie-breaking is deterministic: walking back from the end, a match is preferred over
    leaving an output position unmatched, which is preferred over leaving a target token
    unmatched (see :func:`solvers.alignment`). The returned indicator is an optimal
    vertex of the lattice LP, hence a valid element of the generalized gradient.

    Gumbel-softmax recipe: ``y = F.gumbel_softmax(logits, tau=tau, hard=False)`` and
    ``alignment_loss(y.clamp_min(1e-12).log(), ...)``; for straight-through hard samples
    (``hard=True``) use ``cost="prob"`` on ``y.clamp_min(1e-12).log()`` so that the cost
    ``1 - p`` stays finite. Anneal ``tau`` during training.

    Args:
        log_probs: (B, T, C) log-probabilities of the output positions (batch first).
        targets: (B, L) target token ids; entries past ``target_lengths`` are ignored.
        input_lengths: (B,) valid output positions per item, as in ``torch.nn.CTCLoss``.
        target_lengths: (B,) valid target tokens per item.
        gap_cost: cost of one gap (float, or a scalar tensor, which may require grad).
        reduction: ``"mean"`` (mean over the batch of cost / target length, like CTCLoss),
            ``"sum"``, or ``"none"`` (shape (B,)).
        cost: ``"nll"`` for :math:`-\log p`, ``"prob"`` for :math:`1 - p`.
        blank: index of a blank class. When given, an unmatched output position ``i`` also
            pays the cost of emitting blank there (:math:`-\log p_i(\text{blank})`, or
            :math:`1 - p_i(\text{blank})`), so the model is trained to say "nothing" where
            it matches no token, as CTC's blank does; matches stay monotone and one-to-one.
        solver: ``"exact"`` (batched DP) or ``"lp"`` (the lattice shortest-path LP through
            ``backend``); identical values and gradients.
        backend: a `solvers` backend name, used with ``solver="lp"``.

    Returns:
        The reduced loss (scalar), or (B,) with ``reduction="none"``.
    """
    check_reduction(reduction)
    check_solver(solver)
    if cost not in ("nll", "prob"):
        raise ValueError(f"`cost` must be 'nll' or 'prob'; got {cost!r}.")
    check_log_probs(log_probs, "(B, T, C)")
    B, T, C = log_probs.shape
    check_index_tensor(targets, "targets", B, "token ids")
    L = targets.shape[1]
    n_len = _lengths(input_lengths, "input_lengths", B, T)
    m_len = _lengths(target_lengths, "target_lengths", B, L)
    valid = torch.arange(L)[None, :] < m_len[:, None]
    targets_cpu = targets.to("cpu")
    out_of_range = valid & ((targets_cpu < 0) | (targets_cpu >= C))
    if out_of_range.any():
        b, j = (int(v) for v in out_of_range.nonzero()[0])
        raise ValueError(
            f"`targets`: item {b} position {j} holds {int(targets_cpu[b, j])}, outside [0, {C})."
        )
    may_hold_neg_inf = check_finite_or_neg_inf(log_probs, "log_probs")
    if isinstance(gap_cost, torch.Tensor):
        if gap_cost.numel() != 1:
            raise ValueError(f"`gap_cost` must be a scalar; got shape {tuple(gap_cost.shape)}.")
        gap_value = float(gap_cost.detach())
    else:
        gap_value = float(gap_cost)
    if not np.isfinite(gap_value):
        raise ValueError(f"`gap_cost` must be finite; got {gap_value}.")
    if blank is not None and not (isinstance(blank, int) and 0 <= blank < C):
        raise ValueError(f"`blank` must be a class index in [0, {C}) or None; got {blank!r}.")

    def cost_of(lp: torch.Tensor) -> torch.Tensor:
        return -lp if cost == "nll" else 1.0 - lp.exp()

    token_np = targets_cpu.clamp(0, C - 1).numpy()  # padding -> any class
    with torch.no_grad():
        # Per-token costs (B, T, C): the kernel reads cost(i, j) = table[b, i, targets[b, j]]
        # as the DP visits the cell, so no dense (B, T, L) float64 cost tensor is built.
        lp_cpu = log_probs.detach().to("cpu")
        if lp_cpu.dtype not in (torch.float32, torch.float64):  # e.g. bfloat16: no numpy view
            lp_cpu = lp_cpu.double()
        # numpy, single-threaded: a torch elementwise op here is an OpenMP region.
        table = -lp_cpu.numpy() if cost == "nll" else cost_of(lp_cpu).numpy()
        row_gap_np = None
        if blank is not None:  # an unmatched position pays gap + the cost of emitting blank
            row_gap_np = gap_value + table[..., blank].astype(np.float64)
    # Padding may hold anything; an -inf log-probability inside an item makes a match
    # impossible at that cell, which the DP reads as a very large finite cost.
    if may_hold_neg_inf and cost == "nll":
        if np.isposinf(table).any():
            table = np.where(np.isposinf(table), table.dtype.type(1e30), table)
        if row_gap_np is not None and np.isposinf(row_gap_np).any():
            row_gap_np = np.where(np.isposinf(row_gap_np), 1e30, row_gap_np)
    gap_arg = gap_value if row_gap_np is None else (row_gap_np, gap_value)
    if solver == "exact":
        _, row_match, row_gaps, col_gaps = solvers.alignment_batch_gather(
            table, token_np, gap_arg, n_len.numpy(), m_len.numpy()
        )
        n_gaps = row_gaps + col_gaps
    else:
        sub_np = np.take_along_axis(table, token_np[:, None, :], 2).astype(np.float64)
        match_np, n_gaps = _lp_alignments(
            sub_np, gap_value, row_gap_np, n_len.numpy(), m_len.numpy(), backend
        )
        row_match = np.where(match_np.any(2), match_np.argmax(2), -1)
    # The loss sums the matched cells, gathered straight from `log_probs`: its gradient is
    # the optimal path's match indicator, with no dense (B, T, L) cost tensor in the graph.
    matched = row_match >= 0
    flat_np = np.where(
        matched,
        np.arange(T)[None, :] * C + np.take_along_axis(token_np, np.maximum(row_match, 0), 1),
        -1,
    )
    flat = torch.from_numpy(flat_np).to(log_probs.device)
    picked = gather_rows(log_probs.reshape(B, T * C), flat)  # 0 where unmatched
    gaps = torch.from_numpy(np.asarray(n_gaps)).to(device=log_probs.device, dtype=log_probs.dtype)
    # cost_of(0) is 0 for both costs, so the unmatched positions add nothing.
    per_item = cost_of(picked).sum(1) + gap_cost * gaps
    if blank is not None:
        in_item = np.arange(T)[None, :] < n_len.numpy()[:, None]
        unmatched = torch.from_numpy(in_item & ~matched).to(log_probs.device)
        blank_cost = cost_of(log_probs[..., blank]).masked_fill(~unmatched, 0.0)
        per_item = per_item + blank_cost.sum(1)
    if reduction == "mean":
        lengths = m_len.to(device=log_probs.device, dtype=per_item.dtype).clamp(min=1)
        return (per_item / lengths).mean()
    return reduce_loss(per_item, reduction, m_len)


class AlignmentLoss(nn.Module):
    """Module form of :func:`alignment_loss`.

    Args:
        gap_cost: as for :func:`alignment_loss`.
        reduction: as for :func:`alignment_loss`.
        cost: as for :func:`alignment_loss`.
        blank: as for :func:`alignment_loss`.
        solver: as for :func:`alignment_loss`.
        backend: as for :func:`alignment_loss`.
        learnable_gap: make ``gap_cost`` a learnable parameter.

    Shape:
        - log_probs: (B, T, C); targets: (B, L); input_lengths, target_lengths: (B,).
        - Output: scalar, or (B,) with ``reduction="none"``.
    """

    def __init__(
        self,
        gap_cost: float = 1.0,
        reduction: str = "mean",
        *,
        cost: Literal["nll", "prob"] = "nll",
        blank: int | None = None,
        solver: str = "exact",
        backend: str = "highs",
        learnable_gap: bool = False,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        if learnable_gap:
            self.gap_cost: float | nn.Parameter = nn.Parameter(torch.tensor(float(gap_cost)))
        else:
            self.gap_cost = float(gap_cost)
        self.reduction = reduction
        self.cost = cost
        self.blank = blank
        self.solver = solver
        self.backend = backend

    def forward(
        self,
        log_probs: torch.Tensor,
        targets: torch.Tensor,
        input_lengths: torch.Tensor | list[int],
        target_lengths: torch.Tensor | list[int],
    ) -> torch.Tensor:
        return alignment_loss(
            log_probs,
            targets,
            input_lengths,
            target_lengths,
            self.gap_cost,
            self.reduction,
            cost=self.cost,
            blank=self.blank,
            solver=self.solver,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return f"gap_cost={float(self.gap_cost)}, reduction={self.reduction!r}, cost={self.cost!r}"
