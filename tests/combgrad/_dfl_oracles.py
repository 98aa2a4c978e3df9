"""Tiny enumerable polytopes as duck-typed argmin oracles, for the DFL tests."""

from __future__ import annotations

import itertools

import numpy as np


class VertexOracle:
    """argmin over an explicit vertex list (first vertex wins ties): exhaustive enumeration."""

    def __init__(self, vertices: np.ndarray) -> None:
        self.vertices = np.asarray(vertices, dtype=np.float64)
        self.n = self.vertices.shape[1]
        self.calls = 0

    def solve(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        costs = np.asarray(costs, dtype=np.float64)
        values = costs @ self.vertices.T  # (B, m)
        best = values.argmin(axis=1)
        return self.vertices[best], values[np.arange(len(best)), best]


def simplex(n: int) -> VertexOracle:
    return VertexOracle(np.eye(n))


def box(n: int) -> VertexOracle:
    return VertexOracle(np.array(list(itertools.product([0.0, 1.0], repeat=n))))


def grid_edges(height: int, width: int) -> list[tuple[int, int]]:
    """Edges right and down on a height x width grid of nodes (row-major node ids)."""
    edges = []
    for i in range(height):
        for j in range(width):
            v = i * width + j
            if j + 1 < width:
                edges.append((v, v + 1))
            if i + 1 < height:
                edges.append((v, v + width))
    return edges


def grid_paths(height: int, width: int) -> VertexOracle:
    """All monotone top-left to bottom-right paths of a small grid, as edge indicators."""
    edges = grid_edges(height, width)
    index = {e: k for k, e in enumerate(edges)}
    paths = []
    for moves in set(itertools.permutations("R" * (width - 1) + "D" * (height - 1))):
        x = np.zeros(len(edges))
        v = 0
        for m in moves:
            w = v + 1 if m == "R" else v + width
            x[index[(v, w)]] = 1.0
            v = w
        paths.append(x)
    paths.sort(key=lambda p: tuple(p))
    return VertexOracle(np.array(paths))


class NaNOracle:
    """An oracle that reports item 1 as infeasible by returning NaN (like a user's solver)."""

    n = 3

    def solve(self, costs):
        x = np.eye(3)[np.asarray(costs).argmin(axis=1)]
        x[min(1, len(x) - 1)] = np.nan
        return x, (np.asarray(costs) * x).sum(axis=1)


class RaisingOracle:
    """An oracle whose solver raises for infeasible problems, naming the item."""

    n = 3

    def solve(self, costs):
        raise RuntimeError("oracle: batch item 0 is infeasible")
