"""`solvers.oracles`: each fast oracle against its LP through HiGHS and against brute force."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

from solvers import Oracle
from solvers.oracles import assignment, grid_edges, grid_shortest_path, knapsack, top_k

ATOL = 1e-9
ENGINES = ["numpy"] + (["numba"] if importlib.util.find_spec("numba") else [])


def _check_against_lp(oracle: Oracle, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same optimal values as the LP/MILP through HiGHS; x feasible for the LP with value = c @ x."""
    x, values = oracle.solve(costs)
    assert x.shape == costs.shape and values.shape == costs.shape[:1]
    lp = oracle.to_problem()
    _, lp_values = Oracle.from_problem(lp).solve(costs)
    np.testing.assert_allclose(values, lp_values, atol=1e-7)
    np.testing.assert_allclose(values, (costs * x).sum(1), atol=ATOL)
    for xb in x:
        assert set(np.unique(xb)) <= {0.0, 1.0}
        assert lp.residuals(xb) <= 1e-9
    return x, values


def _brute_force(costs: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (costs @ points.T).min(axis=1)


# -- grid shortest path ---------------------------------------------------------------


def test_grid_edge_order_pinned_2x3():
    # Row 0: right edges 0->1, 1->2; down edges 0->3, 1->4, 2->5. Row 1 (last): 3->4, 4->5.
    assert grid_edges(2, 3).tolist() == [[0, 1], [1, 2], [0, 3], [1, 4], [2, 5], [3, 4], [4, 5]]
    assert grid_edges(3, 2).tolist() == [[0, 1], [0, 2], [1, 3], [2, 3], [2, 4], [3, 5], [4, 5]]
    assert grid_shortest_path(5, 5).n == 40


def test_grid_edge_order_matches_pyepo():
    utils = pytest.importorskip("pyepo.model.utils", reason="pyepo (bench extra) not installed")
    for grid in [(2, 3), (3, 2), (5, 5), (4, 7), (1, 4), (4, 1)]:
        assert grid_edges(*grid).tolist() == [list(a) for a in utils._get_grid_arcs(grid)]


def _grid_paths(height: int, width: int) -> np.ndarray:
    """Every monotone path as an edge indicator, by enumerating the move sequences."""
    index = {tuple(e): k for k, e in enumerate(grid_edges(height, width).tolist())}
    paths = []
    for downs in itertools.combinations(range(height + width - 2), height - 1):
        x = np.zeros(len(index))
        v = 0
        for step in range(height + width - 2):
            w = v + width if step in downs else v + 1
            x[index[(v, w)]] = 1.0
            v = w
        paths.append(x)
    return np.array(paths)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("grid", [(2, 3), (3, 3), (3, 4), (1, 4), (4, 1)])
def test_grid_against_brute_force_and_lp(engine, grid):
    oracle = grid_shortest_path(*grid, engine=engine)
    rng = np.random.default_rng(sum(grid))
    costs = rng.normal(size=(30, oracle.n))  # negative costs too: the grid is acyclic
    _, values = _check_against_lp(oracle, costs)
    np.testing.assert_allclose(values, _brute_force(costs, _grid_paths(*grid)), atol=ATOL)


def test_grid_engines_agree_with_ties():
    rng = np.random.default_rng(0)
    costs = rng.integers(0, 2, size=(200, 40)).astype(float)  # many tied paths
    x_np, v_np = grid_shortest_path(5, 5, engine="numpy").solve(costs)
    for engine in ENGINES:
        x, v = grid_shortest_path(5, 5, engine=engine).solve(costs)
        np.testing.assert_array_equal(x, x_np)
        np.testing.assert_array_equal(v, v_np)
    # Ties enter each node from the left when they can: with equal costs the traceback
    # from the sink runs along the last row, so the path goes down first, then right.
    x0, _ = grid_shortest_path(2, 3, engine=ENGINES[-1]).solve(np.zeros(7))
    np.testing.assert_array_equal(x0, [0, 0, 1, 0, 0, 1, 1])


@pytest.mark.skipif("numba" not in ENGINES, reason="numba not installed")
def test_grid_parallel_and_serial_kernels_agree():
    from solvers.oracles._numba import run_grid_batch

    costs = np.random.default_rng(1).uniform(size=(4097, 40))  # enough cells for 2+ threads
    out = []
    for parallel in (False, True):
        x, v = np.zeros_like(costs), np.empty(4097)
        run_grid_batch(costs, 5, 5, x, v, parallel=parallel)
        out.append((x, v))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_grid_plugs_pyepo_costs():
    shortestpath = pytest.importorskip("pyepo.data.shortestpath", reason="pyepo not installed")
    _, costs = shortestpath.genData(20, 5, (5, 5), deg=4, noise_width=0.5, seed=0)
    _check_against_lp(grid_shortest_path(5, 5), costs.astype(np.float64))


@pytest.mark.parametrize(
    "args, match",
    [
        ((0, 3), r"`height` must be a positive integer"),
        ((3, 2.0), r"`width` must be a positive integer"),
        ((1, 1), r"a 1 x 1 grid has no edge"),
    ],
)
def test_grid_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        grid_shortest_path(*args)


def test_grid_bad_costs():
    with pytest.raises(ValueError, match=r"`costs` must have shape \(B, 40\) or \(40,\)"):
        grid_shortest_path(5, 5).solve(np.zeros((3, 39)))
    with pytest.raises(ValueError, match=r"`costs` must be finite; found nan at index \[1, 4\]"):
        costs = np.zeros((2, 40))
        costs[1, 4] = np.nan
        grid_shortest_path(5, 5).solve(costs)


# -- assignment ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (4, 2)])
def test_assignment_against_brute_force_and_lp(shape):
    n_rows, n_cols = shape
    oracle = assignment(n_rows, n_cols)
    assert oracle.n == n_rows * n_cols
    costs = np.random.default_rng(n_rows).normal(size=(25, oracle.n))
    x, values = _check_against_lp(oracle, costs)
    points = []
    small, large = min(shape), max(shape)
    for perm in itertools.permutations(range(large), small):
        m = np.zeros(shape)
        for i, j in enumerate(perm):
            m[(i, j) if n_rows <= n_cols else (j, i)] = 1.0
        points.append(m.reshape(-1))
    np.testing.assert_allclose(values, _brute_force(costs, np.array(points)), atol=ATOL)
    # Row-major flattening: the single-vector call is the batch's first row.
    x0, v0 = oracle.solve(costs[0])
    np.testing.assert_array_equal(x0, x[0])
    assert float(v0) == values[0]


def test_assignment_row_major_example():
    x, values = assignment(2, 2).solve(np.array([[4.0, 1.0, 2.0, 5.0]]))
    np.testing.assert_array_equal(x, [[0, 1, 1, 0]])
    np.testing.assert_allclose(values, [3.0])


# -- top-k ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, k", [(5, 2), (4, 0), (4, 4), (6, 3)])
def test_top_k_against_brute_force_and_lp(n, k):
    oracle = top_k(n, k)
    costs = np.random.default_rng(n + k).normal(size=(20, n))
    _, values = _check_against_lp(oracle, costs)
    points = np.array(
        [np.isin(np.arange(n), s).astype(float) for s in itertools.combinations(range(n), k)]
    )
    np.testing.assert_allclose(values, _brute_force(costs, points), atol=ATOL)


def test_top_k_ties_go_to_lower_index():
    x, value = top_k(4, 2).solve([1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(x, [0, 1, 1, 0])
    assert float(value) == 0.0


def test_top_k_bad_arguments():
    with pytest.raises(ValueError, match=r"`k` must be at most `n` = 3"):
        top_k(3, 4)
    with pytest.raises(ValueError, match=r"`k` must be an integer >= 0"):
        top_k(3, -1)


# -- knapsack ------------------------------------------------------------------------


def _subsets(weights: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    n = weights.shape[1]
    points = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    return points[(points @ weights.T <= capacities + 1e-9).all(axis=1)]


@pytest.mark.parametrize("engine", ENGINES)
def test_knapsack_dp_against_brute_force_and_milp(engine):
    rng = np.random.default_rng(3)
    weights = rng.choice(np.arange(300, 800), size=(1, 8)) / 100  # PyEPO's two-decimal weights
    capacity = 12.0
    oracle = knapsack(weights, capacity, engine=engine)
    assert oracle.method == "dp"
    values_of_items = rng.integers(1, 10, size=(30, 8)).astype(float)
    costs = -values_of_items
    costs[:5, :3] = 2.0  # positive costs: never taken
    x, values = _check_against_lp(oracle, costs)
    np.testing.assert_allclose(
        values, _brute_force(costs, _subsets(weights, np.array([capacity]))), atol=ATOL
    )
    assert (x[:5, :3] == 0).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_knapsack_dp_ties_and_zero_weights(engine):
    # Two items of equal cost that cannot both fit: the earlier one is kept.
    x, value = knapsack([2, 2, 0], 3, engine=engine).solve([-1.0, -1.0, -0.5])
    np.testing.assert_array_equal(x, [1, 0, 1])
    assert float(value) == -1.5


def test_knapsack_multidimensional_uses_milp():
    rng = np.random.default_rng(4)
    weights = rng.uniform(1, 5, size=(2, 7))
    capacities = np.array([8.0, 9.0])
    oracle = knapsack(weights, capacities)
    assert oracle.method == "milp"
    costs = -rng.uniform(0, 10, size=(15, 7))
    _, values = _check_against_lp(oracle, costs)
    np.testing.assert_allclose(
        values, _brute_force(costs, _subsets(weights, capacities)), atol=1e-7
    )


def test_knapsack_maximization_by_negation():
    x, neg_best = knapsack([3.0, 2.0, 2.0], 4.0).solve(-np.array([[6.0, 5.0, 4.0]]))
    np.testing.assert_array_equal(x, [[0, 1, 1]])
    np.testing.assert_allclose(-neg_best, [9.0])


def test_knapsack_plugs_pyepo_data():
    data = pytest.importorskip("pyepo.data.knapsack", reason="pyepo not installed")
    weights, _, values = data.genData(10, 5, 12, dim=1, deg=4, noise_width=0.5, seed=0)
    oracle = knapsack(weights, 20.0)
    assert oracle.method == "dp"
    _check_against_lp(oracle, -values.astype(np.float64))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([1.0, np.nan], 3.0), {}, r"`weights` must be finite"),
        (([[1.0, 2.0]], [3.0, 4.0]), {}, r"`capacities` must be a scalar or have shape \(1,\)"),
        (([1.0, 2.0], np.inf), {}, r"`capacities` must be finite"),
        (([1.0, 2.0], 3.0), {"method": "greedy"}, r"`method` must be"),
        (([[1.0, 2.0], [1.0, 1.0]], [3.0, 3.0]), {"method": "dp"}, r"`method='dp'` needs one"),
        (([1.0, 2.0], 3.0), {"engine": "fortran"}, r"`engine` must be one of"),
    ],
)
def test_knapsack_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        knapsack(*args, **kwargs)


def test_oracles_import_without_torch_or_numba():
    import subprocess
    import sys

    code = (
        "import sys, solvers, solvers.oracles\n"
        "o = solvers.oracles.grid_shortest_path(3, 3, engine='numpy'); o.solve([0.0] * o.n)\n"
        "print(' '.join(m for m in ('torch', 'combgrad', 'numba') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _docstring_blocks():
    import re
    import textwrap

    import solvers.oracles as oracles
    from solvers.oracle import Oracle

    for obj in (Oracle, oracles.grid_shortest_path, oracles.grid_edges, oracles.assignment,
                oracles.top_k, oracles.knapsack):  # fmt: skip
        for k, block in enumerate(re.findall(r"```python\n(.*?)```", obj.__doc__ or "", re.S)):
            yield pytest.param(textwrap.dedent(block), id=f"{obj.__name__}-{k}")


@pytest.mark.parametrize("block", list(_docstring_blocks()))
def test_docstring_example_runs(block):
    exec(compile(block, "<docstring>", "exec"), {})
