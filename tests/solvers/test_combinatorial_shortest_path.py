"""Shortest paths: Dijkstra / DAG DP vs the unit-flow LP (HiGHS) and brute force; validation."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers
from solvers import Status
from solvers.combinatorial import shortest_path, shortest_path_lp

ATOL = 1e-9
SETTINGS = settings(max_examples=40, deadline=None)


def _brute_force(graph: nx.DiGraph, source, target) -> float:
    if source == target:
        return 0.0
    lengths = [
        sum(graph.edges[u, v]["weight"] for u, v in itertools.pairwise(path))
        for path in nx.all_simple_paths(graph, source, target)
    ]
    return min(lengths, default=np.inf)


@st.composite
def small_graphs(draw):
    """Small random digraphs: either acyclic with signed weights, or any shape with weights >= 0."""
    n = draw(st.integers(2, 6))
    acyclic = draw(st.booleans())
    pairs = [(u, v) for u in range(n) for v in range(n) if u != v and (u < v or not acyclic)]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    low = -2.0 if acyclic else 0.0
    weights = draw(
        st.lists(
            st.floats(low, 3.0, allow_nan=False, allow_subnormal=False),
            min_size=len(chosen),
            max_size=len(chosen),
        )
    )
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from((u, v, w) for (u, v), w in zip(chosen, weights))
    source = draw(st.integers(0, n - 1))
    target = draw(st.integers(0, n - 1))
    return graph, source, target


@SETTINGS
@given(problem=small_graphs())
def test_matches_brute_force_and_lp(problem):
    graph, source, target = problem
    expected = _brute_force(graph, source, target)
    sol = shortest_path(graph, source, target)
    lp = shortest_path_lp(graph, source, target)
    lp_sol = solvers.solve(lp, backend="highs")
    if not np.isfinite(expected):
        assert sol.status is Status.INFEASIBLE and sol.x is None and sol.objective == np.inf
        assert lp_sol.status is Status.INFEASIBLE
        return
    assert sol.status is Status.OPTIMAL and sol.backend == "shortest_path"
    assert sol.objective == pytest.approx(expected, abs=ATOL)
    path = sol.info["path"]
    assert path[0] == source and path[-1] == target
    edges = list(graph.edges)
    used = [edges[k] for k in np.flatnonzero(sol.x)]
    assert sorted(used) == sorted(itertools.pairwise(path))
    assert set(np.unique(sol.x)) <= {0.0, 1.0}
    assert lp.residuals(sol.x) == 0.0
    assert lp_sol.status is Status.OPTIMAL
    assert lp_sol.objective == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("kind", ["dag_signed", "cyclic_positive"])
def test_unique_optimum_equals_lp_vertex(kind):
    rng = np.random.default_rng(0 if kind == "dag_signed" else 1)
    graph = nx.gnp_random_graph(30, 0.2, seed=2, directed=True)
    if kind == "dag_signed":
        graph = nx.DiGraph((u, v) for u, v in graph.edges if u < v)
    for u, v in graph.edges:
        graph.edges[u, v]["weight"] = rng.normal() if kind == "dag_signed" else rng.uniform()
    source, target = 0, max(nx.descendants(graph, 0))
    sol = shortest_path(graph, source, target)
    assert sol.info["method"] == ("dag" if kind == "dag_signed" else "dijkstra")
    lp_sol = solvers.solve(shortest_path_lp(graph, source, target), backend="highs")
    np.testing.assert_allclose(sol.x, lp_sol.x, atol=1e-7)
    assert sol.objective == pytest.approx(lp_sol.objective, abs=1e-7)


def test_lp_layout_follows_edge_and_node_order():
    graph = nx.DiGraph()
    graph.add_weighted_edges_from([("b", "a", 2.0), ("a", "c", 1.0), ("b", "c", 5.0)])
    lp = shortest_path_lp(graph, "b", "c")
    assert list(graph.edges) == [("b", "a"), ("b", "c"), ("a", "c")]  # adjacency order
    np.testing.assert_array_equal(lp.c, [2.0, 5.0, 1.0])
    # nodes in insertion order: b, a, c
    np.testing.assert_array_equal(lp.A_eq.toarray(), [[1, 1, 0], [-1, 0, 1], [0, -1, -1]])
    np.testing.assert_array_equal(lp.b_eq, [1.0, 0.0, -1.0])
    sol = shortest_path(graph, "b", "c")
    np.testing.assert_array_equal(sol.x, [1.0, 0.0, 1.0])
    assert sol.info["path"] == ["b", "a", "c"] and sol.objective == 3.0


def test_source_equals_target_and_unreachable():
    graph = nx.DiGraph()
    graph.add_weighted_edges_from([(0, 1, 1.0), (2, 1, 1.0)])
    same = shortest_path(graph, 0, 0)
    assert same.status is Status.OPTIMAL and same.objective == 0.0 and not same.x.any()
    assert same.info["path"] == [0]
    missing = shortest_path(graph, 0, 2)
    assert missing.status is Status.INFEASIBLE and missing.objective == np.inf
    with pytest.raises(solvers.InfeasibleError):
        missing.raise_for_status()


def test_equal_weights_tie_breaking_is_deterministic_and_optimal():
    graph = nx.grid_2d_graph(4, 4).to_directed()
    nx.set_edge_attributes(graph, 1.0, "weight")
    first = shortest_path(graph, (0, 0), (3, 3))
    again = shortest_path(graph, (0, 0), (3, 3))
    assert first.info["path"] == again.info["path"]
    np.testing.assert_array_equal(first.x, again.x)
    assert first.objective == 6.0 == len(first.info["path"]) - 1
    dag = nx.DiGraph((u, v) for u, v in graph.edges if sum(v) > sum(u))
    nx.set_edge_attributes(dag, -1.0, "weight")  # negative: uses the DAG DP
    neg = shortest_path(dag, (0, 0), (3, 3))
    assert neg.info["method"] == "dag" and neg.objective == -6.0
    assert neg.info["path"] == shortest_path(dag, (0, 0), (3, 3)).info["path"]


def test_bad_inputs_raise():
    graph = nx.DiGraph()
    graph.add_weighted_edges_from([(0, 1, 1.0), (1, 2, -1.0), (2, 0, 1.0)])
    with pytest.raises(ValueError, match=r"`graph` has a cycle .* negative `weight`"):
        shortest_path(graph, 0, 2)
    with pytest.raises(ValueError, match="`source` 7 is not a node"):
        shortest_path(graph, 7, 2)
    with pytest.raises(ValueError, match="`target` 9 is not a node"):
        shortest_path_lp(graph, 0, 9)
    with pytest.raises(ValueError, match=r"`graph` must be a networkx\.DiGraph"):
        shortest_path(nx.Graph([(0, 1)]), 0, 1)
    with pytest.raises(ValueError, match=r"`graph` must be a networkx\.DiGraph"):
        shortest_path(nx.MultiDiGraph([(0, 1)]), 0, 1)
    with pytest.raises(ValueError, match="`graph` must have at least one edge"):
        shortest_path(nx.empty_graph(2, create_using=nx.DiGraph), 0, 1)
    no_weight = nx.DiGraph([(0, 1)])
    for fn in (shortest_path, shortest_path_lp):
        with pytest.raises(ValueError, match="no `weight` attribute 'weight'"):
            fn(no_weight, 0, 1)
        with pytest.raises(ValueError, match="no `weight` attribute 'cost'"):
            fn(graph, 0, 1, weight="cost")
    for bad in (np.nan, np.inf, "heavy"):
        weird = nx.DiGraph()
        weird.add_edge(0, 1, weight=bad)
        with pytest.raises(ValueError, match="`weight` attribute 'weight' of edge"):
            shortest_path(weird, 0, 1)
