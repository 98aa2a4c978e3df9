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

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import maximum_bipartite_matching

from ..problem import LinearProgram
from ..result import Solution, Status
from ._common import as_float_array, as_lengths, resolve_engine, run_chunks

__all__ = ["assignment", "assignment_batch", "assignment_batch_gather", "assignment_lp"]

_BACKEND = "assignment"


def _scipy_items(
    arr: np.ndarray,
    n_len: np.ndarray,
    m_len: np.ndarray,
    maximize: bool,
    lo: int,
    hi: int,
    matched: np.ndarray,
    values: np.ndarray,
    status: np.ndarray,
) -> None:
    """The "numpy" engine on items lo..hi-1: one `linear_sum_assignment` call each.

    Writes the outputs of the compiled `lsap_dense` kernel (same layout and codes).
    """
    for b in range(lo, hi):
        nb, mb = int(n_len[b]), int(m_len[b])
        values[b] = 0.0
        status[b] = _OK
        if nb == 0 or mb == 0:
            continue
        block = arr[b, :nb, :mb]
        try:
            r, c = linear_sum_assignment(block, maximize=maximize)
        except ValueError:
            # NaN, the wrong infinity, or no complete matching: told apart by the caller.
            status[b] = _BAD
            continue
        matched[b, r] = c
        # Sequential sum in row order, as the compiled kernel does.
        total = 0.0
        for x in block[r, c].tolist():
            total += x
        values[b] = total


# Status codes of an item, shared with the compiled kernels (`_numba.LSAP_*`).
_OK, _INFEASIBLE, _BAD = 0, 1, 2


def _run_batch(
    arr: np.ndarray,
    n_len: np.ndarray,
    m_len: np.ndarray,
    maximize: bool,
    engine: str | None,
    threads: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matched (B, N) int64, values (B,), status (B,) int8) of a validated dense batch."""
    batch, n_max, m_max = arr.shape
    matched = np.full((batch, n_max), -1, dtype=np.int64)
    values = np.empty(batch)
    status = np.zeros(batch, dtype=np.int8)
    if resolve_engine(engine) == "numba":
        from ._numba import lsap_dense  # lazy: numba is optional and slow to import

        def kernel(lo: int, hi: int) -> None:
            lsap_dense(arr, n_len, m_len, maximize, lo, hi, matched, values, status)
    else:

        def kernel(lo: int, hi: int) -> None:
            _scipy_items(arr, n_len, m_len, maximize, lo, hi, matched, values, status)

    run_chunks(kernel, batch, n_max * m_max, threads)
    for b in np.flatnonzero(status != _OK).tolist():
        block = arr[b, : n_len[b], : m_len[b]]
        where = f" (item {b})" if batch > 1 else ""
        _check_values(block, maximize, "costs" if batch > 1 else "cost", where)
        if status[b] == _BAD and not _is_infeasible(block, maximize):  # pragma: no cover
            raise RuntimeError(f"assignment of item {b} failed for an unknown reason")
        status[b] = _INFEASIBLE
        matched[b] = -1
        values[b] = -np.inf if maximize else np.inf
    return matched, values, status


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


def assignment(cost: Any, *, maximize: bool = False, engine: str | None = None) -> Solution:
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
        engine: `"numba"` (the compiled kernel of `assignment_batch`), `"numpy"`
            (`scipy.optimize.linear_sum_assignment`) or `"auto"` (numba when
            installed); None reads `SOLVERS_COMBINATORIAL_ENGINE`. Both are exact;
            on ties they may pick different optimal matchings.

    Returns:
        The optimal matching (or the infeasibility status) as a `Solution`.

    Raises:
        ValueError: naming `cost` when it is not 2-D, is empty, holds NaN, or holds
            the wrong infinity (`-inf` when minimising, `+inf` when maximising),
            or `engine`.

    Example:
        ```python
        from solvers import assignment

        sol = assignment([[4.0, 1.0], [2.0, 3.0]])
        print((sol.objective, sol.info["cols"].tolist()))  # (3.0, [1, 0])
        ```
    """
    arr = np.ascontiguousarray(_check_cost(cost, maximize))
    n, m = arr.shape
    start = time.perf_counter()
    matched, values, status = _run_batch(
        arr[None], np.array([n]), np.array([m]), maximize, engine, threads=1
    )
    if status[0] == _INFEASIBLE:
        return Solution(
            status=Status.INFEASIBLE,
            x=None,
            objective=-np.inf if maximize else np.inf,
            backend=_BACKEND,
            message="The forbidden pairs leave no matching that covers the smaller side.",
            solve_time=time.perf_counter() - start,
        )
    rows = np.flatnonzero(matched[0] >= 0)
    cols = matched[0, rows]
    x = np.zeros(arr.shape, dtype=np.float64)
    x[rows, cols] = 1.0
    return Solution(
        status=Status.OPTIMAL,
        x=x.reshape(-1),
        objective=float(values[0]),
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
    engine: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve a batch of (possibly ragged) assignment problems.

    Item `b` is the top-left block `costs[b, :row_counts[b], :col_counts[b]]`;
    entries outside it are padding and are never read (they may hold anything,
    NaN included). With the numba engine each item is solved by a compiled
    Jonker-Volgenant kernel (a reduction start, then one shortest augmenting path per
    row left unmatched); slices of the batch run in a few threads that release the GIL.

    Args:
        costs: shape (B, N, M). Forbidden pairs as in `assignment`.
        maximize: maximise every item's total instead of minimising it.
        row_counts: valid rows per item, shape (B,), integers in [0, N]; None = all N.
        col_counts: valid columns per item, shape (B,), integers in [0, M]; None = all M.
        return_indices: return each row's matched column instead of the dense indicator
            (cheaper when the caller only gathers the matched entries).
        threads: solve slices of the batch in this many threads. None picks up to
            `os.cpu_count()` (at most 8) for batches large enough to pay for it; 1
            solves serially. Results do not depend on it.
        engine: as in `assignment`.

    Returns:
        values: float64, shape (B,), each item's optimal total (0 for an item with no
            rows or no columns; `+inf`, or `-inf` when maximising, for an
            infeasible item).
        indicator: bool, shape (B, N, M), True on the matched pairs (all False on
            padding and for infeasible items). `indicator[b].reshape(-1)` of an
            unpadded item equals `assignment(costs[b], engine=engine).x`.
            With `return_indices=True`, instead `matched`: int64, shape (B, N), the
            column matched to each row, or -1 (unmatched row, padding, infeasible item).

    Raises:
        ValueError: naming `costs` (wrong ndim, NaN or the wrong infinity inside an
            item), `row_counts` or `col_counts` (wrong shape, not integers, out of
            range), `threads` or `engine`.
    """
    arr = np.ascontiguousarray(as_float_array(costs, "costs", 3))
    batch, n_max, m_max = arr.shape
    n_len = as_lengths(row_counts, "row_counts", batch, n_max)
    m_len = as_lengths(col_counts, "col_counts", batch, m_max)
    matched, values, _ = _run_batch(arr, n_len, m_len, bool(maximize), engine, threads)
    if return_indices:
        return values, matched
    indicator = np.zeros(arr.shape, dtype=bool)
    item, row = np.nonzero(matched >= 0)
    indicator[item, row, matched[item, row]] = True
    return values, indicator


def assignment_batch_gather(
    scores: Any,
    labels: Any,
    instances: Any = None,
    *,
    row_counts: Any = None,
    col_counts: Any = None,
    threads: int | None = None,
    engine: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""`assignment_batch` on costs read straight from a score table, never materialised.

    Item `b` matches its labels (rows) to its instances (columns) at cost

    $$
    C_{b,l,i} = -\,\mathrm{scores}[b,\ \mathrm{instances}[b, i],\ \mathrm{labels}[b, l]],
    $$

    e.g. the negative log-probability of label `l` under instance `i`. The kernel
    gathers each cost as it builds its own working matrix, so the dense (B, L, K)
    float64 tensor a caller would otherwise build and copy is never allocated; float32
    scores are widened exactly. `-inf` scores are forbidden pairs.

    Args:
        scores: shape (B, K, C), float32 or float64 (other dtypes are converted).
        labels: shape (B, L), integers in [0, C) inside each item's rows (padding is
            never read).
        instances: shape (B, K), integers in [0, K): the order of the columns (e.g. the
            real instances first); None = `arange(K)` for every item.
        row_counts: labels per item, shape (B,), in [0, L]; None = all L.
        col_counts: instances per item, shape (B,), in [0, K]; None = all K.
        threads: as in `assignment_batch`.
        engine: as in `assignment` (the numpy engine builds the dense costs and calls
            scipy).

    Returns:
        values: float64 (B,), each item's optimal total (`+inf` when infeasible).
        matched: int64 (B, L), the column (position in `instances[b]`) matched to each
            label, or -1.
        status: int8 (B,), 0 optimal, 1 infeasible.

    Raises:
        ValueError: naming `scores` (wrong ndim, NaN or `+inf` inside an item),
            `labels` or `instances` (shape, or an index out of range inside an
            item), the counts, `threads` or `engine`.
    """
    table = np.asarray(scores)
    if table.dtype not in (np.float32, np.float64):
        table = as_float_array(table, "scores", 3)
    if table.ndim != 3:
        raise ValueError(f"`scores` must be 3-D (B, K, C); got shape {table.shape}.")
    table = np.ascontiguousarray(table)
    batch, k_max, n_classes = table.shape
    lab = _index_array(labels, "labels", (batch, None))
    l_max = lab.shape[1]
    inst = (
        np.broadcast_to(np.arange(k_max, dtype=np.int64), (batch, k_max))
        if instances is None
        else _index_array(instances, "instances", (batch, k_max))
    )
    n_len = as_lengths(row_counts, "row_counts", batch, l_max)
    m_len = as_lengths(col_counts, "col_counts", batch, k_max)
    for name, idx, length, upper in (
        ("labels", lab, n_len, n_classes),
        ("instances", inst, m_len, k_max),
    ):
        inside = np.arange(idx.shape[1])[None, :] < length[:, None]
        out = inside & ((idx < 0) | (idx >= upper))
        if out.any():
            b, j = (int(v) for v in np.argwhere(out)[0])
            raise ValueError(
                f"`{name}`: item {b} position {j} holds {int(idx[b, j])}, outside [0, {upper})."
            )
    inst = np.ascontiguousarray(inst)
    if resolve_engine(engine) != "numba":
        cost = -np.take_along_axis(
            np.take_along_axis(table, inst[:, :, None], 1).astype(np.float64),
            np.clip(lab, 0, n_classes - 1)[:, None, :],
            2,
        ).transpose(0, 2, 1)
        matched, values, status = _run_batch(
            np.ascontiguousarray(cost), n_len, m_len, False, engine, threads
        )
        return values, matched, status
    from ._numba import lsap_gather

    lab = np.ascontiguousarray(np.clip(lab, 0, n_classes - 1))  # padding: any valid class
    matched = np.full((batch, l_max), -1, dtype=np.int64)
    values = np.empty(batch)
    status = np.zeros(batch, dtype=np.int8)

    def kernel(lo: int, hi: int) -> None:
        lsap_gather(table, lab, inst, n_len, m_len, lo, hi, matched, values, status)

    run_chunks(kernel, batch, l_max * k_max, threads)
    bad = status == _BAD
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"`scores` must not contain NaN or +inf inside an item; item {b} does "
            "(-inf marks a forbidden pair)."
        )
    infeasible = status == _INFEASIBLE
    matched[infeasible] = -1
    values[infeasible] = np.inf
    return values, matched, status


def _index_array(value: Any, name: str, shape: tuple[int, int | None]) -> np.ndarray:
    """`value` as an int64 array of `shape` (None = any length), else ValueError naming it."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] != shape[0] or shape[1] not in (None, arr.shape[1]):
        want = f"({shape[0]}, {'L' if shape[1] is None else shape[1]})"
        raise ValueError(f"`{name}` must have shape {want}; got {arr.shape}.")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"`{name}` must hold integers; got dtype {arr.dtype}.")
    return arr.astype(np.int64, copy=False)
