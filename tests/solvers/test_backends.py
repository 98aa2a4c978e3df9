"""Every backend, one contract: statuses, known optima, the dual sign convention, capabilities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import solvers
from solvers import LinearProgram, Status
from tests.conftest import LP_BACKENDS, MILP_BACKENDS
from tests.lp_cases import random_lp

ALL_BACKENDS = solvers.available_backends()
CONTINUOUS_BACKENDS = [b for b in ALL_BACKENDS if b != "cp-sat"]


def objective_tol(backend: str) -> float:
    return 1e-5 if backend == "pdlp" else 1e-7


# A small LP with a unique, nondegenerate optimum, worked by hand:
# min -x - 2y  s.t.  x + y <= 4,  x - y == 1,  x, y >= 0  ->  x = 2.5, y = 1.5, z = -5.5.
# z(b_ub, b_eq) = -1.5 b_ub + 0.5 b_eq + ..., so dz/db_ub = -1.5 and dz/db_eq = 0.5.
HAND_LP = LinearProgram([-1.0, -2.0], A_ub=[[1.0, 1.0]], b_ub=[4.0], A_eq=[[1.0, -1.0]], b_eq=[1.0])


@pytest.mark.parametrize("backend", LP_BACKENDS)
def test_hand_worked_lp_with_duals(backend):
    sol = solvers.solve(HAND_LP, backend)
    assert sol.success and sol.status is Status.OPTIMAL, sol.message
    tol = objective_tol(backend)
    assert sol.objective == pytest.approx(-5.5, rel=tol)
    np.testing.assert_allclose(sol.x, [2.5, 1.5], atol=1e-5)
    np.testing.assert_allclose(sol.duals_ub, [-1.5], atol=1e-5)
    np.testing.assert_allclose(sol.duals_eq, [0.5], atol=1e-5)
    assert sol.backend == backend and sol.solve_time >= 0


@pytest.mark.parametrize("backend", MILP_BACKENDS)
def test_integer_program_is_solved_as_integer(backend):
    # LP relaxation optimum is fractional (x + y <= 4.5); the integer optimum is (0, 4), z = -8.
    mip = LinearProgram([-1.0, -2.0], A_ub=[[1.0, 1.0]], b_ub=[4.5], bounds=(0, 10), integrality=1)
    sol = solvers.solve(mip, backend)
    assert sol.success, sol.message
    assert sol.objective == pytest.approx(-8.0)
    np.testing.assert_allclose(sol.x, [0.0, 4.0], atol=1e-6)
    assert sol.duals_ub is None and sol.duals_eq is None


@pytest.mark.parametrize("backend", [b for b in MILP_BACKENDS if b != "cp-sat"])
def test_mixed_integer_program(backend):
    mip = LinearProgram(
        [-1.0, -2.0], A_ub=[[1.0, 1.0]], b_ub=[4.5], bounds=(0, 10), integrality=[0, 1]
    )
    sol = solvers.solve(mip, backend)
    assert sol.objective == pytest.approx(-8.5)
    np.testing.assert_allclose(sol.x, [0.5, 4.0], atol=1e-6)


@pytest.mark.parametrize("backend", CONTINUOUS_BACKENDS)
def test_infeasible_problem(backend):
    sol = solvers.solve(LinearProgram([1.0, 1.0], A_ub=[[1.0, 1.0]], b_ub=[-1.0]), backend)
    assert sol.status is Status.INFEASIBLE, sol.message
    assert sol.objective == np.inf and sol.x is None and not sol.success
    with pytest.raises(solvers.InfeasibleError, match=backend):
        sol.raise_for_status()


@pytest.mark.parametrize("backend", CONTINUOUS_BACKENDS)
def test_unbounded_problem(backend):
    sol = solvers.solve(LinearProgram([-1.0, 1.0], A_ub=[[-1.0, 1.0]], b_ub=[1.0]), backend)
    assert sol.status in (Status.UNBOUNDED, Status.INFEASIBLE_OR_UNBOUNDED), sol.message
    with pytest.raises(solvers.SolverError):
        sol.raise_for_status()
    if sol.status is Status.UNBOUNDED:
        assert sol.objective == -np.inf
        with pytest.raises(solvers.UnboundedError):
            sol.raise_for_status()


def test_highs_resolves_infeasible_or_unbounded_to_a_definite_status():
    sol = solvers.solve(LinearProgram([-1.0, 1.0], A_ub=[[-1.0, 1.0]], b_ub=[1.0]), "highs")
    assert sol.status is Status.UNBOUNDED


@pytest.mark.parametrize("backend", CONTINUOUS_BACKENDS)
def test_problem_without_constraints(backend):
    sol = solvers.solve(LinearProgram([1.0, 2.0], bounds=(1, 3)), backend)
    assert sol.objective == pytest.approx(3.0, rel=1e-6)
    np.testing.assert_allclose(sol.x, [1.0, 1.0], atol=1e-6)


def _market_split(seed: int = 0, m: int = 4, n: int = 40) -> LinearProgram:
    """Cornuejols-Dawande market split: tiny, and far too hard to finish in a fraction of a second."""
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 100, size=(m, n)).astype(float)
    return LinearProgram(
        np.zeros(n), A_eq=A, b_eq=np.floor(A.sum(1) / 2), bounds=(0, 1), integrality=1
    )


@pytest.mark.parametrize("backend", [b for b in MILP_BACKENDS if b != "cvxpy"] + ["cvxpy"])
def test_time_limit_is_reported(backend):
    sol = solvers.solve(_market_split(), backend, time_limit=0.2)
    assert sol.status is Status.TIME_LIMIT, sol.message
    assert sol.solve_time < 5.0
    with pytest.raises(solvers.TimeLimitError):
        sol.raise_for_status()


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_bad_time_limit(bad):
    with pytest.raises(ValueError, match="`time_limit`"):
        solvers.solve(HAND_LP, time_limit=bad)


@pytest.mark.parametrize("backend", ["glop", "pdlp"])
def test_lp_only_backend_refuses_integers_instead_of_relaxing(backend):
    mip = LinearProgram([-1.0, -2.0], A_ub=[[1.0, 1.0]], b_ub=[4.5], integrality=1)
    with pytest.raises(solvers.CapabilityError, match="relaxation"):
        solvers.solve(mip, backend)
    assert solvers.solve(mip.relaxation(), backend).objective == pytest.approx(-9.0, rel=1e-6)


def test_cp_sat_refuses_continuous_variables():
    with pytest.raises(solvers.CapabilityError, match="continuous"):
        solvers.solve(HAND_LP, "cp-sat")


def test_unknown_backend_lists_the_available_ones():
    with pytest.raises(solvers.BackendUnavailableError, match="Available: \\['highs'"):
        solvers.solve(HAND_LP, "gurobi")
    with pytest.raises(ValueError):  # BackendUnavailableError is also a ValueError
        solvers.solve(HAND_LP, "nope")


def test_solve_rejects_non_problems():
    with pytest.raises(TypeError, match="`problem`"):
        solvers.solve({"c": [1.0]})  # type: ignore[arg-type]


def test_bad_highs_option_is_named():
    with pytest.raises(ValueError, match="no_such_option"):
        solvers.solve(HAND_LP, options={"no_such_option": 1})


def test_bad_ortools_option_is_named():
    with pytest.raises(ValueError, match="unknown option"):
        solvers.solve(HAND_LP, "glop", options={"presolve": False})


def test_highs_thread_pool_trap_is_an_error_not_a_fast_solve():
    """Changing `threads` after a solve makes HiGHS run() fail in microseconds; that must not
    look like success."""
    solvers.solve(HAND_LP)
    sol = solvers.solve(HAND_LP, options={"threads": 3})
    assert sol.status is Status.ERROR and "threads" in sol.message
    assert solvers.solve(HAND_LP).success  # later solves are unaffected


def test_registry_flags():
    info = solvers.backend_info()
    assert info["highs"]["integer"] and info["highs"]["duals"]
    assert not info["glop"]["integer"] and info["glop"]["duals"]
    assert not info["cp-sat"]["continuous"]
    assert not info["pdlp"]["exact"]
    assert "highs" in solvers.available_backends(integer=True, duals=True)


# -- the dual sign convention, proven by finite differences --------------------------------


def _value(lp: LinearProgram, backend: str) -> float:
    sol = solvers.solve(lp, backend)
    assert sol.success, sol.message
    return sol.objective


def check_duals_by_finite_differences(lp: LinearProgram, backend: str, h: float) -> None:
    sol = solvers.solve(lp, backend)
    assert sol.success, sol.message
    for kind in ("ub", "eq"):
        b = getattr(lp, f"b_{kind}")
        duals = getattr(sol, f"duals_{kind}")
        assert duals.shape == b.shape
        if kind == "ub":
            assert (duals <= 0).all(), "duals_ub must be <= 0 (dz/db of a <= row)"
        for i in range(b.shape[0]):
            step = np.zeros_like(b)
            step[i] = h
            up = _value(lp.replace(**{f"b_{kind}": b + step}), "highs")
            down = _value(lp.replace(**{f"b_{kind}": b - step}), "highs")
            # A kink at b (degenerate optimum) has no derivative: skip such draws.
            assume(abs((up - sol.objective) - (sol.objective - down)) < 1e-7)
            assert duals[i] == pytest.approx((up - down) / (2 * h), abs=1e-4), (kind, i)


@pytest.mark.parametrize("backend", LP_BACKENDS)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(2, 6),
    m_ub=st.integers(0, 4),
    m_eq=st.integers(0, 2),
)
def test_duals_are_sensitivities_of_the_optimal_value(backend, seed, n, m_ub, m_eq):
    """duals_eq = dz/db_eq and duals_ub = dz/db_ub, for every backend, on random LPs."""
    assume(m_eq < n)
    check_duals_by_finite_differences(random_lp(seed, n, m_ub, m_eq), backend, h=1e-5)


@pytest.mark.parametrize("backend", LP_BACKENDS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 8), m_ub=st.integers(0, 5))
def test_backends_agree_with_highs_and_strong_duality_holds(backend, seed, n, m_ub):
    lp = random_lp(seed, n, m_ub, 1)
    ref = solvers.solve(lp, "highs")
    sol = solvers.solve(lp, backend)
    assert sol.status is ref.status is Status.OPTIMAL
    assert sol.objective == pytest.approx(ref.objective, rel=objective_tol(backend), abs=1e-6)
    # Strong duality with bounds: z = b.y + sum over bounds of (bound * reduced cost).
    reduced = lp.c - lp.A_ub.T @ sol.duals_ub - lp.A_eq.T @ sol.duals_eq
    at_upper = reduced < 0  # bounds are [0, 5]: a negative reduced cost pins x at 5
    dual_value = lp.b_ub @ sol.duals_ub + lp.b_eq @ sol.duals_eq + 5.0 * reduced[at_upper].sum()
    assert dual_value == pytest.approx(sol.objective, rel=1e-4, abs=1e-4)


def test_matrix_entries_highs_refuses_raise_a_capability_error_naming_the_limit():
    # HiGHS treats |a_ij| >= 1e15 as infinite and refuses the model in passModel: the
    # request is refused up front, naming the argument and HiGHS' limit.
    with pytest.raises(solvers.CapabilityError, match=r"`A_ub`.*HiGHS.*1e\+15"):
        solvers.solve(LinearProgram([1.0], A_ub=[[1e16]], b_ub=[1.0]))


def test_highs_banner_never_reaches_a_redirected_stdout():
    import subprocess
    import sys

    code = (
        "import contextlib, io, solvers\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    solvers.solve(solvers.LinearProgram([1.0]))\n"
        "print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "done", out.stdout
