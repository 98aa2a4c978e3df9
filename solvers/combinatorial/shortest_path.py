"""Single-pair shortest path on a weighted `networkx.DiGraph`: exact solver and its LP.

Two exact algorithms, chosen from the weights:

* all weights `>= 0`: Dijkstra's algorithm (`networkx.single_source_dijkstra`);
* some weight `< 0`: the graph must be acyclic, and the DAG dynamic programme over a
  topological order is used; a negative weight on a graph with a cycle raises
  ValueError (negative cycles would make the problem unbounded, and this module does
  not run Bellman-Ford).

The unit-flow LP (`shortest_path_lp`) has the node-edge incidence matrix as `A_eq`,
which is totally unimodular, so its optimum is the shortest-path length and a
shortest path is an optimal vertex.

**Tie-breaking.** Deterministic for a given graph (same nodes and edges inserted in the
same order): a node's predecessor is replaced only by a strictly shorter label, so
among equally short paths the one found first in the exploration order is kept
(Dijkstra: settle order, with networkx's insertion-order counter breaking distance
ties; DAG: `networkx.topological_sort` order, then each node's successor order).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Hashable
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..problem import LinearProgram
from ..result import Solution, Status

__all__ = ["shortest_path", "shortest_path_lp"]

_BACKEND = "shortest_path"


def _check_graph(graph: Any, source: Hashable, target: Hashable, weight: str) -> list[tuple]:
    """Validate the inputs; return `list(graph.edges)`."""
    import networkx as nx

    if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
        raise ValueError(
            f"`graph` must be a networkx.DiGraph (not a multigraph); got {type(graph).__name__}."
        )
    if graph.number_of_edges() == 0:
        raise ValueError("`graph` must have at least one edge.")
    if source not in graph:
        raise ValueError(f"`source` {source!r} is not a node of `graph`.")
    if target not in graph:
        raise ValueError(f"`target` {target!r} is not a node of `graph`.")
    if not isinstance(weight, str):
        raise ValueError(f"`weight` must be the name of an edge attribute; got {weight!r}.")
    return list(graph.edges)


def _edge_weights(graph: Any, edges: list[tuple], weight: str) -> np.ndarray:
    weights = np.empty(len(edges))
    for k, (u, v) in enumerate(edges):
        data = graph.edges[u, v]
        if weight not in data:
            raise ValueError(f"edge {(u, v)!r} has no `weight` attribute {weight!r}.")
        try:
            w = float(data[weight])
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"`weight` attribute {weight!r} of edge {(u, v)!r} is not a number: "
                f"{data[weight]!r}."
            ) from exc
        if not math.isfinite(w):
            raise ValueError(
                f"`weight` attribute {weight!r} of edge {(u, v)!r} must be finite; got {w}."
            )
        weights[k] = w
    return weights


def _dag_shortest_path(
    graph: Any, source: Hashable, target: Hashable, weight_of: dict
) -> tuple[float, list] | None:
    import networkx as nx

    dist = {source: 0.0}
    pred: dict[Hashable, Hashable] = {}
    for u in nx.topological_sort(graph):
        if u == target:
            break
        if u not in dist:
            continue
        du = dist[u]
        for v in graph.successors(u):
            candidate = du + weight_of[u, v]
            if v not in dist or candidate < dist[v]:  # strict: keep the first optimum
                dist[v] = candidate
                pred[v] = u
    if target not in dist:
        return None
    path = [target]
    while path[-1] != source:
        path.append(pred[path[-1]])
    return dist[target], path[::-1]


def shortest_path(
    graph: Any, source: Hashable, target: Hashable, weight: str = "weight"
) -> Solution:
    """Shortest `source -> target` path in a weighted directed graph.

    The returned `Solution` has `backend="shortest_path"` and

    * `x`: shape (E,), 0/1 use of each edge in `list(graph.edges)` order (the
      variable order of `shortest_path_lp`);
    * `objective`: the path length;
    * `info["path"]`: the node list from `source` to `target`;
      `info["method"]`: `"dijkstra"` or `"dag"`;
    * `status`: `Status.OPTIMAL`, or `Status.INFEASIBLE` (`x=None`, objective
      `+inf`) when `target` is unreachable.

    Args:
        graph: a `networkx.DiGraph` with a finite numeric attribute `weight` on
            every edge. Negative weights are allowed only on an acyclic graph.
        source: start node.
        target: end node (`source == target` gives the empty path, cost 0).
        weight: name of the edge attribute holding the cost.

    Returns:
        The shortest path as a `Solution` (or the infeasibility status).

    Raises:
        ValueError: naming `graph` (not a DiGraph, no edges, negative weight on a
            cyclic graph), `source`/`target` (not in the graph) or `weight`
            (missing, non-numeric, NaN or infinite on some edge).
    """
    import networkx as nx

    edges = _check_graph(graph, source, target, weight)
    weights = _edge_weights(graph, edges, weight)
    start = time.perf_counter()
    if (weights < 0).any():
        if not nx.is_directed_acyclic_graph(graph):
            k = int(np.argmax(weights < 0))
            raise ValueError(
                f"`graph` has a cycle and edge {edges[k]!r} has the negative `weight` "
                f"{weights[k]}; negative weights are only supported on acyclic graphs."
            )
        method = "dag"
        weight_of = dict(zip(edges, weights.tolist()))
        found = _dag_shortest_path(graph, source, target, weight_of)
    else:
        method = "dijkstra"
        try:
            found = nx.single_source_dijkstra(graph, source, target, weight=weight)
        except nx.NetworkXNoPath:
            found = None
    if found is None:
        return Solution(
            status=Status.INFEASIBLE,
            x=None,
            objective=np.inf,
            backend=_BACKEND,
            message=f"No path from {source!r} to {target!r}.",
            solve_time=time.perf_counter() - start,
            info={"method": method},
        )
    length, path = found
    index = {edge: k for k, edge in enumerate(edges)}
    x = np.zeros(len(edges))
    x[[index[edge] for edge in itertools.pairwise(path)]] = 1.0
    return Solution(
        status=Status.OPTIMAL,
        x=x,
        objective=float(length),
        backend=_BACKEND,
        message="Optimal solution found.",
        solve_time=time.perf_counter() - start,
        info={"path": list(path), "method": method},
    )


def shortest_path_lp(
    graph: Any, source: Hashable, target: Hashable, weight: str = "weight"
) -> LinearProgram:
    """The shortest-path problem as a unit-flow `LinearProgram`.

    Variables: one per edge, in `list(graph.edges)` order, `0 <= x`, cost = the
    edge's `weight`. Constraints: `A_eq @ x = b_eq` with one row per node in
    `list(graph.nodes)` order (`+1` on an edge's tail, `-1` on its head; a
    self-loop gives an empty column), `b_eq = +1` at `source`, `-1` at `target`
    (all zero when they coincide).

    Note that the LP is unbounded when the graph has a negative cycle reachable from
    `source`, and that with zero-weight cycles an LP optimum may add a cycle to a path.

    Args:
        graph: a `networkx.DiGraph`, as in `shortest_path`.
        source: start node.
        target: end node.
        weight: name of the edge attribute holding the cost.

    Returns:
        A continuous `LinearProgram` with one variable per edge.

    Raises:
        ValueError: as `shortest_path` (except that negative cycles are not checked).
    """
    edges = _check_graph(graph, source, target, weight)
    weights = _edge_weights(graph, edges, weight)
    position = {v: k for k, v in enumerate(graph.nodes)}
    tails = np.array([position[u] for u, _ in edges], dtype=np.int64)
    heads = np.array([position[v] for _, v in edges], dtype=np.int64)
    n_edges = len(edges)
    edge = np.arange(n_edges)
    incidence = sp.csr_array(
        (
            np.concatenate([np.ones(n_edges), -np.ones(n_edges)]),
            (np.concatenate([tails, heads]), np.concatenate([edge, edge])),
        ),
        shape=(len(position), n_edges),
    )  # duplicate (row, col) entries are summed, so a self-loop's +1 and -1 cancel
    supply = np.zeros(len(position))
    if source != target:
        supply[position[source]] = 1.0
        supply[position[target]] = -1.0
    return LinearProgram(weights, A_eq=incidence, b_eq=supply)
