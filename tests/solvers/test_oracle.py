"""`solvers.Oracle`: shapes, values, validation and failures, for every constructor path."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import solvers
from solvers import InfeasibleError, LinearProgram, Oracle, SolverError, UnboundedError


def _simplex_lp(n: int = 3) -> LinearProgram:
    """Pick exactly one of n items (the probability simplex, vertices = unit vectors)."""
    return LinearProgram(np.zeros(n), A_eq=np.ones((1, n)), b_eq=[1.0], bounds=(0, 1))


def _two_of_four_milp() -> LinearProgram:
    """Choose 2 of 4 binary items, at most one of items 0 and 1."""
    return LinearProgram(
        np.zeros(4),
        A_eq=[[1, 1, 1, 1]],
        b_eq=[2],
        A_ub=[[1, 1, 0, 0]],
        b_ub=[1],
        bounds=(0, 1),
        integrality=1,
    )


def _brute_force(costs: np.ndarray, feasible: list[np.ndarray]) -> np.ndarray:
    points = np.array(feasible, dtype=float)
    return (costs @ points.T).min(axis=-1)


def test_lazy_export():
    assert solvers.Oracle is Oracle
    assert "Oracle" in solvers.__all__


def test_from_problem_lp_batch_and_single():
    oracle = Oracle.from_problem(_simplex_lp())
    assert oracle.n == 3
    costs = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    x, values = oracle.solve(costs)
    assert x.shape == (2, 3) and values.shape == (2,)
    np.testing.assert_array_equal(x, [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(values, [1.0, -1.0])
    x1, v1 = oracle.solve(costs[1])
    assert x1.shape == (3,) and v1.shape == ()
    np.testing.assert_array_equal(x1, x[1])
    assert float(v1) == values[1]


def test_from_problem_milp_against_enumeration():
    lp = _two_of_four_milp()
    feasible = [
        np.array(p) for p in itertools.product([0, 1], repeat=4) if sum(p) == 2 and p[0] + p[1] <= 1
    ]
    rng = np.random.default_rng(0)
    costs = rng.normal(size=(20, 4))
    x, values = Oracle.from_problem(lp).solve(costs)
    np.testing.assert_allclose(values, _brute_force(costs, feasible), atol=1e-9)
    np.testing.assert_allclose(values, (costs * x).sum(-1))
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert (x.sum(1) == 2).all() and (x[:, 0] + x[:, 1] <= 1).all()


def test_empty_batch():
    x, values = Oracle.from_problem(_simplex_lp()).solve(np.zeros((0, 3)))
    assert x.shape == (0, 3) and values.shape == (0,)


@pytest.mark.parametrize(
    "costs, match",
    [
        (np.zeros(4), r"`costs` must have shape \(B, 3\) or \(3,\)"),
        (np.zeros((2, 4)), r"`costs` must have shape"),
        (np.zeros((2, 2, 3)), r"`costs` must have shape"),
        (np.array([[0.0, np.nan, 1.0]]), r"`costs` must be finite; found nan at index \[0, 1\]"),
        (np.array([0.0, 1.0, np.inf]), r"`costs` must be finite; found inf at index \[2\]"),
        ("abc", r"`costs` must be a"),
    ],
)
def test_bad_costs(costs, match):
    with pytest.raises(ValueError, match=match):
        Oracle.from_problem(_simplex_lp()).solve(costs)


def test_infeasible_item_is_named():
    lp = LinearProgram([0.0, 0.0], A_eq=[[1, 1]], b_eq=[3.0], bounds=(0, 1))
    with pytest.raises(InfeasibleError, match=r"batch item 0 has no optimum \(2 items failed"):
        Oracle.from_problem(lp).solve(np.ones((2, 2)))


def test_unbounded_item_is_named():
    # x0 - x1 = 0, x >= 0: unbounded below exactly when c0 + c1 < 0.
    lp = LinearProgram([0.0, 0.0], A_eq=[[1, -1]], b_eq=[0.0])
    oracle = Oracle.from_problem(lp)
    with pytest.raises(UnboundedError, match="batch item 2 has no optimum"):
        oracle.solve(np.array([[1.0, 1.0], [0.0, 2.0], [-1.0, -1.0]]))
    # The oracle stays usable after a failure.
    _, values = oracle.solve(np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(values, [0.0])


def test_from_problem_bad_arguments():
    with pytest.raises(TypeError, match=r"`lp` must be a solvers\.LinearProgram"):
        Oracle.from_problem(np.zeros(3))
    with pytest.raises(ValueError, match="`workers` must be a positive integer"):
        Oracle.from_problem(_simplex_lp(), workers=0)
    with pytest.raises(solvers.BackendUnavailableError):
        Oracle.from_problem(_simplex_lp(), backend="no-such-backend")


def test_from_problem_is_picklable():
    oracle = pickle.loads(pickle.dumps(Oracle.from_problem(_simplex_lp())))
    x, _ = oracle.solve([2.0, 1.0, 3.0])
    np.testing.assert_array_equal(x, [0, 1, 0])


@pytest.mark.slow
def test_from_problem_workers_match_serial():
    rng = np.random.default_rng(1)
    costs = rng.normal(size=(9, 4))
    x_serial, v_serial = Oracle.from_problem(_two_of_four_milp()).solve(costs)
    with Oracle.from_problem(_two_of_four_milp(), workers=2) as oracle:
        x_pool, v_pool = oracle.solve(costs)
        x_again, _ = oracle.solve(costs[::-1])
    np.testing.assert_array_equal(x_pool, x_serial)
    np.testing.assert_array_equal(v_pool, v_serial)
    np.testing.assert_array_equal(x_again, x_serial[::-1])


# -- from_callable -------------------------------------------------------------------


def _one_hot_argmin(costs: np.ndarray) -> np.ndarray:
    x = np.zeros_like(costs)
    x[np.arange(costs.shape[0]), costs.argmin(1)] = 1.0
    return x


def test_from_callable_batched_matches_lp():
    rng = np.random.default_rng(2)
    costs = rng.normal(size=(7, 3))
    x, values = Oracle.from_callable(_one_hot_argmin, 3).solve(costs)
    x_lp, values_lp = Oracle.from_problem(_simplex_lp()).solve(costs)
    np.testing.assert_array_equal(x, x_lp)
    np.testing.assert_allclose(values, values_lp)


def test_from_callable_unbatched_with_values():
    def fn(c):
        x = np.zeros(3)
        x[c.argmin()] = 1.0
        return x, c.min()

    x, value = Oracle.from_callable(fn, 3, batched=False).solve([2.0, -1.0, 0.0])
    np.testing.assert_array_equal(x, [0, 1, 0])
    assert value.shape == () and float(value) == -1.0


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda c: np.zeros((c.shape[0], 2)), r"must return x of shape \(2, 3\)"),
        (lambda c: np.full(c.shape, np.nan), "non-finite solution for batch item 0"),
        (lambda c: (np.zeros(c.shape), np.zeros(5)), r"must return values of shape \(2,\)"),
        (lambda c: (1, 2, 3), "must return x or a pair"),
    ],
)
def test_from_callable_bad_output(fn, match):
    with pytest.raises(SolverError, match=match):
        Oracle.from_callable(fn, 3).solve(np.zeros((2, 3)))


def test_from_callable_bad_arguments():
    with pytest.raises(TypeError, match="`fn` must be callable"):
        Oracle.from_callable(3, 3)
    with pytest.raises(ValueError, match="`n` must be a positive integer"):
        Oracle.from_callable(_one_hot_argmin, 0)


def test_user_costs_are_not_modified():
    def fn(c):
        x = _one_hot_argmin(c)
        c[:] = 0.0  # a careless user solver
        return x

    costs = np.array([[1.0, 2.0, 3.0]])
    Oracle.from_callable(fn, 3).solve(costs)
    np.testing.assert_array_equal(costs, [[1.0, 2.0, 3.0]])
