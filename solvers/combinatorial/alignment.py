r"""Global (Needleman-Wunsch) sequence alignment: exact DP solver, batched solver and its LP.

Aligning a length-n sequence (rows) with a length-m sequence (columns) is a shortest
path on the $(n+1) \times (m+1)$ lattice of nodes $(i, j)$ from
$(0, 0)$ to $(n, m)$ with three kinds of edges:

* **match** $(i, j) \to (i+1, j+1)$, cost `sub_cost[i, j]` (row i aligned
  with column j);
* **row gap** $(i, j) \to (i+1, j)$, cost `row_gap[i]` (row i left unmatched);
* **column gap** $(i, j) \to (i, j+1)$, cost `col_gap[j]` (column j left
  unmatched).

The dynamic programme

$$
D_{0,0} = 0, \qquad
D_{i,j} = \min\bigl(D_{i-1,j-1} + S_{i-1,j-1},\;
                    D_{i-1,j} + g^{\mathrm{row}}_{i-1},\;
                    D_{i,j-1} + g^{\mathrm{col}}_{j-1}\bigr)
$$

gives the optimal value $D_{n,m}$. As a unit-flow LP the constraint matrix is the
lattice's node-edge incidence matrix (totally unimodular), so the LP optimum equals
$D_{n,m}$ and the DP path is an optimal vertex (Needleman & Wunsch, 1970).

**Tie-breaking** (both engines, every entry point): each cell keeps the first of
*match, row gap, column gap* that attains the minimum (a later candidate replaces it
only when strictly smaller), and the path is traced back from $(n, m)$ along
those choices. So among optimal paths the one returned prefers, walking backwards
from the end, a match over a row gap over a column gap at every step.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..problem import LinearProgram
from ..result import Solution, Status
from ._common import as_float_array, as_lengths, resolve_engine, run_chunks

__all__ = ["alignment", "alignment_batch", "alignment_batch_gather", "alignment_lp"]

_BACKEND = "alignment"
_MATCH, _ROW_GAP, _COL_GAP = 0, 1, 2


# --------------------------------------------------------------------------- validation
def _single_gaps(gap_cost: Any, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Expand `gap_cost` (scalar or (row_gap, col_gap) pair) to arrays of shape (n,), (m,)."""
    if isinstance(gap_cost, tuple | list) and len(gap_cost) == 2:
        row, col = gap_cost
        names = ("gap_cost[0] (row_gap)", "gap_cost[1] (col_gap)")
    elif np.ndim(gap_cost) == 0:
        row = col = gap_cost
        names = ("gap_cost", "gap_cost")
    else:
        raise ValueError(
            "`gap_cost` must be a scalar or a pair (row_gap, col_gap); "
            f"got an array of shape {np.shape(gap_cost)}."
        )
    row_gap = _gap_array(row, names[0], (n,))
    col_gap = _gap_array(col, names[1], (m,))
    for arr, name in ((row_gap, names[0]), (col_gap, names[1])):
        if not np.isfinite(arr).all():
            raise ValueError(f"`{name}` must contain only finite numbers.")
    return row_gap, col_gap


def _gap_arrays(gap_cost: Any, batch: int, n_max: int, m_max: int) -> tuple[np.ndarray, np.ndarray]:
    """`(batch, n_max)` row and `(batch, m_max)` column gap costs from a scalar or a pair."""
    if isinstance(gap_cost, tuple | list) and len(gap_cost) == 2:
        return (
            _gap_array(gap_cost[0], "gap_cost[0] (row_gap)", (batch, n_max)),
            _gap_array(gap_cost[1], "gap_cost[1] (col_gap)", (batch, m_max)),
        )
    if np.ndim(gap_cost) == 0:
        return (
            _gap_array(gap_cost, "gap_cost", (batch, n_max)),
            _gap_array(gap_cost, "gap_cost", (batch, m_max)),
        )
    raise ValueError(
        "`gap_cost` must be a scalar or a pair (row_gap, col_gap); "
        f"got an array of shape {np.shape(gap_cost)}."
    )


def _gap_array(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a number or an array of numbers.") from exc
    try:
        # Always a fresh, writeable C array: read-only inputs would make numba compile
        # (and cache) a second specialisation of its kernel.
        return np.array(np.broadcast_to(arr, shape), dtype=np.float64, order="C")
    except ValueError as exc:
        raise ValueError(
            f"`{name}` must be a scalar or broadcast to shape {shape}; got shape {arr.shape}."
        ) from exc


def _check_sub_cost(sub_cost: Any) -> np.ndarray:
    arr = as_float_array(sub_cost, "sub_cost", 2)
    if arr.size == 0:
        raise ValueError(f"`sub_cost` must be non-empty; got shape {arr.shape}.")
    if np.isnan(arr).any():
        raise ValueError("`sub_cost` must not contain NaN.")
    if not np.isfinite(arr).all():
        raise ValueError("`sub_cost` must contain only finite numbers; found +-inf.")
    return arr


# --------------------------------------------------------------------------- engines
def _nw_batch_numpy(
    sub_costs: np.ndarray,
    row_gap: np.ndarray,
    col_gap: np.ndarray,
    n_len: np.ndarray,
    m_len: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Numpy engine: the DP swept over anti-diagonals, vectorised over batch and diagonal.

    Performs the same additions and strict comparisons as the numba kernel, so the
    results are bit-identical. Cells outside an item's block are computed too (the
    whole (N+1) x (M+1) lattice) but never influence the item's block.
    """
    batch, n_max, m_max = sub_costs.shape
    # D[:, i + 1, j + 1] is the DP value of lattice node (i, j); index 0 is a +inf border,
    # which turns the missing predecessors of the first row and column into +inf candidates.
    dist = np.full((batch, n_max + 2, m_max + 2), np.inf)
    dist[:, 1, 1] = 0.0
    sub_pad = np.zeros((batch, n_max + 1, m_max + 1))
    sub_pad[:, 1:, 1:] = sub_costs
    row_pad = np.zeros((batch, n_max + 1))
    row_pad[:, 1:] = row_gap
    col_pad = np.zeros((batch, m_max + 1))
    col_pad[:, 1:] = col_gap
    ptr = np.zeros((batch, n_max + 1, m_max + 1), dtype=np.int8)
    with np.errstate(invalid="ignore", over="ignore"):  # padding may hold anything
        for d in range(1, n_max + m_max + 1):
            i = np.arange(max(0, d - m_max), min(n_max, d) + 1)
            j = d - i
            best = dist[:, i, j] + sub_pad[:, i, j]
            choice = np.zeros(best.shape, dtype=np.int8)
            up = dist[:, i, j + 1] + row_pad[:, i]
            take = up < best
            best = np.where(take, up, best)
            choice[take] = _ROW_GAP
            left = dist[:, i + 1, j] + col_pad[:, j]
            take = left < best
            best = np.where(take, left, best)
            choice[take] = _COL_GAP
            dist[:, i + 1, j + 1] = best
            ptr[:, i, j] = choice

    items = np.arange(batch)
    values = dist[items, n_len + 1, m_len + 1]
    match = np.zeros((batch, n_max, m_max), dtype=bool)
    reversed_moves = np.full((batch, n_max + m_max), -1, dtype=np.int8)
    i, j = n_len.copy(), m_len.copy()
    for step in range(n_max + m_max):
        active = (i > 0) | (j > 0)
        if not active.any():
            break
        move = np.where(active, ptr[items, i, j], -1)
        is_match = move == _MATCH
        match[items[is_match], i[is_match] - 1, j[is_match] - 1] = True
        reversed_moves[:, step] = move
        i -= is_match | (move == _ROW_GAP)
        j -= is_match | (move == _COL_GAP)
    length = (reversed_moves >= 0).sum(axis=1)
    source = length[:, None] - 1 - np.arange(n_max + m_max)[None, :]
    moves = np.where(
        source >= 0,
        np.take_along_axis(reversed_moves, np.maximum(source, 0), axis=1),
        np.int8(-1),
    ).astype(np.int8)
    n_row_gaps = (moves == _ROW_GAP).sum(axis=1).astype(np.int64)
    n_col_gaps = (moves == _COL_GAP).sum(axis=1).astype(np.int64)
    return values, match, n_row_gaps, n_col_gaps, moves


def _nw_batch_numba(
    table: np.ndarray,
    tokens: np.ndarray,
    row_gap: np.ndarray,
    col_gap: np.ndarray,
    n_len: np.ndarray,
    m_len: np.ndarray,
    parallel: bool | None = None,
    with_moves: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The compiled kernel on slices of the batch: (values, row_match, gaps..., moves, bad)."""
    # Lazy: numba is optional and slow to import.
    from ._numba import nw_batch

    batch, n_max = table.shape[0], table.shape[1]
    m_max = tokens.shape[1]
    values = np.empty(batch)
    row_match = np.empty((batch, n_max), dtype=np.int64)
    n_row_gaps = np.empty(batch, dtype=np.int64)
    n_col_gaps = np.empty(batch, dtype=np.int64)
    moves = np.empty((batch, n_max + m_max) if with_moves else (0, 0), dtype=np.int8)
    bad = np.zeros(batch, dtype=bool)

    def kernel(lo: int, hi: int) -> None:
        nw_batch(
            table,
            tokens,
            row_gap,
            col_gap,
            n_len,
            m_len,
            lo,
            hi,
            values,
            row_match,
            n_row_gaps,
            n_col_gaps,
            moves,
            bad,
        )

    threads = 1 if parallel is False else None
    run_chunks(kernel, batch, n_max * m_max, threads)
    return values, row_match, n_row_gaps, n_col_gaps, moves, bad


def _dense_match(row_match: np.ndarray, m_max: int) -> np.ndarray:
    """(B, N, M) bool indicator from each row's matched column (-1: none)."""
    batch, n_max = row_match.shape
    match = np.zeros((batch, n_max, m_max), dtype=bool)
    item, row = np.nonzero(row_match >= 0)
    match[item, row, row_match[item, row]] = True
    return match


def _blocks_finite(
    sub_costs: np.ndarray,
    row_gap: np.ndarray,
    col_gap: np.ndarray,
    n_len: np.ndarray,
    m_len: np.ndarray,
) -> None:
    """Raise ValueError naming the first item whose block holds a non-finite cost."""
    _, n_max, m_max = sub_costs.shape
    row_ok = np.arange(n_max)[None, :] < n_len[:, None]
    col_ok = np.arange(m_max)[None, :] < m_len[:, None]
    with np.errstate(invalid="ignore"):
        bad_sub = (~np.isfinite(sub_costs) & row_ok[:, :, None] & col_ok[:, None, :]).any((1, 2))
        bad_row = (~np.isfinite(row_gap) & row_ok).any(1)
        bad_col = (~np.isfinite(col_gap) & col_ok).any(1)
    for name, bad in (("sub_costs", bad_sub), ("gap_cost", bad_row | bad_col)):
        if bad.any():
            b = int(bad.argmax())
            raise ValueError(
                f"`{name}` must be finite (NaN and +-inf are not allowed) inside each item's "
                f"lengths; item {b} has a non-finite entry."
            )


def _run(
    engine: str,
    sub_costs: np.ndarray,
    row_gap: np.ndarray,
    col_gap: np.ndarray,
    n_len: np.ndarray,
    m_len: np.ndarray,
    parallel: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if engine == "numba":
        if not sub_costs.flags.writeable:  # one kernel specialisation only (see _gap_array)
            sub_costs = sub_costs.copy()
        m_max = sub_costs.shape[2]
        tokens = np.arange(m_max, dtype=np.int64)[None, :]  # dense costs: column j is token j
        values, row_match, n_row_gaps, n_col_gaps, moves, bad = _nw_batch_numba(
            sub_costs, tokens, row_gap, col_gap, n_len, m_len, parallel
        )
        if bad.any():  # the kernel flags items; find out which argument is to blame
            _blocks_finite(sub_costs, row_gap, col_gap, n_len, m_len)
        return values, _dense_match(row_match, m_max), n_row_gaps, n_col_gaps, moves
    _blocks_finite(sub_costs, row_gap, col_gap, n_len, m_len)
    return _nw_batch_numpy(sub_costs, row_gap, col_gap, n_len, m_len)


# --------------------------------------------------------------------------- public API
def alignment(sub_cost: Any, gap_cost: Any = 1.0, *, engine: str | None = None) -> Solution:
    """Optimal global alignment of a length-n sequence with a length-m sequence.

    Minimises the total cost of matched pairs plus gaps over all monotone alignments
    (shortest path on the DP lattice; see the module docstring for the tie-breaking
    rule, which makes the answer deterministic).

    The returned `Solution` has `backend="alignment"`, status `Status.OPTIMAL`, and

    * `x`: shape (3nm + n + m,), the 0/1 use of every lattice edge in the variable
      order of `alignment_lp`;
    * `objective`: the optimal total cost $D_{n,m}$;
    * `info["match"]`: bool (n, m), True where row i is aligned with column j;
    * `info["path"]`: the lattice nodes `(i, j)` from `(0, 0)` to `(n, m)`;
    * `info["n_row_gaps"]`, `info["n_col_gaps"]`: gap counts; `info["engine"]`.

    Args:
        sub_cost: shape (n, m), finite; `sub_cost[i, j]` is the cost of aligning row
            `i` with column `j`.
        gap_cost: a scalar (every gap costs it), or a pair `(row_gap, col_gap)` where
            `row_gap` (scalar or shape (n,)) is the cost of leaving each row
            unmatched and `col_gap` (scalar or shape (m,)) each column. Finite;
            negative values are allowed.
        engine: `"numba"`, `"numpy"` or `"auto"` (numba when installed); None
            reads the `SOLVERS_COMBINATORIAL_ENGINE` environment variable.

    Returns:
        The optimal alignment as a `Solution`.

    Raises:
        ValueError: naming `sub_cost` (not 2-D, empty, NaN/inf) or `gap_cost`
            (wrong shape, NaN/inf) or `engine`.

    Example:
        ```python
        from solvers import alignment

        sol = alignment([[0.0, 5.0], [5.0, 0.0]], gap_cost=1.0)
        print((sol.objective, sol.info["match"].tolist()))  # (0.0, [[True, False], [False, True]])
        ```
    """
    arr = _check_sub_cost(sub_cost)
    n, m = arr.shape
    row_gap, col_gap = _single_gaps(gap_cost, n, m)
    chosen = resolve_engine(engine)
    start = time.perf_counter()
    values, match, n_row_gaps, n_col_gaps, moves = _run(
        chosen,
        np.ascontiguousarray(arr[None]),
        row_gap[None],
        col_gap[None],
        np.array([n], dtype=np.int64),
        np.array([m], dtype=np.int64),
    )
    x = np.zeros(3 * n * m + n + m)
    path = [(0, 0)]
    i = j = 0
    for move in moves[0][moves[0] >= 0].tolist():
        if move == _MATCH:
            x[i * m + j] = 1.0
            i, j = i + 1, j + 1
        elif move == _ROW_GAP:
            x[n * m + i * (m + 1) + j] = 1.0
            i += 1
        else:
            x[n * m + n * (m + 1) + i * m + j] = 1.0
            j += 1
        path.append((i, j))
    return Solution(
        status=Status.OPTIMAL,
        x=x,
        objective=float(values[0]),
        backend=_BACKEND,
        message="Optimal solution found.",
        solve_time=time.perf_counter() - start,
        info={
            "match": match[0],
            "path": path,
            "n_row_gaps": int(n_row_gaps[0]),
            "n_col_gaps": int(n_col_gaps[0]),
            "engine": chosen,
        },
    )


def alignment_lp(sub_cost: Any, gap_cost: Any = 1.0) -> LinearProgram:
    """The alignment problem as a unit-flow shortest-path `LinearProgram` on the DP lattice.

    Nodes: `(i, j)` for `0 <= i <= n`, `0 <= j <= m`, numbered `i * (m + 1) + j`.
    Variables (edges), `3nm + n + m` of them, `0 <= x`, in three blocks:

    1. match `(i, j) -> (i+1, j+1)`, `i < n, j < m`: index `i * m + j`,
       cost `sub_cost[i, j]`;
    2. row gap `(i, j) -> (i+1, j)`, `i < n, j <= m`: index
       `n*m + i * (m + 1) + j`, cost `row_gap[i]`;
    3. column gap `(i, j) -> (i, j+1)`, `i <= n, j < m`: index
       `n*m + n*(m + 1) + i * m + j`, cost `col_gap[j]`.

    Constraints: flow conservation `A_eq @ x = b_eq` with one row per node (`+1` on
    an edge's tail, `-1` on its head), `b_eq = +1` at `(0, 0)`, `-1` at
    `(n, m)`, 0 elsewhere. One row is redundant (they sum to zero).

    Args:
        sub_cost: shape (n, m), as in `alignment`.
        gap_cost: a scalar or a pair `(row_gap, col_gap)`, as in `alignment`.

    Returns:
        A continuous `LinearProgram` whose optimal value is the alignment cost.

    Raises:
        ValueError: as `alignment`.
    """
    arr = _check_sub_cost(sub_cost)
    n, m = arr.shape
    row_gap, col_gap = _single_gaps(gap_cost, n, m)

    def node(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return i * (m + 1) + j

    mi, mj = np.divmod(np.arange(n * m), m)
    ri, rj = np.divmod(np.arange(n * (m + 1)), m + 1)
    ci, cj = np.divmod(np.arange((n + 1) * m), m)
    tails = np.concatenate([node(mi, mj), node(ri, rj), node(ci, cj)])
    heads = np.concatenate([node(mi + 1, mj + 1), node(ri + 1, rj), node(ci, cj + 1)])
    c = np.concatenate([arr.reshape(-1), row_gap[ri], col_gap[cj]])
    n_edges = c.shape[0]
    n_nodes = (n + 1) * (m + 1)
    edge = np.arange(n_edges)
    incidence = sp.csr_array(
        (
            np.concatenate([np.ones(n_edges), -np.ones(n_edges)]),
            (np.concatenate([tails, heads]), np.concatenate([edge, edge])),
        ),
        shape=(n_nodes, n_edges),
    )
    supply = np.zeros(n_nodes)
    supply[0], supply[-1] = 1.0, -1.0
    return LinearProgram(c, A_eq=incidence, b_eq=supply)


def alignment_batch(
    sub_costs: Any,
    gap_cost: Any = 1.0,
    n_lengths: Any = None,
    m_lengths: Any = None,
    *,
    engine: str | None = None,
    parallel: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Optimal global alignments of a whole (padded, ragged) batch in one call.

    Item `b` aligns rows `0..n_lengths[b]-1` with columns `0..m_lengths[b]-1`
    using the top-left block of `sub_costs[b]`; entries outside it are padding and
    are never read (they may hold anything, NaN included). A length of 0 is allowed
    (the alignment is then all gaps). The numba engine runs one compiled DP plus
    traceback per item, in threads over slices of the batch; the numpy engine sweeps
    anti-diagonals vectorised over the batch. Both give bit-identical results, equal
    to `alignment` on each item, with the same tie-breaking.

    Args:
        sub_costs: shape (B, N, M), float64 preferred (other dtypes are converted).
        gap_cost: a scalar, or a pair `(row_gap, col_gap)` where each part is a scalar
            or broadcasts to (B, N) (resp. (B, M)): e.g. shape (B, N), (N,) or (B, 1).
        n_lengths: rows per item, shape (B,), integers in [0, N]; None = all N.
        m_lengths: columns per item, shape (B,), integers in [0, M]; None = all M.
        engine: `"numba"`, `"numpy"` or `"auto"`; None reads
            `SOLVERS_COMBINATORIAL_ENGINE` (default `"auto"`).
        parallel: numba engine only: None (default) or True solves slices of the batch
            in a few Python threads (the kernel releases the GIL; idle threads sleep,
            they never spin), for batches large enough to pay for it; False solves on
            the calling thread. Results are identical either way.

    With a scalar gap cost `g`, `values` equals
    `(sub_costs * match).sum((1, 2)) + g * (n_row_gaps + n_col_gaps)` up to rounding
    (padding excluded); with per-position gaps, row i of item b is a gap exactly when
    `i < n_lengths[b]` and `match[b, i].any()` is False (columns likewise).

    Returns:
        values: float64 (B,), the optimal alignment costs.
        match: bool (B, N, M), True where row i is aligned with column j (False on
            padding).
        n_row_gaps: int64 (B,), number of unmatched rows.
        n_col_gaps: int64 (B,), number of unmatched columns.

    Raises:
        ValueError: naming `sub_costs` (not 3-D, or NaN/inf inside an item),
            `gap_cost` (shape, NaN/inf inside an item), `n_lengths`/`m_lengths`
            (shape, not integers, out of range) or `engine`.
    """
    arr = np.ascontiguousarray(as_float_array(sub_costs, "sub_costs", 3))
    batch, n_max, m_max = arr.shape
    row_gap, col_gap = _gap_arrays(gap_cost, batch, n_max, m_max)
    n_len = as_lengths(n_lengths, "n_lengths", batch, n_max)
    m_len = as_lengths(m_lengths, "m_lengths", batch, m_max)
    chosen = resolve_engine(engine)
    values, match, n_row_gaps, n_col_gaps, _moves = _run(
        chosen, arr, row_gap, col_gap, n_len, m_len, parallel
    )
    return values, match, n_row_gaps, n_col_gaps


def alignment_batch_gather(
    token_costs: Any,
    targets: Any,
    gap_cost: Any = 1.0,
    n_lengths: Any = None,
    m_lengths: Any = None,
    *,
    engine: str | None = None,
    parallel: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`alignment_batch` with substitution costs read from a per-token table inside the DP.

    Item `b` aligns its rows (e.g. the T output positions of a sequence model) with
    the target sequence `targets[b]`; aligning row `i` with column `j` costs
    `token_costs[b, i, targets[b, j]]`. The compiled kernel reads that entry as the
    DP visits the cell, so the dense (B, T, L) float64 cost tensor is never built (its
    gather and copy cost more than the DP itself); float32 tables are widened exactly,
    so the result equals `alignment_batch` on the gathered float64 costs bit for bit.

    Args:
        token_costs: shape (B, T, C), float32 or float64 (other dtypes are converted),
            e.g. negative log-probabilities.
        targets: shape (B, L), integers in [0, C) inside each item's columns (padding is
            never read).
        gap_cost: as in `alignment_batch`: a scalar, or `(row_gap, col_gap)` each
            broadcasting to (B, T) and (B, L).
        n_lengths: rows per item, shape (B,), in [0, T]; None = all T.
        m_lengths: columns per item, shape (B,), in [0, L]; None = all L.
        engine: as in `alignment_batch` (the numpy engine gathers the dense costs first).
        parallel: as in `alignment_batch`.

    Returns:
        values: float64 (B,), the optimal alignment costs.
        row_match: int64 (B, T), the column aligned with each row, or -1 (a row gap, or
            padding).
        n_row_gaps: int64 (B,), number of unmatched rows.
        n_col_gaps: int64 (B,), number of unmatched columns.

    Raises:
        ValueError: naming `token_costs` (not 3-D, or NaN/inf read by an item),
            `targets` (shape, not integers, out of range inside an item),
            `gap_cost`, `n_lengths`/`m_lengths` or `engine`.
    """
    table = np.asarray(token_costs)
    if table.dtype not in (np.float32, np.float64):
        table = as_float_array(table, "token_costs", 3)
    if table.ndim != 3:
        raise ValueError(f"`token_costs` must be 3-D (B, T, C); got shape {table.shape}.")
    table = np.ascontiguousarray(table)
    if not table.flags.writeable:  # one kernel specialisation only (see _gap_array)
        table = table.copy()
    batch, n_max, n_tokens = table.shape
    tok = np.asarray(targets)
    if tok.ndim != 2 or tok.shape[0] != batch:
        raise ValueError(f"`targets` must have shape ({batch}, L); got {tok.shape}.")
    if tok.dtype.kind not in "iu":
        raise ValueError(f"`targets` must hold integers; got dtype {tok.dtype}.")
    m_max = tok.shape[1]
    row_gap, col_gap = _gap_arrays(gap_cost, batch, n_max, m_max)
    n_len = as_lengths(n_lengths, "n_lengths", batch, n_max)
    m_len = as_lengths(m_lengths, "m_lengths", batch, m_max)
    inside = np.arange(m_max)[None, :] < m_len[:, None]
    out = inside & ((tok < 0) | (tok >= n_tokens))
    if out.any():
        b, j = (int(v) for v in np.argwhere(out)[0])
        raise ValueError(
            f"`targets`: item {b} position {j} holds {int(tok[b, j])}, outside [0, {n_tokens})."
        )
    tok = np.ascontiguousarray(np.clip(tok, 0, n_tokens - 1), dtype=np.int64)

    def dense() -> np.ndarray:
        return np.take_along_axis(table, tok[:, None, :], 2).astype(np.float64)

    if resolve_engine(engine) != "numba":
        values, match, n_row_gaps, n_col_gaps, _ = _run(
            "numpy", dense(), row_gap, col_gap, n_len, m_len
        )
        row_match = np.where(match.any(2), match.argmax(2), -1)
        return values, row_match, n_row_gaps, n_col_gaps
    values, row_match, n_row_gaps, n_col_gaps, _, bad = _nw_batch_numba(
        table, tok, row_gap, col_gap, n_len, m_len, parallel, with_moves=False
    )
    if bad.any():
        try:
            _blocks_finite(dense(), row_gap, col_gap, n_len, m_len)
        except ValueError as exc:
            raise ValueError(str(exc).replace("`sub_costs`", "`token_costs`")) from None
    return values, row_match, n_row_gaps, n_col_gaps
