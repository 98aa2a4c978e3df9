"""solve_batch: order, per-item failure isolation, and identical results on every path."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import solvers
from solvers import LinearProgram, Status
from tests.lp_cases import random_lp


def _summary(sols):
    return [
        (s.status, None if s.x is None else np.round(s.x, 9).tolist(), repr(s.objective), s.message)
        for s in sols
    ]


@pytest.fixture(scope="module")
def structure() -> LinearProgram:
    return random_lp(11, n=5, m_ub=3, m_eq=1)


@pytest.fixture(scope="module")
def costs() -> list:
    rng = np.random.default_rng(0)
    items = list(rng.normal(size=(7, 5)))
    items[3] = np.array([1.0, np.nan, 0.0, 0.0, 0.0])  # bad item
    items[5] = np.ones(4)  # wrong shape
    return items


def test_costs_with_structure_keep_order_and_isolate_failures(structure, costs):
    sols = solvers.solve_batch(costs, structure=structure)
    assert len(sols) == len(costs)
    for i, (c, sol) in enumerate(zip(costs, sols)):
        if i in (3, 5):
            assert sol.status is Status.ERROR and f"batch item {i}" in sol.message
            assert "`c`" in sol.message
            continue
        ref = solvers.solve(structure.with_costs(c))
        assert sol.status is Status.OPTIMAL
        assert sol.objective == pytest.approx(ref.objective, abs=1e-9)


def test_problems_one_infeasible_one_not_a_problem():
    ok = random_lp(1, 3, 2, 0)
    infeasible = LinearProgram([1.0], A_ub=[[1.0]], b_ub=[-1.0])
    sols = solvers.solve_batch([ok, infeasible, "not a problem", ok])
    assert [s.status for s in sols] == [
        Status.OPTIMAL,
        Status.INFEASIBLE,
        Status.ERROR,
        Status.OPTIMAL,
    ]
    assert "batch item 2" in sols[2].message


def test_workers_and_executor_give_identical_results(structure, costs):
    serial = solvers.solve_batch(costs, structure=structure)
    processes = solvers.solve_batch(costs, structure=structure, workers=2)
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = solvers.solve_batch(costs, structure=structure, executor=pool)
    assert _summary(serial) == _summary(processes) == _summary(threaded)


def test_a_two_dimensional_cost_array_is_a_batch(structure):
    C = np.random.default_rng(2).normal(size=(4, 5))
    sols = solvers.solve_batch(C, structure=structure)
    assert [s.objective for s in sols] == pytest.approx(
        [solvers.solve(structure.with_costs(c)).objective for c in C]
    )


def test_batch_argument_errors(structure):
    assert solvers.solve_batch([]) == []
    with pytest.raises(ValueError, match="`workers`"):
        solvers.solve_batch([structure], workers=0)
    with pytest.raises(TypeError, match="`structure`"):
        solvers.solve_batch([np.ones(5)], structure="lp")


def test_solver_reuse_equals_fresh_solves(structure):
    solver = solvers.Solver(structure)
    rng = np.random.default_rng(3)
    for _ in range(5):
        c = rng.normal(size=5)
        reused = solver.solve(c)
        fresh = solvers.solve(structure.with_costs(c))
        assert reused.objective == pytest.approx(fresh.objective, abs=1e-9)
        np.testing.assert_allclose(reused.duals_ub, fresh.duals_ub, atol=1e-9)
    warm = solvers.Solver(structure, options={"warm_start": True})
    c = rng.normal(size=5)
    assert warm.solve(c).objective == pytest.approx(
        solvers.solve(structure.with_costs(c)).objective
    )
