"""Compiled (numba) kernels of the fast oracles: grid shortest path and 0/1 knapsack DPs.

Imported lazily, only when the numba engine runs, so `import solvers` never loads numba.
Kernels use `cache=True` (the first call in a fresh environment compiles, a few seconds).
Each kernel is serial, releases the GIL and solves a slice `lo..hi` of the batch; large
batches are split over a few Python threads by
`solvers.combinatorial._common.run_chunks`, as in
[`solvers.combinatorial`][solvers.combinatorial]. No kernel uses numba's parallel
(OpenMP/TBB) pool, whose workers spin after each call and take cores from the torch work
around a training step. The numpy fallbacks in `grid.py` and `knapsack.py` make the same
comparisons in the same order, so both engines return identical solutions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..combinatorial._common import run_chunks

__all__ = ["run_grid_batch", "run_knapsack_batch"]


def _threads(parallel: bool | None) -> int | None:
    """`run_chunks`' threads: 1 when `parallel` is False, else its own choice by batch size."""
    return 1 if parallel is False else None


# ---------------------------------------------------------------------------- grid
@njit(cache=True, nogil=True)
def _grid_item(b, costs, height, width, x, values, dist, came):  # pragma: no cover - compiled
    """Shortest top-left -> bottom-right path of item `b` on a grid with right/down edges.

    Edge order (PyEPO's): for each row i, its width - 1 right edges, then (except on the
    last row) its width down edges. `came[v]` is 0 when node v is reached from the left,
    1 from above. Ties prefer the left (right-moving) edge.
    """
    stride = 2 * width - 1
    dist[0] = 0.0
    for j in range(1, width):
        dist[j] = dist[j - 1] + costs[b, j - 1]
        came[j] = 0
    for i in range(1, height):
        base = i * width
        up_row = (i - 1) * stride + (width - 1)
        dist[base] = dist[base - width] + costs[b, up_row]
        came[base] = 1
        for j in range(1, width):
            v = base + j
            best = dist[v - 1] + costs[b, i * stride + j - 1]
            c = 0
            down = dist[v - width] + costs[b, up_row + j]
            if down < best:
                best = down
                c = 1
            dist[v] = best
            came[v] = c
    v = height * width - 1
    values[b] = dist[v]
    i = height - 1
    j = width - 1
    while v > 0:
        if came[v] == 0:
            j -= 1
            x[b, i * stride + j] = 1.0
            v -= 1
        else:
            i -= 1
            x[b, i * stride + (width - 1) + j] = 1.0
            v -= width


@njit(cache=True, nogil=True)
def grid_batch(costs, height, width, x, values, lo, hi):  # pragma: no cover - compiled
    """Grid DP for items lo..hi-1. costs (B, n) float64; x (B, n) zeroed; values (B,)."""
    dist = np.empty(height * width, dtype=np.float64)
    came = np.empty(height * width, dtype=np.int8)
    for b in range(lo, hi):
        _grid_item(b, costs, height, width, x, values, dist, came)


def run_grid_batch(costs, height, width, x, values, parallel: bool | None = None) -> None:
    """Fill `x` (zeroed) and `values` for `costs` of shape (B, n); `parallel=False`: one thread."""
    run_chunks(
        lambda lo, hi: grid_batch(costs, height, width, x, values, lo, hi),
        costs.shape[0],
        costs.shape[1],
        _threads(parallel),
    )


# ---------------------------------------------------------------------------- knapsack
@njit(cache=True, nogil=True)
def _knapsack_item(b, costs, weights, capacity, x, values, best, take):  # pragma: no cover
    """0/1 knapsack DP of item `b`: min costs @ x s.t. weights @ x <= capacity.

    `best[w]`: the least cost of a selection among the items seen so far with total
    weight at most w. An item is taken only when it strictly lowers the cost.
    """
    n = weights.shape[0]
    for w in range(capacity + 1):
        best[w] = 0.0
    for i in range(n):
        wi = weights[i]
        ci = costs[b, i]
        for w in range(capacity, wi - 1, -1):
            cand = best[w - wi] + ci
            if cand < best[w]:
                best[w] = cand
                take[i, w] = True
            else:
                take[i, w] = False
        for w in range(min(wi, capacity + 1)):
            take[i, w] = False
    values[b] = best[capacity]
    w = capacity
    for i in range(n - 1, -1, -1):
        if take[i, w]:
            x[b, i] = 1.0
            w -= weights[i]


@njit(cache=True, nogil=True)
def knapsack_batch(costs, weights, capacity, x, values, lo, hi):  # pragma: no cover - compiled
    """Knapsack DP for items lo..hi-1. weights (n,) int64 >= 0; x zeroed."""
    n = weights.shape[0]
    best = np.empty(capacity + 1, dtype=np.float64)
    take = np.empty((n, capacity + 1), dtype=np.bool_)
    for b in range(lo, hi):
        _knapsack_item(b, costs, weights, capacity, x, values, best, take)


def run_knapsack_batch(costs, weights, capacity, x, values, parallel: bool | None = None) -> None:
    """Fill `x` (zeroed) and `values` for `costs` of shape (B, n); `parallel=False`: one thread."""
    run_chunks(
        lambda lo, hi: knapsack_batch(costs, weights, capacity, x, values, lo, hi),
        costs.shape[0],
        weights.shape[0] * (capacity + 1),
        _threads(parallel),
    )
