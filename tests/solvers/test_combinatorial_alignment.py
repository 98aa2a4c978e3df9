"""Needleman-Wunsch alignment: DP vs its lattice LP (HiGHS), vs brute force, engines, batching."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers
from solvers import BackendUnavailableError, Status
from solvers.combinatorial import (
    ENGINE_ENV_VAR,
    alignment,
    alignment_batch,
    alignment_lp,
    numba_available,
    resolve_engine,
)

ATOL = 1e-9
MATCH, ROW_GAP, COL_GAP = 0, 1, 2
NEEDS_NUMBA = pytest.mark.skipif(not numba_available(), reason="numba not installed")
ENGINES = ["numpy", pytest.param("numba", marks=NEEDS_NUMBA)]
SETTINGS = settings(max_examples=40, deadline=None)  # numba compiles on its first call


def _lp_objective_and_x(lp: solvers.LinearProgram) -> tuple[float, np.ndarray]:
    sol = solvers.solve(lp, backend="highs")
    assert sol.status is Status.OPTIMAL, sol.message
    return sol.objective, sol.x


def _all_paths(n: int, m: int):
    """Every monotone lattice path (0, 0) -> (n, m) as a tuple of move codes."""
    if n == 0 and m == 0:
        yield ()
        return
    if n > 0 and m > 0:
        for rest in _all_paths(n - 1, m - 1):
            yield (*rest, MATCH)
    if n > 0:
        for rest in _all_paths(n - 1, m):
            yield (*rest, ROW_GAP)
    if m > 0:
        for rest in _all_paths(n, m - 1):
            yield (*rest, COL_GAP)


def _path_cost(moves, sub_cost, row_gap, col_gap) -> float:
    i = j = 0
    total = 0.0
    for move in moves:
        if move == MATCH:
            total += sub_cost[i, j]
            i, j = i + 1, j + 1
        elif move == ROW_GAP:
            total += row_gap[i]
            i += 1
        else:
            total += col_gap[j]
            j += 1
    return total


def _moves_of(path_nodes) -> tuple[int, ...]:
    steps = np.diff(np.asarray(path_nodes), axis=0)
    codes = {(1, 1): MATCH, (1, 0): ROW_GAP, (0, 1): COL_GAP}
    return tuple(codes[tuple(step)] for step in steps.tolist())


def _gaps(gap_cost, n, m):
    if isinstance(gap_cost, tuple):
        return np.broadcast_to(gap_cost[0], (n,)), np.broadcast_to(gap_cost[1], (m,))
    return np.full(n, gap_cost), np.full(m, gap_cost)


@st.composite
def small_problems(draw, integer: bool):
    n = draw(st.integers(1, 4))
    m = draw(st.integers(1, 4))
    if integer:  # small integers and halves: exact sums, so many exact ties
        values = st.integers(-2, 4).map(float)
        gap_values = st.sampled_from([0.0, 0.5, 1.0, 2.0, -0.5])
    else:
        values = st.floats(-3, 3, allow_nan=False, allow_subnormal=False)
        gap_values = st.floats(-1, 2, allow_nan=False, allow_subnormal=False)
    sub_cost = np.array(draw(st.lists(values, min_size=n * m, max_size=n * m))).reshape(n, m)
    if draw(st.booleans()):
        gap_cost = draw(gap_values)
    else:
        gap_cost = (
            np.array(draw(st.lists(gap_values, min_size=n, max_size=n))),
            np.array(draw(st.lists(gap_values, min_size=m, max_size=m))),
        )
    return sub_cost, gap_cost


# --------------------------------------------------------------------------- exactness
@SETTINGS
@given(problem=small_problems(integer=True), engine=st.sampled_from(["numpy", "numba"]))
def test_matches_brute_force_and_follows_tie_breaking_rule(problem, engine):
    if engine == "numba" and not numba_available():
        engine = "numpy"
    sub_cost, gap_cost = problem
    n, m = sub_cost.shape
    row_gap, col_gap = _gaps(gap_cost, n, m)
    sol = alignment(sub_cost, gap_cost, engine=engine)
    costs = {path: _path_cost(path, sub_cost, row_gap, col_gap) for path in _all_paths(n, m)}
    best = min(costs.values())
    assert sol.status is Status.OPTIMAL
    assert sol.objective == best  # integer/half data: every sum is exact
    moves = _moves_of(sol.info["path"])
    assert costs[moves] == best
    # Documented rule: walking back from (n, m), prefer match < row gap < column gap among
    # moves that stay optimal, i.e. the lexicographically smallest *reversed* move list.
    optimal = [path for path, cost in costs.items() if cost == best]
    assert moves == min(optimal, key=lambda path: path[::-1])
    # x is the same path in the LP's variable order, consistent with match / gap counts.
    lp = alignment_lp(sub_cost, gap_cost)
    assert lp.residuals(sol.x) == 0.0
    assert lp.c @ sol.x == pytest.approx(best, abs=ATOL)
    assert sol.info["match"].sum() == moves.count(MATCH)
    assert sol.info["n_row_gaps"] == moves.count(ROW_GAP)
    assert sol.info["n_col_gaps"] == moves.count(COL_GAP)


@SETTINGS
@given(problem=small_problems(integer=False))
def test_continuous_costs_match_brute_force_and_lp(problem):
    sub_cost, gap_cost = problem
    n, m = sub_cost.shape
    row_gap, col_gap = _gaps(gap_cost, n, m)
    sol = alignment(sub_cost, gap_cost)
    best = min(_path_cost(p, sub_cost, row_gap, col_gap) for p in _all_paths(n, m))
    assert sol.objective == pytest.approx(best, abs=ATOL)
    lp_value, _ = _lp_objective_and_x(alignment_lp(sub_cost, gap_cost))
    assert sol.objective == pytest.approx(lp_value, abs=1e-7)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (8, 5), (12, 12)])
def test_unique_optimum_equals_lp_vertex(shape):
    rng = np.random.default_rng(sum(shape))
    sub_cost = rng.normal(size=shape)
    gap_cost = (rng.uniform(0.2, 1.5, shape[0]), rng.uniform(0.2, 1.5, shape[1]))
    sol = alignment(sub_cost, gap_cost)
    lp = alignment_lp(sub_cost, gap_cost)
    lp_value, lp_x = _lp_objective_and_x(lp)
    assert lp.n_vars == 3 * shape[0] * shape[1] + shape[0] + shape[1]
    assert sol.objective == pytest.approx(lp_value, abs=1e-7)
    np.testing.assert_allclose(sol.x, lp_x, atol=1e-7)  # continuous costs: unique optimum
    n, m = shape
    np.testing.assert_array_equal(sol.info["match"], sol.x[: n * m].reshape(n, m) == 1)


def test_lp_variable_order_is_documented_one():
    sub_cost = np.arange(6.0).reshape(2, 3) + 10
    lp = alignment_lp(sub_cost, (np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])))
    n, m = 2, 3
    np.testing.assert_array_equal(lp.c[: n * m], sub_cost.reshape(-1))
    np.testing.assert_array_equal(lp.c[n * m : n * m + n * (m + 1)], np.repeat([1.0, 2.0], m + 1))
    np.testing.assert_array_equal(lp.c[n * m + n * (m + 1) :], np.tile([3.0, 4.0, 5.0], n + 1))
    incidence = lp.A_eq.toarray()
    node = lambda i, j: i * (m + 1) + j  # noqa: E731
    # match (1, 2): (1, 2) -> (2, 3); row gap (1, 3): (1, 3) -> (2, 3); col gap (2, 0): (2,0)->(2,1)
    for edge, tail, head in (
        (1 * m + 2, node(1, 2), node(2, 3)),
        (n * m + 1 * (m + 1) + 3, node(1, 3), node(2, 3)),
        (n * m + n * (m + 1) + 2 * m + 0, node(2, 0), node(2, 1)),
    ):
        expected = np.zeros(lp.n_eq)
        expected[tail], expected[head] = 1.0, -1.0
        np.testing.assert_array_equal(incidence[:, edge], expected)
    assert lp.b_eq[0] == 1.0 and lp.b_eq[-1] == -1.0 and np.abs(lp.b_eq).sum() == 2.0


def test_all_equal_costs_path_is_optimal_and_deterministic():
    n, m = 6, 4
    sub_cost = np.ones((n, m))
    first = alignment(sub_cost, 0.5)
    again = alignment(sub_cost, 0.5)
    np.testing.assert_array_equal(first.x, again.x)
    assert first.info["path"] == again.info["path"]
    # With gap 0.5 a match (1.0) costs as much as two gaps: many ties; all-gaps value is 5.
    assert first.objective == 0.5 * (n + m)
    lp_value, _ = _lp_objective_and_x(alignment_lp(sub_cost, 0.5))
    assert first.objective == pytest.approx(lp_value)
    # The rule picks a match at the last cell whenever that stays optimal.
    assert first.info["path"][-2] == (n - 1, m - 1)


# --------------------------------------------------------------------------- engines, batch
def _random_batch(rng, batch, n_max, m_max, integer):
    if integer:
        sub_costs = rng.integers(-2, 5, size=(batch, n_max, m_max)).astype(float)
    else:
        sub_costs = rng.normal(size=(batch, n_max, m_max))
    n_len = rng.integers(0, n_max + 1, batch)
    m_len = rng.integers(0, m_max + 1, batch)
    n_len[0], m_len[0] = n_max, m_max  # at least one full item
    # Padding outside each item's block must never be read: poison it.
    rows = np.arange(n_max)[None, :, None] >= n_len[:, None, None]
    cols = np.arange(m_max)[None, None, :] >= m_len[:, None, None]
    sub_costs[rows | cols] = np.nan
    return sub_costs, n_len, m_len


@NEEDS_NUMBA
@pytest.mark.parametrize("integer", [True, False])
def test_numba_and_numpy_engines_agree_exactly(integer):
    rng = np.random.default_rng(7 + integer)
    sub_costs, n_len, m_len = _random_batch(rng, 33, 9, 12, integer)
    gaps = (rng.choice([0.5, 1.0, 1.5], size=(33, 9)), rng.choice([0.5, 1.0], size=(33, 12)))
    out_numba = alignment_batch(sub_costs, gaps, n_len, m_len, engine="numba")
    out_numpy = alignment_batch(sub_costs, gaps, n_len, m_len, engine="numpy")
    for a, b in zip(out_numba, out_numpy):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # parallel=None then picks the serial kernel twin
    try:
        out_one_thread = alignment_batch(sub_costs, gaps, n_len, m_len, engine="numba")
    finally:
        numba.set_num_threads(threads)
    for parallel in (True, False):
        out = alignment_batch(sub_costs, gaps, n_len, m_len, engine="numba", parallel=parallel)
        for a, b, c in zip(out, out_one_thread, out_numpy):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, c)
    single_numba = alignment(sub_costs[0], (gaps[0][0], gaps[1][0]), engine="numba")
    single_numpy = alignment(sub_costs[0], (gaps[0][0], gaps[1][0]), engine="numpy")
    np.testing.assert_array_equal(single_numba.x, single_numpy.x)
    assert single_numba.objective == single_numpy.objective


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("gap_kind", ["scalar", "per_item"])
def test_batch_equals_per_item_solver_on_ragged_batch(engine, gap_kind):
    rng = np.random.default_rng(3)
    batch, n_max, m_max = 17, 7, 6
    sub_costs, n_len, m_len = _random_batch(rng, batch, n_max, m_max, integer=True)
    if gap_kind == "scalar":
        gap_cost = 0.75
        row_gap, col_gap = np.full((batch, n_max), 0.75), np.full((batch, m_max), 0.75)
    else:
        row_gap = rng.uniform(0, 2, (batch, n_max))
        col_gap = rng.uniform(0, 2, (batch, m_max))
        gap_cost = (row_gap, col_gap)
    values, match, n_row_gaps, n_col_gaps = alignment_batch(
        sub_costs, gap_cost, n_len, m_len, engine=engine
    )
    assert values.shape == (batch,) and match.shape == (batch, n_max, m_max)
    assert match.dtype == bool and n_row_gaps.dtype == np.int64
    for b in range(batch):
        n, m = int(n_len[b]), int(m_len[b])
        assert not match[b, n:].any() and not match[b, :, m:].any()
        if n == 0 or m == 0:  # all gaps
            assert values[b] == pytest.approx(row_gap[b, :n].sum() + col_gap[b, :m].sum())
            assert (n_row_gaps[b], n_col_gaps[b]) == (n, m)
            continue
        sol = alignment(sub_costs[b, :n, :m], (row_gap[b, :n], col_gap[b, :m]), engine=engine)
        assert values[b] == sol.objective
        np.testing.assert_array_equal(match[b, :n, :m], sol.info["match"])
        assert (n_row_gaps[b], n_col_gaps[b]) == (sol.info["n_row_gaps"], sol.info["n_col_gaps"])
        # The value decomposes into the matched costs plus the gaps, as the loss will use it.
        row_is_gap = ~match[b, :n, :m].any(axis=1)
        col_is_gap = ~match[b, :n, :m].any(axis=0)
        recomposed = (
            sub_costs[b, :n, :m][match[b, :n, :m]].sum()
            + row_gap[b, :n][row_is_gap].sum()
            + col_gap[b, :m][col_is_gap].sum()
        )
        assert values[b] == pytest.approx(recomposed, abs=ATOL)
        assert row_is_gap.sum() == n_row_gaps[b] and col_is_gap.sum() == n_col_gaps[b]


@NEEDS_NUMBA
def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(2)
    batches = [rng.normal(size=(16, 20, 30)) for _ in range(6)]
    expected = [alignment_batch(costs, 0.5, engine="numpy") for costs in batches]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda c: alignment_batch(c, 0.5, engine="numba"), batches))
    for got, want in zip(results, expected):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_defaults_and_broadcast_gaps(engine):
    rng = np.random.default_rng(11)
    sub_costs = rng.normal(size=(4, 5, 3))
    row_gap = rng.uniform(0.1, 1, 5)  # (N,) broadcast over the batch
    full = alignment_batch(sub_costs, (row_gap, 0.3), engine=engine)
    explicit = alignment_batch(
        sub_costs, (np.tile(row_gap, (4, 1)), np.full((4, 3), 0.3)), [5] * 4, [3] * 4, engine=engine
    )
    for a, b in zip(full, explicit):
        np.testing.assert_array_equal(a, b)
    empty = alignment_batch(np.zeros((0, 5, 3)), 1.0, engine=engine)
    assert [a.shape for a in empty] == [(0,), (0, 5, 3), (0,), (0,)]


# --------------------------------------------------------------------------- engine selection
def test_engine_resolution(monkeypatch):
    monkeypatch.setenv(ENGINE_ENV_VAR, "numpy")
    assert resolve_engine(None) == "numpy"
    assert alignment(np.zeros((2, 2))).info["engine"] == "numpy"
    monkeypatch.setenv(ENGINE_ENV_VAR, "fortran")
    with pytest.raises(ValueError, match=ENGINE_ENV_VAR):
        resolve_engine(None)
    monkeypatch.delenv(ENGINE_ENV_VAR)
    assert resolve_engine(None) == ("numba" if numba_available() else "numpy")
    with pytest.raises(ValueError, match="`engine`"):
        alignment(np.zeros((2, 2)), engine="cuda")


def test_numpy_fallback_without_numba_and_lazy_imports():
    """numba and torch are not imported by the package; without numba: auto -> numpy and
    engine="numba" raises a clear error."""
    code = """
import sys
import numpy as np
import solvers.combinatorial as comb
from solvers import BackendUnavailableError
assert "numba" not in sys.modules, "importing the package loaded numba"
comb.alignment_batch(np.ones((2, 3, 3)), engine="numpy")
comb.assignment_batch(np.ones((2, 3, 3)))
comb.shortest_path_lp(__import__("networkx").DiGraph([(0, 1, {"weight": 1.0})]), 0, 1)
assert "torch" not in sys.modules, "the combinatorial solvers loaded torch"
sys.modules["numba"] = None  # from here on, `import numba` fails
assert not comb.numba_available()
assert comb.resolve_engine("auto") == "numpy"
assert comb.alignment(np.eye(3)).info["engine"] == "numpy"
try:
    comb.alignment(np.eye(3), engine="numba")
except BackendUnavailableError as exc:
    assert "numba" in str(exc)
else:
    raise SystemExit("engine='numba' did not raise")
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != ENGINE_ENV_VAR}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_backend_unavailable_is_a_value_error():
    assert issubclass(BackendUnavailableError, ValueError)


# --------------------------------------------------------------------------- input validation
@pytest.mark.parametrize(
    ("sub_cost", "gap_cost", "match"),
    [
        (np.zeros(3), 1.0, "`sub_cost` must be 2-D"),
        (np.zeros((0, 3)), 1.0, "`sub_cost` must be non-empty"),
        (np.array([[1.0, np.nan]]), 1.0, "`sub_cost` must not contain NaN"),
        (np.array([[1.0, np.inf]]), 1.0, "`sub_cost` must contain only finite"),
        (np.zeros((2, 3)), np.nan, "`gap_cost` must contain only finite"),
        (np.zeros((2, 3)), (np.ones(3), 1.0), r"`gap_cost\[0\] \(row_gap\)` must be a scalar"),
        (np.zeros((2, 3)), (1.0, np.ones(2)), r"`gap_cost\[1\] \(col_gap\)` must be a scalar"),
        (np.zeros((2, 3)), (1.0, [1.0, np.inf, 1.0]), r"`gap_cost\[1\] \(col_gap\)` must contain"),
        (np.zeros((2, 3)), np.ones(2), "`gap_cost` must be a scalar or a pair"),
        ([["a", "b"]], 1.0, "`sub_cost` must be a 2-D array of numbers"),
    ],
)
def test_single_bad_inputs_raise(sub_cost, gap_cost, match):
    with pytest.raises(ValueError, match=match):
        alignment(sub_cost, gap_cost)
    with pytest.raises(ValueError, match=match):
        alignment_lp(sub_cost, gap_cost)


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_bad_inputs_raise(engine):
    good = np.zeros((2, 3, 4))
    cases = [
        (dict(sub_costs=np.zeros((3, 4))), "`sub_costs` must be 3-D"),
        (dict(n_lengths=[1, 4]), r"`n_lengths` must lie in \[0, 3\]; item 1 has 4"),
        (dict(m_lengths=[-1, 4]), r"`m_lengths` must lie in \[0, 4\]; item 0 has -1"),
        (dict(n_lengths=[1, 2, 3]), r"`n_lengths` must have shape \(2,\)"),
        (dict(n_lengths=[1.5, 2]), "`n_lengths` must hold integers"),
        (dict(gap_cost=(np.ones((2, 4)), 1.0)), r"`gap_cost\[0\] \(row_gap\)` must be a scalar"),
        (dict(gap_cost=np.ones(3)), "`gap_cost` must be a scalar or a pair"),
        (dict(gap_cost=np.inf), "`gap_cost` must be finite"),
    ]
    for changes, match in cases:
        args = dict(sub_costs=good, gap_cost=1.0, n_lengths=None, m_lengths=None) | changes
        with pytest.raises(ValueError, match=match):
            alignment_batch(**args, engine=engine)
    poisoned = good.copy()
    poisoned[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"`sub_costs` must be finite .* item 1"):
        alignment_batch(poisoned, 1.0, engine=engine)
    # ...but NaN in the padding of a shorter item is fine.
    values, *_ = alignment_batch(poisoned, 1.0, [3, 2], [4, 4], engine=engine)
    assert np.isfinite(values).all()
