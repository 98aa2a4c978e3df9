"""Compiled (numba) kernels of the combinatorial solvers.

This module imports numba at import time; the solver modules import it lazily, only
when the numba engine is selected, so `import solvers` never loads numba. Kernels
are compiled with `cache=True`: the first call in a fresh environment compiles
(a few seconds), later processes load the cached machine code.

The numpy fallbacks in `alignment.py` perform the same floating-point operations
in the same order, so both engines return bit-identical results.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import njit, prange

__all__ = ["nw_batch", "nw_batch_serial", "run_nw_batch"]

# numba's fallback "workqueue" threading layer aborts the process when two Python threads
# launch parallel kernels at once; they would only compete for the same cores anyway.
_PARALLEL_LOCK = threading.Lock()


def run_nw_batch(*args, parallel: bool | None = None) -> None:
    """Run `nw_batch` (parallel) or its serial twin on `args`.

    `parallel=None` picks the parallel kernel when there are several items and numba
    has more than one thread.
    """
    if parallel is None:
        parallel = args[0].shape[0] > 1 and numba.get_num_threads() > 1
    if parallel:
        with _PARALLEL_LOCK:
            nw_batch(*args)
    else:
        nw_batch_serial(*args)


# Move codes shared with the numpy engine (see alignment.py).
_MATCH = 0
_ROW_GAP = 1
_COL_GAP = 2


@njit(cache=True, nogil=True)
def _nw_item(
    b, sub_costs, row_gap, col_gap, n, m, values, match, n_row_gaps, n_col_gaps, moves, bad
):  # pragma: no cover - compiled; covered through the public functions
    """DP and traceback of item `b` (a separate serial function: numba's parfor pass
    slows this loop nest down ~20x when it is inlined into the prange body)."""
    # Back-pointers for the traceback; the DP values only need two rolling rows.
    ptr = np.empty((n + 1, m + 1), dtype=np.uint8)
    prev = np.empty(m + 1, dtype=np.float64)
    cur = np.empty(m + 1, dtype=np.float64)
    # s - s is 0 for finite s and NaN for +-inf or NaN: one add per cell, no branch.
    check = 0.0
    prev[0] = 0.0
    for j in range(1, m + 1):
        g = col_gap[b, j - 1]
        check += g - g
        prev[j] = prev[j - 1] + g
        ptr[0, j] = _COL_GAP
    for i in range(1, n + 1):
        rg = row_gap[b, i - 1]
        check += rg - rg
        cur[0] = prev[0] + rg
        ptr[i, 0] = _ROW_GAP
        for j in range(1, m + 1):
            s = sub_costs[b, i - 1, j - 1]
            check += s - s
            # Ties keep the earlier candidate: match, then row gap, then column gap.
            best = prev[j - 1] + s
            p = _MATCH
            up = prev[j] + rg
            if up < best:
                best = up
                p = _ROW_GAP
            left = cur[j - 1] + col_gap[b, j - 1]
            if left < best:
                best = left
                p = _COL_GAP
            cur[j] = best
            ptr[i, j] = p
        prev, cur = cur, prev
    values[b] = prev[m]
    bad[b] = check != 0.0

    # Traceback from (n, m); moves are recorded backwards, then reversed in place.
    i = n
    j = m
    length = 0
    rows_skipped = 0
    cols_skipped = 0
    while i > 0 or j > 0:
        p = ptr[i, j]
        if p == _MATCH:
            i -= 1
            j -= 1
            match[b, i, j] = True
        elif p == _ROW_GAP:
            i -= 1
            rows_skipped += 1
        else:
            j -= 1
            cols_skipped += 1
        moves[b, length] = p
        length += 1
    for k in range(length // 2):
        tmp = moves[b, k]
        moves[b, k] = moves[b, length - 1 - k]
        moves[b, length - 1 - k] = tmp
    for k in range(length, moves.shape[1]):
        moves[b, k] = -1
    n_row_gaps[b] = rows_skipped
    n_col_gaps[b] = cols_skipped


@njit(parallel=True, cache=True, nogil=True)
def nw_batch(
    sub_costs, row_gap, col_gap, n_len, m_len, values, match, n_row_gaps, n_col_gaps, moves, bad
):  # pragma: no cover - compiled; covered through the public functions
    """Needleman-Wunsch DP and traceback for every item of a batch, in parallel.

    Inputs: sub_costs (B, N, M) float64; row_gap (B, N), col_gap (B, M) float64;
    n_len, m_len (B,) int64. Outputs (written in place): values (B,) float64;
    match (B, N, M) bool, zero-initialised; n_row_gaps, n_col_gaps (B,) int64;
    moves (B, N + M) int8 (the path from (0, 0): 0 match, 1 row gap, 2 column gap,
    then -1); bad (B,) bool, True when a cost read by the item is not finite.
    """
    for b in prange(sub_costs.shape[0]):
        _nw_item(
            b,
            sub_costs,
            row_gap,
            col_gap,
            n_len[b],
            m_len[b],
            values,
            match,
            n_row_gaps,
            n_col_gaps,
            moves,
            bad,
        )


@njit(cache=True, nogil=True)
def nw_batch_serial(
    sub_costs, row_gap, col_gap, n_len, m_len, values, match, n_row_gaps, n_col_gaps, moves, bad
):  # pragma: no cover - compiled; covered through the public functions
    """`nw_batch` on the calling thread only (one item, or numba limited to one thread)."""
    for b in range(sub_costs.shape[0]):
        _nw_item(
            b,
            sub_costs,
            row_gap,
            col_gap,
            n_len[b],
            m_len[b],
            values,
            match,
            n_row_gaps,
            n_col_gaps,
            moves,
            bad,
        )
