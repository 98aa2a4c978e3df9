"""Compiled (numba) kernels of the combinatorial solvers.

This module imports numba at import time; the solver modules import it lazily, only
when the numba engine is selected, so `import solvers` never loads numba. Kernels
are compiled with `cache=True`: the first call in a fresh environment compiles
(a few seconds), later processes load the cached machine code.

Every kernel is serial and releases the GIL (`nogil=True`) and works on a slice
`lo..hi` of a batch; the callers split a batch over a few Python threads
(`solvers.combinatorial._common.run_chunks`). No kernel uses numba's parallel
(OpenMP/TBB) thread pool: its workers spin after each call and take cores from the
torch work around a loss (measured: a 5x slower seq2seq step).

The numpy fallbacks in `alignment.py` perform the same floating-point operations
in the same order, so both engines return bit-identical results.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["LSAP_BAD", "LSAP_INFEASIBLE", "LSAP_OK", "lsap_dense", "lsap_gather", "nw_batch"]

# Move codes shared with the numpy engine (see alignment.py).
_MATCH = 0
_ROW_GAP = 1
_COL_GAP = 2


@njit(cache=True, nogil=True)
def _nw_item(
    b, table, tokens, row_gap, col_gap, n, m, values, row_match, n_row_gaps, n_col_gaps, moves, bad
):  # pragma: no cover - compiled; covered through the public functions
    """DP and traceback of item `b`; the substitution cost of (i, j) is
    `table[b, i, tokens[b, j]]` (`tokens` may have one row for the whole batch)."""
    tok_row = b if tokens.shape[0] > 1 else 0
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
            s = np.float64(table[b, i - 1, tokens[tok_row, j - 1]])
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
    for k in range(row_match.shape[1]):
        row_match[b, k] = -1
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
            row_match[b, i] = j
        elif p == _ROW_GAP:
            i -= 1
            rows_skipped += 1
        else:
            j -= 1
            cols_skipped += 1
        if moves.shape[0] > 0:
            moves[b, length] = p
        length += 1
    if moves.shape[0] > 0:
        for k in range(length // 2):
            tmp = moves[b, k]
            moves[b, k] = moves[b, length - 1 - k]
            moves[b, length - 1 - k] = tmp
        for k in range(length, moves.shape[1]):
            moves[b, k] = -1
    n_row_gaps[b] = rows_skipped
    n_col_gaps[b] = cols_skipped


@njit(cache=True, nogil=True)
def nw_batch(
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
):  # pragma: no cover - compiled; covered through the public functions
    """Needleman-Wunsch DP and traceback for items lo..hi-1 of a batch.

    Inputs: table (B, N, V) float32 or float64 and tokens (B, M) or (1, M) int64: the
    substitution cost of row i and column j of item b is `table[b, i, tokens[b, j]]`
    (a dense (B, N, M) cost array with `tokens = arange(M)[None]`, or (B, T, C)
    per-token costs with the target sequences, gathered here instead of copied);
    row_gap (B, N), col_gap (B, M) float64; n_len, m_len (B,) int64. Outputs (written
    in place): values (B,) float64; row_match (B, N) int64, the column aligned with
    each row or -1; n_row_gaps, n_col_gaps (B,) int64; moves (B, N + M) int8 (the
    path from (0, 0): 0 match, 1 row gap, 2 column gap, then -1), or a (0, 0) array
    to skip it; bad (B,) bool, True when a cost read by the item is not finite.
    """
    for b in range(lo, hi):
        _nw_item(
            b,
            table,
            tokens,
            row_gap,
            col_gap,
            n_len[b],
            m_len[b],
            values,
            row_match,
            n_row_gaps,
            n_col_gaps,
            moves,
            bad,
        )


# --------------------------------------------------------------------------- assignment
# Status codes of an assignment item.
LSAP_OK = 0
LSAP_INFEASIBLE = 1  # the allowed (finite) pairs leave no matching of the smaller side
LSAP_BAD = 2  # a cost read by the item is NaN or the wrong infinity


@njit(cache=True, nogil=True)
def _jv_init(c, n, col4row, v, row4col, free):  # pragma: no cover - compiled
    """Jonker-Volgenant start for a square n x n item: returns False when a row is all +inf.

    Column reduction (v = column minima, each column offered to its cheapest row),
    reduction transfer, then two passes of augmenting row reduction over the free rows
    (a row takes its cheapest column under the current v, lowering that column's v to
    its second-cheapest price when the two differ). Every matched row ends on a column
    of minimum reduced cost `c - v`, the invariant `_augment` relies on. The number of
    reduction steps is capped, so float rounding cannot make it cycle.
    """
    for i in range(n):
        col4row[i] = -1
    for j in range(n):
        v[j] = np.inf
        row4col[j] = -1
    # Column minima in row-major order (cache-friendly); a tie goes to the first row.
    for i in range(n):
        for j in range(n):
            if c[i, j] < v[j]:
                v[j] = c[i, j]
                row4col[j] = i
    for j in range(n - 1, -1, -1):
        i = row4col[j]
        if i < 0:
            v[j] = 0.0
        elif col4row[i] < 0:
            col4row[i] = j
        else:
            row4col[j] = -1
    # Reduction transfer: a matched row's column gets cheaper by the row's margin.
    n_free = 0
    for i in range(n):
        j1 = col4row[i]
        if j1 < 0:
            free[n_free] = i
            n_free += 1
            continue
        mu = np.inf
        for j in range(n):
            if j != j1:
                h = c[i, j] - v[j]
                if h < mu:
                    mu = h
        if mu < np.inf:
            v[j1] -= mu
    for _ in range(2):
        k = 0
        previous = n_free
        n_free = 0
        steps = 0
        while k < previous:
            i = free[k]
            k += 1
            steps += 1
            u1 = np.inf
            u2 = np.inf
            j1 = -1
            j2 = -1
            for j in range(n):
                h = c[i, j] - v[j]
                if h < u2:
                    if h >= u1:
                        u2 = h
                        j2 = j
                    else:
                        u2 = u1
                        j2 = j1
                        u1 = h
                        j1 = j
            if j1 < 0:  # no allowed column: the item is infeasible
                return False
            lower = u1 < u2 and u2 < np.inf
            i0 = row4col[j1]
            if lower:
                v[j1] -= u2 - u1
            elif i0 >= 0 and j2 >= 0 and u2 == u1:
                j1 = j2
                i0 = row4col[j1]
            row4col[j1] = i
            col4row[i] = j1
            if i0 >= 0:
                col4row[i0] = -1
                if lower and steps < 4 * n:
                    k -= 1
                    free[k] = i0
                else:
                    free[n_free] = i0
                    n_free += 1
    return True


@njit(cache=True, nogil=True)
def _augment(
    c, m, start, col4row, row4col, v, dist, pred, cols, group, group_seen
):  # pragma: no cover - compiled
    """Match free row `start` along a shortest augmenting path; False when none exists.

    Jonker and Volgenant's augmentation: Dijkstra on the reduced costs `c - v` from
    `start`, with the columns kept in one array split into READY (distance final),
    SCAN (at the current minimum distance, to be expanded) and TODO. A whole tie
    class of columns enters SCAN at once, and the search stops at the first
    unmatched column reached at the minimum distance. Then READY columns' prices
    drop by their distance's shortfall and the path is flipped. Only `v` is kept:
    a matched row's dual is implied by its column, which stays a column of minimum
    reduced cost for that row (the invariant every phase keeps).

    `group[i] >= 0` names rows with identical cost rows (e.g. one label repeated in
    a bag); `group[0] < 0` disables it. Two such rows sit on columns of equal reduced
    cost, so once one of them is expanded, expanding another (at a distance no
    smaller) can lower no distance and is skipped; the result is unchanged.
    """
    use_groups = group[0] >= 0
    if use_groups:
        for i in range(m):
            group_seen[i] = False
        group_seen[group[start]] = True
    for j in range(m):
        cols[j] = j
        pred[j] = start
        dist[j] = c[start, j] - v[j]
    # cols[:low] READY, cols[low:up] SCAN, cols[up:] TODO.
    low = 0
    up = 0
    n_ready = 0
    min_dist = 0.0
    sink = -1
    while sink < 0:
        if up == low:  # SCAN is empty: move the closest TODO columns in
            n_ready = low
            if up == m:
                return False
            min_dist = dist[cols[up]]
            up += 1
            for k in range(up, m):
                j = cols[k]
                h = dist[j]
                if h <= min_dist:
                    if h < min_dist:
                        up = low
                        min_dist = h
                    cols[k] = cols[up]
                    cols[up] = j
                    up += 1
            if min_dist == np.inf:
                return False
            for k in range(low, up):
                if row4col[cols[k]] < 0:
                    sink = cols[k]
                    break
            if sink >= 0:
                break
        j_scan = cols[low]
        low += 1
        i = row4col[j_scan]
        if use_groups:
            if group_seen[group[i]]:
                continue
            group_seen[group[i]] = True
        offset = c[i, j_scan] - v[j_scan] - min_dist
        for k in range(up, m):
            j = cols[k]
            h = c[i, j] - v[j] - offset
            if h < dist[j]:
                dist[j] = h
                pred[j] = i
                if h == min_dist:
                    if row4col[j] < 0:
                        sink = j
                        break
                    cols[k] = cols[up]
                    cols[up] = j
                    up += 1
    for k in range(n_ready):
        j = cols[k]
        v[j] += dist[j] - min_dist
    j = sink
    while True:
        i = pred[j]
        row4col[j] = i
        nxt = col4row[i]
        col4row[i] = j
        j = nxt
        if i == start:
            break
    return True


@njit(cache=True, nogil=True)
def _lsap_core(
    c, n, m, col4row, v, dist, pred, row4col, cols, group, group_seen
):  # pragma: no cover - compiled
    """Minimum-cost matching of all n rows of c[:n, :m] (n <= m, +inf = forbidden).

    A square item starts from `_jv_init`; a rectangular one from v = 0 and a greedy
    pass matching the rows whose cheapest column is still free. Every row left
    unmatched is then matched by one shortest augmenting path (`_augment`), which
    only lowers the prices of matched columns, so the columns never matched keep
    v = 0 as the rectangular LP dual requires. Ties are broken by scan order, so the
    result is deterministic. Returns 0, or 1 when no complete matching exists.
    `group` as in `_augment` (rows of identical costs; `group[0] < 0`: none).
    """
    if n == m:
        # `cols` doubles as the free-row list of the start.
        if not _jv_init(c, n, col4row, v, row4col, cols):
            return 1
    else:
        for j in range(m):
            row4col[j] = -1
            v[j] = 0.0
        for i in range(n):
            best = np.inf
            best_j = -1
            for j in range(m):
                if c[i, j] < best:
                    best = c[i, j]
                    best_j = j
            if best_j < 0:
                return 1
            if row4col[best_j] < 0:
                row4col[best_j] = i
                col4row[i] = best_j
            else:
                col4row[i] = -1
    for start in range(n):
        if col4row[start] < 0 and not _augment(
            c, m, start, col4row, row4col, v, dist, pred, cols, group, group_seen
        ):
            return 1
    return 0


@njit(cache=True, nogil=True)
def _lsap_workspace(cap):  # pragma: no cover - compiled
    """Scratch for items of up to cap x cap: the working cost matrix, then `_lsap_core`'s
    arrays (col4row, v, dist, pred, row4col, cols, group = no groups, group_seen)."""
    return (
        np.empty((cap, cap)),
        np.empty(cap, dtype=np.int64),
        np.empty(cap),
        np.empty(cap),
        np.empty(cap, dtype=np.int64),
        np.empty(cap, dtype=np.int64),
        np.empty(cap, dtype=np.int64),
        np.full(cap, -1, dtype=np.int64),
        np.empty(cap, dtype=np.bool_),
    )


@njit(cache=True, nogil=True)
def _lsap_match_item(b, n, m, transpose, work, matched):  # pragma: no cover - compiled
    """Match item b, whose costs are in `work`'s matrix (transposed when n > m).

    Writes the matching into `matched[b]` as a row -> column map in the caller's
    orientation; returns `LSAP_OK` or `LSAP_INFEASIBLE`.
    """
    c, col4row, v, dist, pred, row4col, cols, group, group_seen = work
    rows, n_cols = (m, n) if transpose else (n, m)
    if _lsap_core(c, rows, n_cols, col4row, v, dist, pred, row4col, cols, group, group_seen):
        return LSAP_INFEASIBLE
    if transpose:
        for r in range(m):
            matched[b, col4row[r]] = r
    else:
        for i in range(n):
            matched[b, i] = col4row[i]
    return LSAP_OK


@njit(cache=True, nogil=True)
def lsap_dense(
    costs, n_len, m_len, maximize, lo, hi, matched, values, status
):  # pragma: no cover - compiled
    """Assignment of items lo..hi-1 of a dense batch (see `_lsap_core`).

    Inputs: costs (B, N, M) float; n_len, m_len (B,) int64; maximize bool. Outputs
    (written in place): matched (B, N) int64, pre-filled with -1, the column of each
    matched row; values (B,) float64, the sum of the matched costs in row order;
    status (B,) int8 (`LSAP_OK`, `LSAP_INFEASIBLE`, `LSAP_BAD`).
    """
    work = _lsap_workspace(max(costs.shape[1], costs.shape[2]))
    c = work[0]
    for b in range(lo, hi):
        n = n_len[b]
        m = m_len[b]
        values[b] = 0.0
        status[b] = LSAP_OK
        if n == 0 or m == 0:
            continue
        transpose = n > m
        bad = False
        for i in range(n):
            for j in range(m):
                x = costs[b, i, j]
                if maximize:
                    x = -x
                if x != x or x == -np.inf:
                    bad = True
                if transpose:
                    c[j, i] = x
                else:
                    c[i, j] = x
        if bad:
            status[b] = LSAP_BAD
            continue
        status[b] = _lsap_match_item(b, n, m, transpose, work, matched)
        if status[b] != LSAP_OK:
            continue
        total = 0.0
        for i in range(n):
            j = matched[b, i]
            if j >= 0:
                total += costs[b, i, j]
        values[b] = total


@njit(cache=True, nogil=True)
def lsap_gather(
    scores, labels, instances, n_len, m_len, lo, hi, matched, values, status
):  # pragma: no cover - compiled
    """`lsap_dense` on costs gathered in place: `cost[b, l, i] = -scores[b, instances[b, i], labels[b, l]]`.

    Inputs: scores (B, K, C) float32 or float64 (e.g. log-probabilities); labels (B, L)
    and instances (B, K) int64; n_len (B,) rows (labels) and m_len (B,) columns
    (instances) per item. Outputs as for `lsap_dense`, with values the sum of the
    matched costs (as float64) in row order. The (B, L, K) cost tensor is never built.
    Repeated labels of an item have identical cost rows: they are passed to `_augment`
    as one group (a bag's repeated labels otherwise dominate the solve time).
    """
    work = _lsap_workspace(max(labels.shape[1], instances.shape[1]))
    c, group = work[0], work[7]
    first_row = np.full(scores.shape[2], -1, dtype=np.int64)
    for b in range(lo, hi):
        n = n_len[b]
        m = m_len[b]
        values[b] = 0.0
        status[b] = LSAP_OK
        if n == 0 or m == 0:
            continue
        transpose = n > m
        bad = False
        for i in range(m):
            k = instances[b, i]
            for l in range(n):
                x = -np.float64(scores[b, k, labels[b, l]])
                if x != x or x == -np.inf:
                    bad = True
                if transpose:
                    c[i, l] = x
                else:
                    c[l, i] = x
        if bad:
            status[b] = LSAP_BAD
            continue
        if transpose:  # rows are instances: no repeated rows to exploit
            group[0] = -1
        else:
            for l in range(n):
                label = labels[b, l]
                if first_row[label] < 0:
                    first_row[label] = l
                group[l] = first_row[label]
            for l in range(n):
                first_row[labels[b, l]] = -1
        status[b] = _lsap_match_item(b, n, m, transpose, work, matched)
        if status[b] != LSAP_OK:
            continue
        total = 0.0
        for l in range(n):
            i = matched[b, l]
            if i >= 0:
                total += -np.float64(scores[b, instances[b, i], labels[b, l]])
        values[b] = total
