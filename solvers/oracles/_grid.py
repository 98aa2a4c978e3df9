"""Grid shortest path with PyEPO's edge order: compiled batched DP, numpy fallback, its LP."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..combinatorial._common import resolve_engine
from ..oracle import Oracle
from ..problem import LinearProgram

__all__ = ["GridShortestPath", "grid_edges", "grid_shortest_path"]


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    return int(value)


def grid_edges(height: int, width: int) -> np.ndarray:
    r"""The edges of a `height` x `width` grid, in PyEPO's order.

    Node $(i, j)$ (row $i$, column $j$) has index $v = i \cdot \text{width} + j$. For each
    row $i$ from the top: its `width - 1` right edges $(v, v + 1)$ from left to right,
    then, unless it is the last row, its `width` down edges $(v, v + \text{width})$.
    This is the order of `pyepo.model.*.shortestPathModel(grid).arcs`, so cost vectors of
    `pyepo.data.shortestpath.genData` index these edges unchanged.

    Args:
        height: number of node rows, $\ge 1$.
        width: number of node columns, $\ge 1$.

    Returns:
        int64 array of shape `(n, 2)`, `n = (height - 1) * width + height * (width - 1)`,
            one `(tail, head)` pair per edge.

    Examples:
        ```python
        from solvers.oracles import grid_edges

        grid_edges(2, 3).tolist()
        # [[0, 1], [1, 2], [0, 3], [1, 4], [2, 5], [3, 4], [4, 5]]
        ```
    """
    height = _check_size(height, "height")
    width = _check_size(width, "width")
    edges = []
    for i in range(height):
        edges += [(i * width + j, i * width + j + 1) for j in range(width - 1)]
        if i < height - 1:
            edges += [(i * width + j, (i + 1) * width + j) for j in range(width)]
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def _grid_numpy(costs: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The DP of the numba kernel, vectorised over the batch (same comparisons, same ties)."""
    batch = costs.shape[0]
    stride = 2 * width - 1
    dist = np.empty((height * width, batch))
    came = np.zeros((height * width, batch), dtype=np.int8)
    dist[0] = 0.0
    for j in range(1, width):
        dist[j] = dist[j - 1] + costs[:, j - 1]
    for i in range(1, height):
        base = i * width
        up_row = (i - 1) * stride + (width - 1)
        dist[base] = dist[base - width] + costs[:, up_row]
        came[base] = 1
        for j in range(1, width):
            v = base + j
            left = dist[v - 1] + costs[:, i * stride + j - 1]
            down = dist[v - width] + costs[:, up_row + j]
            from_up = down < left
            dist[v] = np.where(from_up, down, left)
            came[v] = from_up
    x = np.zeros_like(costs)
    rows = np.arange(batch)
    i = np.full(batch, height - 1)
    j = np.full(batch, width - 1)
    for _ in range(height + width - 2):
        v = i * width + j
        up = came[v, rows] == 1
        # Items reach node 0 at the same step (every path has height + width - 2 edges).
        j = np.where(up, j, j - 1)
        i = np.where(up, i - 1, i)
        edge = np.where(up, i * stride + (width - 1) + j, i * stride + j)
        x[rows, edge] = 1.0
    return x, dist[height * width - 1].copy()


class GridShortestPath(Oracle):
    """The oracle of [`grid_shortest_path`][solvers.oracles.grid_shortest_path]."""

    def __init__(self, height: int, width: int, *, engine: str | None = None) -> None:
        self.height = _check_size(height, "height")
        self.width = _check_size(width, "width")
        if self.height * self.width < 2:
            raise ValueError("`height` * `width` must be at least 2: a 1 x 1 grid has no edge.")
        self.engine = resolve_engine(engine)
        self.edges = grid_edges(self.height, self.width)
        self.edges.setflags(write=False)
        super().__init__(len(self.edges), name=f"grid_shortest_path({self.height}, {self.width})")

    def _solve_batch(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.engine == "numba":
            from ._numba import run_grid_batch

            x = np.zeros(costs.shape)
            values = np.empty(costs.shape[0])
            run_grid_batch(np.ascontiguousarray(costs), self.height, self.width, x, values)
            return x, values
        return _grid_numpy(costs, self.height, self.width)

    def to_problem(self) -> LinearProgram:
        """The min-cost-flow LP with the same variable (edge) order, as PyEPO's model.

        One equality per node, inflow minus outflow: $-1$ at the top-left source, $+1$
        at the bottom-right sink, $0$ elsewhere; $0 \\le x \\le 1$; zero costs. The
        incidence matrix is totally unimodular, so its optimal vertices are paths.
        """
        n_nodes = self.height * self.width
        tails, heads = self.edges[:, 0], self.edges[:, 1]
        cols = np.arange(self.n)
        A = sp.csr_array(
            (
                np.concatenate([np.ones(self.n), -np.ones(self.n)]),
                (np.concatenate([heads, tails]), np.concatenate([cols, cols])),
            ),
            shape=(n_nodes, self.n),
        )
        b = np.zeros(n_nodes)
        b[0], b[-1] = -1.0, 1.0
        return LinearProgram(np.zeros(self.n), A_eq=A, b_eq=b, bounds=(0, 1))


def grid_shortest_path(height: int, width: int, *, engine: str | None = None) -> Oracle:
    r"""Shortest top-left to bottom-right path on a grid whose edges point right and down.

    Nodes form a `height` x `width` grid; the edges, in
    [`grid_edges`][solvers.oracles.grid_edges] order (PyEPO's), are the cost entries, so
    the costs of `pyepo.data.shortestpath.genData(..., grid=(height, width), ...)` plug in
    unchanged. `x[b]` is the 0/1 edge indicator of a shortest path and `values[b]` its
    length. Costs may be negative (the graph is acyclic: every path has
    `height + width - 2` edges).

    The solver is a dynamic program over the nodes in row-major order, compiled with
    numba and run in parallel over large batches (numpy fallback without numba).
    **Ties** prefer entering a node from the left (a right-moving edge) over from above;
    with all costs equal the path goes down the first column, then along the last row.

    Args:
        height: node rows, $\ge 1$.
        width: node columns, $\ge 1$ (`height * width >= 2`).
        engine: `"numba"`, `"numpy"` or `"auto"` (numba when installed); None reads the
            `SOLVERS_COMBINATORIAL_ENGINE` environment variable. Results do not depend on it.

    Returns:
        An [`Oracle`][solvers.oracle.Oracle] with `n = (height - 1) * width + height * (width - 1)`
            and a `to_problem()` method returning the equivalent
            [`LinearProgram`][solvers.LinearProgram].

    Examples:
        ```python
        import numpy as np
        from solvers.oracles import grid_shortest_path

        oracle = grid_shortest_path(5, 5)            # 40 edges, as PyEPO's 5x5 grid
        costs = np.random.default_rng(0).uniform(size=(32, oracle.n))
        x, values = oracle.solve(costs)              # x: (32, 40) 0/1, values: (32,)
        ```
    """
    return GridShortestPath(height, width, engine=engine)
