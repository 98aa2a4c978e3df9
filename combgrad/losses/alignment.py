"""Sequence-to-sequence training through the exact global-alignment (Needleman-Wunsch) loss."""

from __future__ import annotations

from typing import Literal

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

__all__ = ["AlignmentLoss", "alignment_loss"]


def _lengths(value: torch.Tensor | list[int], name: str, B: int, upper: int) -> torch.Tensor:
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"`{name}` must be a (B,) sequence of integers; got {value!r}.") from exc
    if isinstance(value, list | tuple) and len(value) == 0:
        t = t.to(torch.int64)  # torch.as_tensor([]) is float
    if t.dim() != 1 or t.shape[0] != B:
        raise ValueError(f"`{name}` must have shape (B,) = ({B},); got {tuple(t.shape)}.")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
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
    # Forbidden cells (_FORBIDDEN, from -inf log-probabilities) would wreck the LP's
    # numerics: give them a cost larger than any path of finite cells instead. The caller
    # flags paths through them from the original costs.
    finite = [a[a < _FORBIDDEN] for a in (cost, row_gap) if a is not None]
    scale = max([1.0, abs(gap)] + [float(np.abs(a).max()) for a in finite if a.size])
    big = 1e3 * scale * (cost.shape[1] + cost.shape[2] + 1)
    cost = np.where(cost >= _FORBIDDEN, big, cost)
    if row_gap is not None:
        row_gap = np.where(row_gap >= _FORBIDDEN, big, row_gap)
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
        if not sol.success:  # the lattice always has a path: a failure is the backend's
            raise solvers.SolverError(f"alignment_loss: item {b}: {sol.message}")
        used = sol.x > 0.5
        match[b, :n, :m] = used[: n * m].reshape(n, m)
        gaps[b] = int(used[n * m :].sum())
    return match, gaps


_FORBIDDEN = 1e30  # the finite stand-in for an impossible match (log-probability -inf)


def _layout_error(shape: tuple[int, ...], n_items: int, batch_first: bool) -> ValueError:
    layout = "(B, T, C)" if batch_first else "(T, B, C)"
    text = (
        f"`log_probs` must have layout {layout} (batch_first={batch_first}); got shape "
        f"{shape}, whose batch dimension {shape[0 if batch_first else 1]} does not match "
        f"len(input_lengths) = {n_items}."
    )
    if shape[1 if batch_first else 0] == n_items:
        other = "(T, B, C)" if batch_first else "(B, T, C)"
        text += f" It looks {other}: pass batch_first={not batch_first}."
    return ValueError(text)


def _padded_targets(
    targets: object, target_lengths: torch.Tensor | list[int], B: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) int64 targets and (B,) lengths, from (B, L) or CTC's 1-D concatenated form."""
    if isinstance(targets, torch.Tensor) and targets.dim() == 1:
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"`targets` must hold integer token ids; got {targets.dtype}.")
        m_len = _lengths(target_lengths, "target_lengths", B, targets.numel())
        if int(m_len.sum()) != targets.numel():
            raise ValueError(
                "1-D (concatenated) `targets` must hold sum(target_lengths) = "
                f"{int(m_len.sum())} tokens; got {targets.numel()}."
            )
        L = int(m_len.max()) if B else 0
        padded = targets.new_zeros((B, L), dtype=torch.int64)
        valid = torch.arange(L)[None, :] < m_len[:, None]
        padded[valid.to(targets.device)] = targets.to(torch.int64)
        return padded, m_len
    check_index_tensor(targets, "targets", B, "token ids")
    m_len = _lengths(target_lengths, "target_lengths", B, targets.shape[1])
    return targets.to(torch.int64), m_len


@eager_under_compile  # the solver is not traceable: a graph break under torch.compile
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
    batch_first: bool = True,
    zero_infinity: bool = False,
    sigma: float = 0.0,
    n_samples: int = 1,
    noise: str = "gumbel",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Exact global-alignment cost between output distributions and target tokens.

    For item $b$, the first $T_b$ = `input_lengths[b]` output positions are aligned
    monotonically (no crossings) with the first $L_b$ = `target_lengths[b]` target tokens.
    Matching output $i$ with token $j$ costs $-\log p_i(y_j)$ (`cost="nll"`) or
    $1 - p_i(y_j)$ (`cost="prob"`); every unmatched output position and every unmatched
    target token costs `gap_cost`. The loss is the minimum total cost, found by dynamic
    programming, and its generalized gradient is the indicator of the optimal path's
    matches (plus the gap count for a learnable `gap_cost`): no surrogate, no second pass.

    Tie-breaking is deterministic: walking back from the end, a match is preferred over
    leaving an output position unmatched, which is preferred over leaving a target token
    unmatched (see `solvers.alignment`). The returned indicator is an optimal vertex of
    the lattice LP, hence a valid element of the generalized gradient.

    **Coming from `torch.nn.CTCLoss`.** Pass `batch_first=False` for CTC's time-first
    `(T, B, C)` log-probabilities; `targets` may be CTC's 1-D concatenation of all
    target sequences (length `sum(target_lengths)`), and `zero_infinity=True` gives an
    item with no finite alignment a loss of 0 and a zero gradient instead of an error.

    **Perturbed smoothing** (`sigma > 0`). The match costs $\theta$ (the $(T, L)$ matrix of
    $-\log p_i(y_j)$ or $1 - p_i(y_j)$) are perturbed to $\theta + \sigma Z$ with
    `n_samples` independent draws per item; gap (and blank) costs stay as given. The loss
    is the Monte-Carlo estimate of $F_\sigma(\theta) = \mathbb{E}_Z[\min_x (\theta +
    \sigma Z)^\top x + \text{gaps}(x)]$ (Berthet et al. 2020): the mean over draws of the
    perturbed optimal cost, noise term included. Its gradient is the mean of the
    perturbed optimal paths' indicators, unbiased for $\nabla F_\sigma$. All
    $B \times$ `n_samples` perturbed problems are solved in one batched call. `sigma = 0`
    is exactly the unsmoothed loss; see
    [sigma_schedule][combgrad.losses.smoothing.sigma_schedule] to anneal it.

    Gumbel-softmax recipe: `y = F.gumbel_softmax(logits, tau=tau, hard=False)` and
    `alignment_loss(y.clamp_min(1e-12).log(), ...)`; for straight-through hard samples
    (`hard=True`) use `cost="prob"` on `y.clamp_min(1e-12).log()` so that the cost
    $1 - p$ stays finite. Anneal `tau` during training.

    Args:
        log_probs: `(B, T, C)` log-probabilities of the output positions, or `(T, B, C)`
            with `batch_first=False`. `-inf` forbids a match; NaN and `+inf` are errors.
            Entries above 0, or rows that do not exponentiate to a distribution, trigger
            a one-time warning.
        targets: `(B, L)` target token ids (entries past `target_lengths` are ignored), or
            1-D concatenated targets of length `sum(target_lengths)`. Any integer dtype.
        input_lengths: `(B,)` valid output positions per item, as in `torch.nn.CTCLoss`.
        target_lengths: `(B,)` valid target tokens per item.
        gap_cost: cost of one gap, >= 0 (float, or a one-element tensor, which may require
            grad).
        reduction: `"mean"` (mean over the batch of cost / target length, like CTCLoss),
            `"sum"`, or `"none"` (shape `(B,)`). An empty batch gives an empty tensor with
            `"none"`, 0 with `"sum"`, and a `ValueError` with `"mean"`.
        cost: `"nll"` for $-\log p$, `"prob"` for $1 - p$.
        blank: index of a blank class. When given, an unmatched output position $i$ also
            pays the cost of emitting blank there ($-\log p_i(\text{blank})$, or
            $1 - p_i(\text{blank})$), so the model is trained to say "nothing" where
            it matches no token, as CTC's blank does; matches stay monotone and one-to-one.
        solver: `"exact"` (batched DP) or `"lp"` (the lattice shortest-path LP through
            `backend`). Both return optimal values and valid gradients; the gradients are
            identical where the optimal alignment is unique and may be different (equally
            optimal) vertices at ties.
        backend: a `solvers` backend name, used with `solver="lp"`.
        batch_first: True for `(B, T, C)` input (the default), False for CTCLoss's
            `(T, B, C)`.
        zero_infinity: give items with no finite alignment a zero loss and gradient
            (as CTCLoss's option) instead of raising `solvers.InfeasibleError`.
        sigma: noise scale of the perturbed smoothing (0: the exact loss).
        n_samples: noise draws per item when `sigma > 0`.
        noise: `"gumbel"` (centred) or `"normal"`.
        generator: a `torch.Generator` for reproducible noise.

    Returns:
        The reduced loss (scalar), or `(B,)` with `reduction="none"`.

    Raises:
        ValueError: shapes (the message names the expected layout), dtypes, lengths,
            out-of-range tokens, NaN/+inf, a negative or non-finite `gap_cost`, bad
            smoothing options, or `reduction="mean"` on an empty batch.
        solvers.InfeasibleError: an item with no finite alignment (only possible with
            `-inf` log-probabilities), on either `solver`, unless `zero_infinity=True`;
            the message names the item.
    """
    check_reduction(reduction)
    check_solver(solver)
    _check_cost(cost)
    sigma, n_samples = check_smoothing(sigma, n_samples, noise, generator)
    if not isinstance(batch_first, bool):
        raise TypeError(f"`batch_first` must be a bool; got {type(batch_first).__name__}.")
    check_log_probs(log_probs, "(B, T, C)" if batch_first else "(T, B, C) (batch_first=False)")
    try:
        lengths_in = torch.as_tensor(input_lengths)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"`input_lengths` must be a (B,) sequence of integers; got {input_lengths!r}."
        ) from exc
    n_items = lengths_in.shape[0] if lengths_in.dim() == 1 else None
    if not batch_first:
        log_probs = log_probs.transpose(0, 1)  # a (B, T, C) view
    B, T, C = log_probs.shape
    if n_items is not None and n_items != B:
        shape = tuple(log_probs.shape) if batch_first else (T, B, C)
        raise _layout_error(shape, n_items, batch_first)
    n_len = _lengths(input_lengths, "input_lengths", B, T)
    targets, m_len = _padded_targets(targets, target_lengths, B)
    L = targets.shape[1]
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
        gap_cost = gap_cost.reshape(())  # a (1, 1) tensor must not broadcast the output
    gap_value = _check_gap(gap_cost)
    if blank is not None and not (isinstance(blank, int) and 0 <= blank < C):
        raise ValueError(f"`blank` must be a class index in [0, {C}) or None; got {blank!r}.")
    if B == 0:
        return empty_batch_loss(log_probs, reduction, "log_probs")
    in_item_t = torch.arange(T)[None, :] < n_len[:, None]  # (B, T) real output positions
    warn_if_not_log_probs(log_probs, in_item_t.to(log_probs.device), "log_probs")

    def cost_of(lp: torch.Tensor) -> torch.Tensor:
        return -lp if cost == "nll" else 1.0 - lp.exp()

    token_np = targets_cpu.clamp(0, C - 1).numpy()  # padding -> any class
    with torch.no_grad():
        # Per-token costs (B, T, C): cost(i, j) = table[b, i, targets[b, j]]. The exact
        # kernel reads them as the DP visits each cell, so no dense (B, T, L) float64 cost
        # tensor is built on the common (unperturbed, exact) path.
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
            table = np.where(np.isposinf(table), table.dtype.type(_FORBIDDEN), table)
        if row_gap_np is not None and np.isposinf(row_gap_np).any():
            row_gap_np = np.where(np.isposinf(row_gap_np), _FORBIDDEN, row_gap_np)
    S = n_samples if sigma > 0.0 else 1
    n_np, m_np = n_len.numpy(), m_len.numpy()
    noise_value = None
    if sigma == 0.0 and solver == "exact":  # the common case: costs read from the table
        gap_arg = gap_value if row_gap_np is None else (row_gap_np, gap_value)
        _, row_match, row_gaps, col_gaps = solvers.alignment_batch_gather(
            table, token_np, gap_arg, n_np, m_np
        )
        n_gaps = row_gaps + col_gaps
    else:
        sub_np = np.take_along_axis(table, token_np[:, None, :], 2).astype(np.float64)
        if sigma > 0.0:
            # S perturbed copies of every item, solved in one batched call: problem b * S + s.
            z = perturbation_noise((B, S, T, L), noise, generator).numpy()
            solve_sub = (sub_np[:, None] + sigma * z).reshape(B * S, T, L)
            solve_row_gap = None if row_gap_np is None else np.repeat(row_gap_np, S, axis=0)
            match_np, n_gaps = _solve(
                solve_sub, gap_value, solve_row_gap, np.repeat(n_np, S), np.repeat(m_np, S),
                solver, backend,
            )  # fmt: skip
            noise_value = sigma * np.where(match_np, z.reshape(B * S, T, L), 0.0).sum((1, 2))
            noise_value = noise_value.reshape(B, S).mean(1)
        else:
            match_np, n_gaps = _solve(sub_np, gap_value, row_gap_np, n_np, m_np, solver, backend)
        # (B*S, T) column matched by each row, or -1 (argmax needs L > 0)
        row_match = np.where(match_np.any(2), match_np.argmax(2) if L else 0, -1)
    # A path through a forbidden cell (or a forbidden unmatched position) is infinite.
    item_of = np.repeat(np.arange(B), S)  # the item of each problem
    in_item = np.arange(T)[None, :] < n_np[item_of][:, None]  # (B*S, T)
    matched = row_match >= 0
    unmatched = in_item & ~matched
    # (B*S, T) token matched by each position (any token where unmatched; L may be 0)
    lookup = token_np if L else np.zeros((B, 1), dtype=token_np.dtype)
    token_at = np.take_along_axis(lookup[item_of], np.maximum(row_match, 0), 1)
    matched_cost = table[item_of[:, None], np.arange(T)[None, :], token_at]  # (B*S, T)
    bad = (matched & (matched_cost >= _FORBIDDEN)).any(1)
    if row_gap_np is not None:
        bad |= (unmatched & (row_gap_np[item_of] >= _FORBIDDEN)).any(1)
    infeasible = bad.reshape(B, S).any(1)
    if infeasible.any() and not zero_infinity:
        b = int(np.flatnonzero(infeasible)[0])
        raise solvers.InfeasibleError(
            f"item {b}: no alignment has a finite cost (log_probs is -inf on every path); "
            "pass zero_infinity=True to give such items a zero loss."
        )
    if infeasible.any():  # zero_infinity: drop the item's path, so its loss and gradient are 0
        drop = np.repeat(infeasible, S)
        matched = matched & ~drop[:, None]
        unmatched = unmatched & ~drop[:, None]
        n_gaps = np.where(drop, 0, n_gaps)
        if noise_value is not None:
            noise_value = np.where(infeasible, 0.0, noise_value)
    # The loss sums the matched cells, gathered straight from `log_probs`: its gradient is
    # the optimal path's match indicator, with no dense (B, T, L) cost tensor in the graph.
    flat_np = np.where(matched, np.arange(T)[None, :] * C + token_at, -1).reshape(B, S * T)
    flat = torch.from_numpy(flat_np).to(log_probs.device)
    table_t = log_probs.reshape(B, T * C)
    if S == 1:  # each (position, token) cell is picked at most once: a scatter backward
        picked = gather_rows(table_t, flat)  # 0 where unmatched
    else:  # perturbed copies may pick one cell several times: an accumulating gather
        picked = table_t.gather(1, flat.clamp(min=0)).masked_fill(flat < 0, 0.0)
    gaps = np.asarray(n_gaps).reshape(B, S).sum(1)
    gaps = torch.from_numpy(gaps).to(device=log_probs.device, dtype=log_probs.dtype)
    # cost_of(0) is 0 for both costs, so the unmatched positions add nothing.
    per_item = cost_of(picked).sum(1) + gap_cost * gaps
    if blank is not None:
        # How often each position is left unmatched, over the S draws.
        times = torch.from_numpy(unmatched.reshape(B, S, T).sum(1)).to(log_probs.device)
        blank_cost = cost_of(log_probs[..., blank]).masked_fill(times == 0, 0.0)
        per_item = per_item + (blank_cost * times.to(blank_cost.dtype)).sum(1)
    if noise_value is not None:
        per_item = per_item / S + torch.from_numpy(noise_value).to(per_item)
    if reduction == "mean":
        lengths = m_len.to(device=log_probs.device, dtype=per_item.dtype).clamp(min=1)
        return (per_item / lengths).mean()
    return reduce_loss(per_item, reduction, m_len)


def _check_cost(cost: object) -> None:
    if cost not in ("nll", "prob"):
        raise ValueError(f"`cost` must be 'nll' or 'prob'; got {cost!r}.")


def _check_gap(gap_cost: float | torch.Tensor) -> float:
    value = float(gap_cost.detach()) if isinstance(gap_cost, torch.Tensor) else float(gap_cost)
    if not np.isfinite(value):
        raise ValueError(f"`gap_cost` must be finite; got {value}.")
    if value < 0.0:
        raise ValueError(f"`gap_cost` must be >= 0; got {value}.")
    return value


def _solve(
    sub: np.ndarray,
    gap_value: float,
    row_gap: np.ndarray | None,
    n_len: np.ndarray,
    m_len: np.ndarray,
    solver: str,
    backend: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal path of every problem: match indicator (P, T, L) and gap count (P,)."""
    if solver == "exact":
        gap_arg = gap_value if row_gap is None else (row_gap, gap_value)
        # The serial kernel: the DP costs ~2 ns a cell, and numba's parallel (OpenMP) workers
        # keep spinning after a parallel call, slowing the torch work around the loss ~5x.
        _, match_np, row_gaps, col_gaps = solvers.alignment_batch(
            np.ascontiguousarray(sub), gap_arg, n_len, m_len, parallel=False
        )
        return match_np, row_gaps + col_gaps
    return _lp_alignments(sub, gap_value, row_gap, n_len, m_len, backend)


class AlignmentLoss(nn.Module):
    """Module form of [alignment_loss][combgrad.losses.alignment.alignment_loss].

    Every argument is validated here, at construction. `sigma` is a plain attribute that
    a training loop may change between steps (e.g. with
    [sigma_schedule][combgrad.losses.smoothing.sigma_schedule]).

    Args:
        gap_cost: as for `alignment_loss` (>= 0).
        reduction: as for `alignment_loss`.
        cost: as for `alignment_loss`.
        blank: as for `alignment_loss`.
        solver: as for `alignment_loss`.
        backend: as for `alignment_loss`.
        learnable_gap: make `gap_cost` a learnable parameter.
        batch_first: as for `alignment_loss`: True for `(B, T, C)` input, False for
            CTCLoss's `(T, B, C)`.
        zero_infinity: as for `alignment_loss`.
        sigma: as for `alignment_loss`.
        n_samples: as for `alignment_loss`.
        noise: as for `alignment_loss`.
        generator: as for `alignment_loss`.

    Shape:
        - log_probs: `(B, T, C)`, or `(T, B, C)` with `batch_first=False`; targets:
          `(B, L)` or 1-D concatenated; input_lengths, target_lengths: `(B,)`.
        - Output: scalar, or `(B,)` with `reduction="none"`.

    Examples:
        ```python
        import torch
        from combgrad import AlignmentLoss

        loss_fn = AlignmentLoss(gap_cost=1.0, blank=0, batch_first=False)   # CTCLoss layout
        log_probs = torch.randn(12, 4, 6, requires_grad=True).log_softmax(-1)  # (T, B, C)
        targets = torch.randint(1, 6, (4, 5))
        loss = loss_fn(log_probs, targets, [12, 12, 10, 9], [5, 4, 3, 5])
        loss.backward()
        ```
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
        batch_first: bool = True,
        zero_infinity: bool = False,
        sigma: float = 0.0,
        n_samples: int = 1,
        noise: str = "gumbel",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        check_solver(solver)
        _check_cost(cost)
        gap_value = _check_gap(gap_cost)
        if blank is not None and not (isinstance(blank, int) and blank >= 0):
            raise ValueError(f"`blank` must be a non-negative class index or None; got {blank!r}.")
        if not isinstance(backend, str):
            raise TypeError(f"`backend` must be a backend name; got {type(backend).__name__}.")
        for name, flag in (("batch_first", batch_first), ("zero_infinity", zero_infinity)):
            if not isinstance(flag, bool):
                raise TypeError(f"`{name}` must be a bool; got {type(flag).__name__}.")
        sigma, n_samples = check_smoothing(sigma, n_samples, noise, generator)
        if learnable_gap:
            self.gap_cost: float | nn.Parameter = nn.Parameter(torch.tensor(gap_value))
        else:
            self.gap_cost = gap_value
        self.reduction = reduction
        self.cost = cost
        self.blank = blank
        self.solver = solver
        self.backend = backend
        self.batch_first = batch_first
        self.zero_infinity = zero_infinity
        self.sigma = sigma
        self.n_samples = n_samples
        self.noise = noise
        self.generator = generator

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
            batch_first=self.batch_first,
            zero_infinity=self.zero_infinity,
            sigma=self.sigma,
            n_samples=self.n_samples,
            noise=self.noise,
            generator=self.generator,
        )

    def extra_repr(self) -> str:
        text = f"gap_cost={float(self.gap_cost)}, reduction={self.reduction!r}, cost={self.cost!r}"
        if not self.batch_first:
            text += ", batch_first=False"
        if self.sigma > 0:
            text += f", sigma={self.sigma}, n_samples={self.n_samples}, noise={self.noise!r}"
        return text
