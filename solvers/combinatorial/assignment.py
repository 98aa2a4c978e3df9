r"""Linear assignment (weighted bipartite matching): exact solver, batched solver and its LP.

For a cost matrix $C \in \mathbb{R}^{n \times m}$ the problem is

$$
\min_{x \ge 0} \sum_{ij} C_{ij} x_{ij}
\quad \text{s.t.} \quad
\sum_j x_{ij} = 1 \;\; (i < n), \qquad \sum_i x_{ij} \le 1 \;\; (j < m)
$$

when $n \le m$ (every row is matched; rows and columns swap roles when
$n > m$, and both families are equalities when $n = m$). The constraint
matrix is a bipartite incidence matrix, hence totally unimodular, so the LP optimum is
a 0/1 matching and equals the Hungarian-algorithm optimum
(`scipy.optimize.linear_sum_assignment`).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import maximum_bipartite_matching

from ..problem import LinearProgram
from ..result import Solution, Status
from ._common import as_float_array, as_lengths

__all__ = ["assignment", "assignment_batch", "assignment_lp"]

_BACKEND = "assignment"

_MIN_CELLS_PER_THREAD = 50_000  # below this, thread hand-off costs more than it saves
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="assignment")
        return _POOL


def _chunks(batch: int, cells: int, threads: int | None) -> list[tuple[int, int]]:
    if threads is None:
        threads = min(os.cpu_count() or 1, 8, max(1, batch * cells // _MIN_CELLS_PER_THREAD))
    elif not isinstance(threads, int) or threads < 1:
        raise ValueError(f"`threads` must be a positive integer or None; got {threads!r}.")
    threads = max(1, min(threads, batch))
    edges = np.linspace(0, batch, threads + 1).astype(int)
    return [(int(lo), int(hi)) for lo, hi in itertools.pairwise(edges)]


def _solve_items(
    arr: np.ndarray, n_len: np.ndarray, m_len: np.ndarray, maximize: bool, lo: int, hi: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Items lo..hi-1, one linear_sum_assignment call each."""
    # No validation pass over the whole batch: linear_sum_assignment rejects NaN and the
    # wrong infinity itself, and only then do we look at the item to say what is wrong.
    rows_per_item: list[np.ndarray] = []
    cols_per_item: list[np.ndarray] = []
    infeasible: list[int] = []
    empty = np.zeros(0, dtype=np.int64)
    for b in range(lo, hi):
        nb, mb = int(n_len[b]), int(m_len[b])
        try:
            r, c = linear_sum_assignment(arr[b, :nb, :mb], maximize=maximize)
        except ValueError:
            block = arr[b, :nb, :mb]
            _check_values(block, maximize, "costs", f" (item {b})")
            if not _is_infeasible(block, maximize):
                raise
            infeasible.append(b)
            r = c = empty
        rows_per_item.append(r)
        cols_per_item.append(c)
    return rows_per_item, cols_per_item, infeasible


def _check_cost(cost: Any, maximize: bool, name: str = "cost") -> np.ndarray:
    arr = as_float_array(cost, name, 2)
    if arr.size == 0:
        raise ValueError(f"`{name}` must be non-empty; got shape {arr.shape}.")
    _check_values(arr, maximize, name)
    return arr


def _check_values(arr: np.ndarray, maximize: bool, name: str, where: str = "") -> None:
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` must not contain NaN{where}.")
    # +inf marks a forbidden pair when minimising (-inf when maximising); the other
    # infinity would make every matching through it infinitely good, which is meaningless.
    wrong_inf = np.inf if maximize else -np.inf
    if (arr == wrong_inf).any():
        allowed = "-inf" if maximize else "+inf"
        raise ValueError(
            f"`{name}` must not contain {'+inf' if maximize else '-inf'}{where}; "
            f"forbidden pairs are marked with {allowed} when maximize={maximize}."
        )


def _is_infeasible(cost: np.ndarray, maximize: bool) -> bool:
    """True when the allowed (finite) pairs admit no matching of the smaller side."""
    allowed = sp.csr_array(np.isfinite(cost).astype(np.int8))
    matched = maximum_bipartite_matching(allowed, perm_type="column")
    return int((matched >= 0).sum()) < min(cost.shape)


def assignment(cost: Any, *, maximize: bool = False) -> Solution:
    """Solve one linear assignment problem exactly (Hungarian / shortest augmenting path).

    The returned `Solution` has `backend="assignment"` and

    * `x`: shape (n * m,), the 0/1 indicator of the matched pairs in row-major
      order (`x[i * m + j]`), the variable order of `assignment_lp`;
    * `objective`: total cost (or value, when `maximize`) of the matching;
    * `info["rows"]`, `info["cols"]`: matched index pairs, int64, sorted by row;
    * `status`: `Status.OPTIMAL`, or `Status.INFEASIBLE` (`x=None`, objective
      `+inf`, or `-inf` when maximising) when the forbidden pairs leave no
      full matching;
    * `duals_ub`, `duals_eq`: None.

    Args:
        cost: cost matrix, shape (n, m), rectangular allowed; every row of the smaller
            side is matched. Forbidden pairs are `+inf` (`-inf` when `maximize`).
        maximize: maximise the total instead of minimising it.

    Returns:
        The optimal matching (or the infeasibility status) as a `Solution`.

    Raises:
        ValueError: naming `cost` when it is not 2-D, is empty, holds NaN, or holds
            the wrong infinity (`-inf` when minimising, `+inf` when maximising).

    Example:
        ```python
        from solvers import assignment

        sol = assignment([[4.0, 1.0], [2.0, 3.0]])
        print((sol.objective, sol.info["cols"].tolist()))  # (3.0, [1, 0])
        ```
    """
    arr = _check_cost(cost, maximize)
    start = time.perf_counter()
    try:
        rows, cols = linear_sum_assignment(arr, maximize=maximize)
    except ValueError:
        if not _is_infeasible(arr, maximize):
            raise
        return Solution(
            status=Status.INFEASIBLE,
            x=None,
            objective=-np.inf if maximize else np.inf,
            backend=_BACKEND,
            message="The forbidden pairs leave no matching that covers the smaller side.",
            solve_time=time.perf_counter() - start,
        )
    x = np.zeros(arr.shape, dtype=np.float64)
    x[rows, cols] = 1.0
    # Sequential sum, the same order as `assignment_batch`'s bincount, so both agree bit for bit.
    objective = float(np.cumsum(arr[rows, cols])[-1])
    return Solution(
        status=Status.OPTIMAL,
        x=x.reshape(-1),
        objective=objective,
        backend=_BACKEND,
        message="Optimal solution found.",
        solve_time=time.perf_counter() - start,
        info={"rows": rows.astype(np.int64), "cols": cols.astype(np.int64)},
    )


def assignment_lp(cost: Any, *, maximize: bool = False) -> LinearProgram:
    """The assignment problem as a `LinearProgram`, with the variable order of `assignment`.

    Variables are `x[i * m + j]` (row-major), `0 <= x`. The smaller side's
    coverage constraints are equalities (`A_eq`, `b_eq = 1`) and the larger side's
    are `<= 1` (`A_ub`); a square matrix has all `2n` rows as equalities (one of
    them is redundant). Rows come first, then columns.

    Forbidden pairs (`+inf`, or `-inf` when `maximize`) get `c = 0` and the
    bounds `0 <= x <= 0`. The LP is always a minimisation: when `maximize` is set
    its `c` is `-cost`, so the LP optimum is the *negated* assignment value.

    Args:
        cost: cost matrix, shape (n, m).
        maximize: build the LP of the maximisation problem (`c = -cost`).

    Returns:
        A continuous `LinearProgram` with `n * m` variables.

    Raises:
        ValueError: as `assignment`.
    """
    arr = _check_cost(cost, maximize)
    n, m = arr.shape
    forbidden = ~np.isfinite(arr).reshape(-1)
    c = (-arr if maximize else arr).reshape(-1).copy()
    c[forbidden] = 0.0
    bounds = np.zeros((n * m, 2))
    bounds[:, 1] = np.where(forbidden, 0.0, np.inf)

    var = np.arange(n * m)
    row_of, col_of = np.divmod(var, m)
    ones = np.ones(n * m)
    row_cover = sp.csr_array((ones, (row_of, var)), shape=(n, n * m))
    col_cover = sp.csr_array((ones, (col_of, var)), shape=(m, n * m))
    if n == m:
        return LinearProgram(
            c, A_eq=sp.vstack([row_cover, col_cover]), b_eq=np.ones(2 * n), bounds=bounds
        )
    eq, ub = (row_cover, col_cover) if n < m else (col_cover, row_cover)
    return LinearProgram(
        c, A_ub=ub, b_ub=np.ones(ub.shape[0]), A_eq=eq, b_eq=np.ones(eq.shape[0]), bounds=bounds
    )


def assignment_batch(
    costs: Any,
    *,
    maximize: bool = False,
    row_counts: Any = None,
    col_counts: Any = None,
    return_indices: bool = False,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve a batch of (possibly ragged) assignment problems.

    Item `b` is the top-left block `costs[b, :row_counts[b], :col_counts[b]]`;
    entries outside it are padding and are never read (they may hold anything,
    NaN included). The per-item work is exactly one `linear_sum_assignment` call;
    everything else is vectorised over the batch.

    Args:
        costs: shape (B, N, M). Forbidden pairs as in `assignment`.
        maximize: maximise every item's total instead of minimising it.
        row_counts: valid rows per item, shape (B,), integers in [0, N]; None = all N.
        col_counts: valid columns per item, shape (B,), integers in [0, M]; None = all M.
        return_indices: return each row's matched column instead of the dense indicator
            (cheaper when the caller only gathers the matched entries).
        threads: solve slices of the batch in this many threads (the Hungarian solver
            releases the GIL). None picks up to `os.cpu_count()` (at most 8) for batches
            large enough to pay for it; 1 solves serially. Results do not depend on it.

    Returns:
        values: float64, shape (B,), each item's optimal total (0 for an item with no
            rows or no columns; `+inf`, or `-inf` when maximising, for an
            infeasible item).
        indicator: bool, shape (B, N, M), True on the matched pairs (all False on
            padding and for infeasible items). `indicator[b].reshape(-1)` of an
            unpadded item equals `assignment(costs[b]).x`.
            With `return_indices=True`, instead `matched`: int64, shape (B, N), the
            column matched to each row, or -1 (unmatched row, padding, infeasible item).

    Raises:
        ValueError: naming `costs` (wrong ndim, NaN or the wrong infinity inside an
            item), `row_counts` or `col_counts` (wrong shape, not integers, out of
            range).
    """
    arr = as_float_array(costs, "costs", 3)
    batch, n_max, m_max = arr.shape
    n_len = as_lengths(row_counts, "row_counts", batch, n_max)
    m_len = as_lengths(col_counts, "col_counts", batch, m_max)
    chunks = _chunks(batch, n_max * m_max, threads)
    if len(chunks) == 1:
        rows_per_item, cols_per_item, infeasible = _solve_items(
            arr, n_len, m_len, maximize, 0, batch
        )
    else:
        # linear_sum_assignment releases the GIL: threads solve disjoint slices of the batch.
        pool = _thread_pool(len(chunks))
        parts = [
            pool.submit(_solve_items, arr, n_len, m_len, maximize, lo, hi) for lo, hi in chunks
        ]
        rows_per_item, cols_per_item, infeasible = [], [], []
        for part in parts:
            r, c, bad = part.result()
            rows_per_item += r
            cols_per_item += c
            infeasible += bad
    empty = np.zeros(0, dtype=np.int64)
    sizes = np.fromiter((r.shape[0] for r in rows_per_item), dtype=np.int64, count=batch)
    item = np.repeat(np.arange(batch), sizes)
    rows = np.concatenate(rows_per_item) if batch else empty
    cols = np.concatenate(cols_per_item) if batch else empty
    # bincount returns int64 when no item has a match; values must be float (inf for infeasible).
    values = np.bincount(item, weights=arr[item, rows, cols], minlength=batch).astype(np.float64)
    if infeasible:
        values[infeasible] = -np.inf if maximize else np.inf
    if return_indices:
        matched = np.full((batch, n_max), -1, dtype=np.int64)
        matched[item, rows] = cols
        return values, matched
    indicator = np.zeros(arr.shape, dtype=bool)
    # One flat index into the fresh (contiguous) indicator: cheaper than three.
    indicator.reshape(-1)[(item * n_max + rows) * m_max + cols] = True
    return values, indicator
