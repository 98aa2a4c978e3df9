"""Linear assignment: Hungarian solver vs its LP (HiGHS), vs brute force, batching, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers
from solvers import Status
from solvers.combinatorial import assignment, assignment_batch, assignment_lp

ATOL = 1e-9
SETTINGS = settings(max_examples=40, deadline=None)


def _lp_solution(lp: solvers.LinearProgram) -> solvers.Solution:
    return solvers.solve(lp, backend="highs")


def _brute_force(cost: np.ndarray, maximize: bool) -> float:
    """Best total over every matching that covers the smaller side (inf if none is allowed)."""
    n, m = cost.shape
    sign = -1.0 if maximize else 1.0
    best = np.inf
    if n <= m:
        for cols in itertools.permutations(range(m), n):
            best = min(best, sign * cost[np.arange(n), list(cols)].sum())
    else:
        for rows in itertools.permutations(range(n), m):
            best = min(best, sign * cost[list(rows), np.arange(m)].sum())
    return sign * best


def _assert_valid_matching(x: np.ndarray, shape: tuple[int, int]) -> None:
    n, m = shape
    mat = x.reshape(n, m)
    assert set(np.unique(mat)) <= {0.0, 1.0}
    assert (mat.sum(axis=1) <= 1).all() and (mat.sum(axis=0) <= 1).all()
    assert mat.sum() == min(n, m)


@st.composite
def cost_matrices(draw, forbidden: bool):
    n = draw(st.integers(1, 5))
    m = draw(st.integers(1, 5))
    values = st.one_of(
        st.integers(-3, 3).map(float), st.floats(-5, 5, allow_nan=False, allow_subnormal=False)
    )
    cost = np.array(draw(st.lists(values, min_size=n * m, max_size=n * m))).reshape(n, m)
    maximize = draw(st.booleans())
    if forbidden:
        mask = np.array(draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m)))
        cost[mask.reshape(n, m)] = -np.inf if maximize else np.inf
    return cost, maximize


@SETTINGS
@given(problem=cost_matrices(forbidden=False))
def test_matches_brute_force_and_lp(problem):
    cost, maximize = problem
    sol = assignment(cost, maximize=maximize)
    assert sol.status is Status.OPTIMAL and sol.backend == "assignment"
    _assert_valid_matching(sol.x, cost.shape)
    assert sol.objective == pytest.approx(_brute_force(cost, maximize), abs=ATOL)
    assert sol.objective == pytest.approx(float(cost.reshape(-1) @ sol.x), abs=ATOL)
    np.testing.assert_array_equal(sol.x.reshape(cost.shape)[sol.info["rows"], sol.info["cols"]], 1)
    lp = assignment_lp(cost, maximize=maximize)
    lp_sol = _lp_solution(lp)
    assert lp_sol.status is Status.OPTIMAL
    # The LP is a minimisation: for maximize it holds -cost and its value is the negation.
    sign = -1.0 if maximize else 1.0
    assert sign * lp_sol.objective == pytest.approx(sol.objective, abs=1e-7)
    assert lp.residuals(sol.x) <= 1e-12  # the matching is LP-feasible...
    assert lp.c @ sol.x == pytest.approx(lp_sol.objective, abs=1e-7)  # ...and LP-optimal


@SETTINGS
@given(problem=cost_matrices(forbidden=True))
def test_forbidden_pairs_and_infeasibility(problem):
    cost, maximize = problem
    expected = _brute_force(cost, maximize)
    sol = assignment(cost, maximize=maximize)
    lp_sol = _lp_solution(assignment_lp(cost, maximize=maximize))
    if np.isfinite(expected):
        assert sol.status is Status.OPTIMAL
        assert sol.objective == pytest.approx(expected, abs=ATOL)
        assert np.isfinite(cost.reshape(-1)[sol.x == 1]).all()  # no forbidden pair used
        sign = -1.0 if maximize else 1.0
        assert sign * lp_sol.objective == pytest.approx(expected, abs=1e-7)
    else:
        assert sol.status is Status.INFEASIBLE and sol.x is None
        assert sol.objective == (-np.inf if maximize else np.inf)
        assert lp_sol.status is Status.INFEASIBLE


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (3, 8), (9, 2), (20, 20)])
@pytest.mark.parametrize("maximize", [False, True])
def test_unique_optimum_equals_lp_vertex(shape, maximize):
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    cost = rng.normal(size=shape)
    sol = assignment(cost, maximize=maximize)
    lp_sol = _lp_solution(assignment_lp(cost, maximize=maximize))
    np.testing.assert_allclose(sol.x, lp_sol.x, atol=1e-7)  # continuous costs: unique
    assert (-1 if maximize else 1) * lp_sol.objective == pytest.approx(sol.objective, abs=1e-7)


def test_lp_layout_rectangular_and_forbidden():
    cost = np.array([[1.0, np.inf, 3.0], [4.0, 5.0, 6.0]])
    lp = assignment_lp(cost)
    assert lp.n_vars == 6 and lp.n_eq == 2 and lp.n_ub == 3
    np.testing.assert_array_equal(lp.c, [1.0, 0.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(lp.ub, [np.inf, 0.0, np.inf, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(lp.A_eq.toarray(), [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(lp.A_ub.toarray(), np.tile(np.eye(3), 2))
    tall = assignment_lp(cost.T)
    assert tall.n_eq == 2 and tall.n_ub == 3
    square = assignment_lp(np.ones((3, 3)))
    assert square.n_eq == 6 and square.n_ub == 0


def test_tie_breaking_is_deterministic_and_optimal():
    cost = np.ones((6, 6))
    first, again = assignment(cost), assignment(cost)
    np.testing.assert_array_equal(first.x, again.x)
    assert first.objective == 6.0
    _assert_valid_matching(first.x, cost.shape)


# --------------------------------------------------------------------------- batch
@pytest.mark.parametrize("maximize", [False, True])
def test_batch_equals_per_item_on_ragged_padded_batch(maximize):
    rng = np.random.default_rng(5 + maximize)
    batch, n_max, m_max = 23, 6, 5
    costs = rng.normal(size=(batch, n_max, m_max))
    rows = rng.integers(0, n_max + 1, batch)
    cols = rng.integers(0, m_max + 1, batch)
    rows[:3], cols[:3] = n_max, m_max
    forbidden = -np.inf if maximize else np.inf
    costs[1, :, 0] = forbidden  # item 1 is infeasible: column 0 (smaller side) has no row
    costs[2, 0, 0] = forbidden  # item 2 merely loses one pair
    pad = (np.arange(n_max)[None, :, None] >= rows[:, None, None]) | (
        np.arange(m_max)[None, None, :] >= cols[:, None, None]
    )
    costs[pad] = np.nan  # padding is never read
    values, indicator = assignment_batch(costs, maximize=maximize, row_counts=rows, col_counts=cols)
    assert values.shape == (batch,) and indicator.shape == costs.shape and indicator.dtype == bool
    assert not indicator[pad].any()
    for b in range(batch):
        n, m = int(rows[b]), int(cols[b])
        if n == 0 or m == 0:
            assert values[b] == 0.0 and not indicator[b].any()
            continue
        sol = assignment(costs[b, :n, :m], maximize=maximize)
        if b == 1:
            assert sol.status is Status.INFEASIBLE
            assert values[b] == sol.objective and not indicator[b].any()
            continue
        assert values[b] == sol.objective  # same summation order: bit-identical
        np.testing.assert_array_equal(indicator[b, :n, :m].reshape(-1), sol.x == 1)


def test_batch_without_counts_matches_loop():
    rng = np.random.default_rng(0)
    costs = rng.uniform(size=(8, 7, 9))
    values, indicator = assignment_batch(costs)
    for b in range(8):
        sol = assignment(costs[b])
        assert values[b] == sol.objective
        np.testing.assert_array_equal(indicator[b].reshape(-1), sol.x == 1)
    values, indicator = assignment_batch(np.zeros((0, 3, 3)))
    assert values.shape == (0,) and indicator.shape == (0, 3, 3)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("cost", "maximize", "match"),
    [
        (np.zeros(3), False, "`cost` must be 2-D"),
        (np.zeros((0, 2)), False, "`cost` must be non-empty"),
        (np.array([[np.nan, 1.0]]), False, "`cost` must not contain NaN"),
        (np.array([[-np.inf, 1.0]]), False, r"`cost` must not contain -inf"),
        (np.array([[np.inf, 1.0]]), True, r"`cost` must not contain \+inf"),
        ([["x"]], False, "`cost` must be a 2-D array"),
    ],
)
def test_bad_inputs_raise(cost, maximize, match):
    with pytest.raises(ValueError, match=match):
        assignment(cost, maximize=maximize)
    with pytest.raises(ValueError, match=match):
        assignment_lp(cost, maximize=maximize)


def test_batch_bad_inputs_raise():
    good = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="`costs` must be 3-D"):
        assignment_batch(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"`row_counts` must lie in \[0, 3\]"):
        assignment_batch(good, row_counts=[1, 4])
    with pytest.raises(ValueError, match=r"`col_counts` must have shape \(2,\)"):
        assignment_batch(good, col_counts=[1])
    bad = good.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`costs` must not contain NaN"):
        assignment_batch(bad)
    with pytest.raises(ValueError, match=r"`costs` must not contain NaN \(item 1\)"):
        assignment_batch(bad, row_counts=[3, 3])
    bad[1, 0, 0] = -np.inf
    with pytest.raises(ValueError, match="`costs` must not contain -inf"):
        assignment_batch(bad)


def test_batch_whose_only_item_is_infeasible_reports_inf():
    from solvers.combinatorial import assignment_batch

    values, indicator = assignment_batch(np.array([[[0.0, np.inf], [0.0, np.inf]]]))
    assert values.dtype == np.float64 and values[0] == np.inf
    assert not indicator.any()


def test_threaded_batch_equals_serial_batch():
    from solvers.combinatorial import assignment_batch

    rng = np.random.default_rng(5)
    costs = rng.normal(size=(37, 9, 11))
    costs[4, 2, :] = np.inf  # an infeasible row inside one threaded slice
    rows = rng.integers(0, 10, size=37)
    serial = assignment_batch(costs, row_counts=rows, threads=1)
    for threads in (2, 3, None):
        threaded = assignment_batch(costs, row_counts=rows, threads=threads)
        np.testing.assert_array_equal(serial[0], threaded[0])
        np.testing.assert_array_equal(serial[1], threaded[1])
    matched = assignment_batch(costs, row_counts=rows, threads=3, return_indices=True)[1]
    np.testing.assert_array_equal(matched >= 0, serial[1].any(2))
    np.testing.assert_array_equal(np.where(serial[1].any(2), serial[1].argmax(2), -1), matched)
    with pytest.raises(ValueError, match="`threads`"):
        assignment_batch(costs, threads=0)
