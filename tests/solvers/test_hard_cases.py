"""Hard cases from scipy's linprog/milp tests and issue 10: statuses must never be wrong.

Each test pins one failure that a backend used to report silently (a wrong OPTIMAL or
INFEASIBLE, a dropped incumbent, an exception naming nothing); expected values come from
HiGHS, from another backend, or from scipy itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from scipy.optimize import Bounds, linprog

import solvers
from solvers import CapabilityError, LinearProgram, Solution, Status, solve
from solvers._solve import _verify
from tests.conftest import INSTANCES

LP_BACKENDS = [b for b in solvers.available_backends() if b != "cp-sat"]

# scipy's test_bug_10466 (test_linprog.py): badly scaled, optimum -8589934560.
BUG_10466_A_EQ = [
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    [1, 0, 1, 0, 1, 0, -1, 0, 0, 0, 0, 0, 0],
    [1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0],
    [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    [1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0],
    [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0],
    [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
]
BUG_10466_B_EQ = [3.145728e8, 4.194304e8, 5.24288e8, 1.00663296e9] + [1.07374182e9] * 6


def bug_10466() -> LinearProgram:
    return LinearProgram([-8, 0, -8, 0, -8] + [0] * 8, A_eq=BUG_10466_A_EQ, b_eq=BUG_10466_B_EQ)


def lad_regression() -> tuple:
    """scipy's l1_regression_prob (test_linprog.py::test_lad_regression), same seed."""
    rng = np.random.default_rng(72847583923592458453)
    m, d, n = 8, 9, 100
    phi = rng.normal(0, 1, size=(m, d))
    w_true = rng.standard_normal(m)
    x = rng.normal(0, 1, size=(d, n))
    y = w_true @ (phi @ x) + rng.normal(0, 1e-5, size=n)
    c = np.ones(m + n)
    c[:m] = 0
    A_ub = scipy.sparse.lil_array((2 * n, n + m))
    for i in range(n):
        A_ub[2 * i, :m] = phi @ x[:, i]
        A_ub[2 * i, m + i] = -1
        A_ub[2 * i + 1, :m] = -phi @ x[:, i]
        A_ub[2 * i + 1, m + i] = -1
    b_ub = np.zeros(2 * n)
    b_ub[0::2] = y
    b_ub[1::2] = -y
    return c, A_ub.tocsc(), b_ub, [(None, None)] * m + [(0, None)] * n


def assert_never_wrong(sol: Solution, problem: LinearProgram, optimum: float | None) -> None:
    """OPTIMAL only at the true optimum; otherwise a weaker status than a wrong claim."""
    if optimum is None:  # infeasible
        assert sol.status in (Status.INFEASIBLE, Status.NUMERICAL, Status.ERROR), sol
        return
    assert sol.status not in (Status.INFEASIBLE, Status.UNBOUNDED), sol
    assert sol.status is not Status.INFEASIBLE_OR_UNBOUNDED, sol
    if sol.status is Status.OPTIMAL:
        assert sol.objective == pytest.approx(optimum, rel=1e-6, abs=1e-6), sol
        assert problem.residuals(sol.x) <= 1e-5 * (1 + np.abs(problem.b_eq).max(initial=0))


# -- item 1: an infeasibility claim must be trustworthy -----------------------------------


@pytest.mark.parametrize("backend", LP_BACKENDS)
def test_bug_10466_is_never_called_infeasible(backend):
    problem = bug_10466()
    sol = solve(problem, backend)
    assert_never_wrong(sol, problem, -8589934560.0)
    if backend != "pdlp":  # the exact backends solve it
        assert sol.status is Status.OPTIMAL, sol.message


def test_pdlp_infeasibility_claim_is_refuted_and_reported_weaker():
    sol = solve(bug_10466(), "pdlp")
    # PDLP itself says PRIMAL_INFEASIBLE; a simplex feasibility solve finds a point.
    assert sol.status is Status.NUMERICAL, sol.message
    assert "feasible point" in sol.message


@pytest.mark.parametrize("backend", LP_BACKENDS)
def test_a_truly_infeasible_lp_is_still_infeasible(backend):
    # scipy's test_infeasible: x0 + x1 <= -1 with x >= 0 (plus an equality).
    problem = LinearProgram([-1, -1], A_ub=[[1, 1]], b_ub=[-1], A_eq=[[1, -1]], b_eq=[0])
    assert solve(problem, backend).status is Status.INFEASIBLE


@pytest.mark.parametrize("backend", LP_BACKENDS)
def test_an_unbounded_lp_is_unbounded_or_weaker_never_optimal(backend):
    # scipy's test_unbounded: min -x0 - x1, x0 - x1 <= 1, x >= 0.
    problem = LinearProgram([-1, -1], A_ub=[[1, -1]], b_ub=[1])
    sol = solve(problem, backend)
    assert sol.status in (Status.UNBOUNDED, Status.INFEASIBLE_OR_UNBOUNDED), sol.message


# -- item 2: a huge cost, and cvxpy's raw errors -------------------------------------------


@pytest.mark.parametrize("backend", LP_BACKENDS)
def test_a_huge_cost_gives_the_optimum_a_clear_error_or_a_weaker_status(backend):
    problem = LinearProgram([1e30, -1], bounds=(0, 1))  # optimum -1 at x = (0, 1)
    try:
        sol = solve(problem, backend)
    except CapabilityError as exc:  # the backend reads 1e30 as infinite: refused, named
        assert "`c`" in str(exc) and "1e+20" in str(exc)
        return
    assert_never_wrong(sol, problem, -1.0)


def test_pdlp_wrong_optimum_for_a_huge_cost_is_caught_by_the_dual_check():
    sol = solve(LinearProgram([1e30, -1], bounds=(0, 1)), "pdlp")
    assert sol.status is Status.NUMERICAL, sol
    assert "duals do not certify" in sol.message


def test_cvxpy_with_a_solver_that_mishandles_huge_values_refuses_them():
    problem = LinearProgram([1e30, -1], bounds=(0, 1))
    with pytest.raises(CapabilityError, match="CLARABEL"):
        solve(problem, "cvxpy", options={"solver": "CLARABEL"})


# -- item 3: numbers a backend would silently change -------------------------------------

OUT_OF_RANGE = {
    "tiny coefficient": (LinearProgram([-1], A_ub=[[1e-10]], b_ub=[1]), "A_ub", -1e10),
    "huge right-hand side": (LinearProgram([-1], A_ub=[[1]], b_ub=[1e30]), "b_ub", -1e30),
    "huge bound": (LinearProgram([-1], bounds=(0, 1e25)), "bounds", -1e25),
    "huge equality": (
        LinearProgram([1], A_eq=[[1]], b_eq=[-1e21], bounds=(None, None)),
        "b_eq",
        -1e21,
    ),
}


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
@pytest.mark.parametrize("backend", ["highs", "scip", "cvxpy"])
def test_values_outside_a_backend_range_raise_naming_argument_and_limit(case, backend):
    problem, argument, _ = OUT_OF_RANGE[case]
    with pytest.raises(CapabilityError) as excinfo:
        solve(problem, backend)
    message = str(excinfo.value)
    assert f"`{argument}`" in message and backend in message
    assert ("1e-09" if argument == "A_ub" else "1e+20") in message


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
def test_glop_has_no_such_limit_and_solves_the_problem_as_given(case):
    problem, _, optimum = OUT_OF_RANGE[case]
    sol = solve(problem, "glop")
    assert sol.status is Status.OPTIMAL and sol.objective == pytest.approx(optimum, rel=1e-9)


def test_new_costs_out_of_range_are_refused_on_resolve():
    solver = solvers.Solver(LinearProgram([1.0, 1.0], bounds=(0, 1)), "highs")
    assert solver.solve([1.0, -1.0]).objective == pytest.approx(-1.0)
    with pytest.raises(CapabilityError, match="`c`"):
        solver.solve([1e21, -1.0])


def test_resolve_costs_are_validated_and_copied_on_every_path():
    # A float64 array of the right shape takes the re-solve's fast path; lists and other
    # dtypes the general one. Both must refuse the same inputs and never keep the caller's array.
    solver = solvers.Solver(LinearProgram([1.0, 1.0], bounds=(0, 1)), "highs")
    for make in (np.array, list, lambda v: np.array(v, dtype=np.float32)):
        c = make([1.0, -1.0])
        assert solver.solve(c).objective == pytest.approx(-1.0)
        with pytest.raises(ValueError, match="`c` must not contain NaN"):
            solver.solve(make([np.nan, 1.0]))
        with pytest.raises(ValueError, match="`c` must contain only finite"):
            solver.solve(make([np.inf, 1.0]))
        with pytest.raises(ValueError, match=r"`c` must have shape \(2,\)"):
            solver.solve(make([1.0, 2.0, 3.0]))
    with pytest.raises(CapabilityError, match="`c`"):
        solver.solve(np.array([1e21, -1.0]))
    c = np.array([2.0, -3.0])
    solver.solve(c)
    c[:] = 0.0
    assert solver.problem.c.tolist() == [2.0, -3.0]
    assert solver.solve().objective == pytest.approx(-3.0)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_non_finite_or_overflowing_answer_is_not_optimal():
    problem = LinearProgram([10.0, 10.0], bounds=(None, None))
    for x, reason in (
        ([np.nan, 0.0], "missing or not finite"),
        ([np.inf, 0.0], "missing or not finite"),
        ([1e308, 1e308], "overflows"),
    ):
        sol = Solution(Status.OPTIMAL, x=np.array(x), objective=0.0, backend="fake")
        checked = _verify(problem, sol, 1e-6, 0.0, per_row=True)
        assert checked.status is Status.NUMERICAL and reason in checked.message


def test_highs_range_options_move_the_limit():
    problem = LinearProgram([-1], A_ub=[[1e-10]], b_ub=[1])
    sol = solve(problem, "highs", options={"small_matrix_value": 1e-12})
    assert sol.status is Status.OPTIMAL and sol.objective == pytest.approx(-1e10)


# -- item 4: cvxpy keeps the MILP incumbent at the time limit ------------------------------


def hard_knapsacks() -> LinearProgram:
    rng = np.random.default_rng(1)
    c = -(1 + rng.random(100))
    return LinearProgram(
        c, A_ub=rng.integers(0, 5, (30, 100)), b_ub=[25] * 30, bounds=(0, 1), integrality=1
    )


@pytest.mark.parametrize("backend", ["highs", "cvxpy"])
def test_time_limited_milp_keeps_its_incumbent(backend):
    problem = hard_knapsacks()  # HiGHS needs far more than 20 s to prove optimality
    sol = solve(problem, backend, time_limit=0.5)
    assert sol.status is Status.TIME_LIMIT, sol.message
    assert sol.x is not None, sol.message
    assert problem.residuals(sol.x) <= 1e-6
    np.testing.assert_allclose(sol.x, np.round(sol.x), atol=1e-6)
    assert sol.objective == pytest.approx(float(problem.c @ sol.x))


# -- item 5: limits are the solvers' own stop reasons -------------------------------------


def test_cp_sat_stopping_before_the_time_limit_is_a_limit_not_an_error(monkeypatch):
    problem = solvers.read(INSTANCES / "gt2.mps")
    # CP-SAT may stop a little before the limit; a clock that says no time passed makes
    # "stopped early" certain. The status must come from CP-SAT, not from the clock.
    from solvers._backends import ortools

    monkeypatch.setattr(ortools.time, "perf_counter", lambda: 0.0)
    sol = solve(problem, "cp-sat", time_limit=0.3)
    assert sol.status is Status.TIME_LIMIT, sol.message
    assert sol.x is not None and problem.residuals(sol.x) <= 1e-6


def test_cp_sat_other_limits_are_a_limit_status():
    problem = solvers.read(INSTANCES / "gt2.mps")
    sol = solve(problem, "cp-sat", options={"parameters": "max_deterministic_time: 0.05"})
    assert sol.status is Status.TIME_LIMIT, sol.message
    assert "limit" in sol.message


def test_cp_sat_infeasible_or_unbounded_is_its_own_status():
    sol = solve(LinearProgram([-1, 0], bounds=(0, None), integrality=1), "cp-sat")
    assert sol.status is Status.INFEASIBLE_OR_UNBOUNDED, sol.message


def test_highs_iteration_limit_is_a_limit_status_naming_the_limit():
    sol = solve(
        solvers.read(INSTANCES / "afiro.mps"), "highs", options={"simplex_iteration_limit": 1}
    )
    assert sol.status is Status.TIME_LIMIT, sol.message
    assert "Iteration limit" in sol.message


def test_pdlp_time_limit_comes_from_its_termination_reason():
    sol = solve(solvers.read(INSTANCES / "25fv47.mps"), "pdlp", time_limit=0.2)
    assert sol.status is Status.TIME_LIMIT, sol.message
    assert "TERMINATION_REASON_TIME_LIMIT" in sol.message


# -- item 6: CapabilityError raised while building is not swallowed -------------------------


def test_capability_error_while_building_propagates():
    problem = LinearProgram([1], bounds=(0, 1), integrality=[1])
    with pytest.raises(CapabilityError, match="CLARABEL"):
        solve(problem, "cvxpy", options={"solver": "CLARABEL"})


# -- item 7: per-row re-check, residuals on the Solution -----------------------------------


def test_lad_regression_is_solved_to_the_optimum_by_every_backend():
    c, A_ub, b_ub, bounds = lad_regression()
    problem = LinearProgram(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds)
    reference = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds)
    assert reference.status == 0
    for backend in LP_BACKENDS:
        sol = solve(problem, backend)
        assert sol.status is Status.OPTIMAL, (backend, sol.message)
        # SCIP used to stop 6e-4 (relative) below the optimum, rows violated by 9.1e-7.
        assert sol.objective == pytest.approx(reference.fun, rel=1e-6), backend
        assert sol.info["primal_residual"] <= 1e-6, backend


def test_a_violation_of_a_small_row_is_not_hidden_by_a_large_one():
    # Row 0 has b = 1e6, row 1 has b = 0: a violation of 1e-3 in row 1 is far beyond any
    # backend's tolerance, although it is tiny next to max |b|.
    problem = LinearProgram([1.0, 1.0], A_ub=[[1.0, 0.0], [0.0, 1.0]], b_ub=[1e6, 0.0])
    x = np.array([0.0, 1e-3])
    sol = Solution(Status.OPTIMAL, x=x, objective=float(problem.c @ x), backend="fake")
    checked = _verify(problem, sol, 1e-6, 0.0, per_row=True)
    assert checked.status is Status.NUMERICAL
    assert checked.info["primal_residual"] == pytest.approx(1e-3)


@pytest.mark.parametrize("backend", LP_BACKENDS)
def test_residuals_are_reported_on_an_optimal_solution(backend):
    sol = solve(LinearProgram([1.0, 2.0], A_ub=[[-1.0, -1.0]], b_ub=[-1.0]), backend)
    assert sol.status is Status.OPTIMAL
    assert 0.0 <= sol.info["primal_residual"] <= 1e-6
    assert 0.0 <= sol.info["relative_primal_residual"] <= 1e-6
    if backend in ("pdlp", "cvxpy"):  # duals that are not exact vertex duals are checked too
        assert 0.0 <= sol.info["dual_residual"] <= 1e-5


def test_duals_of_the_wrong_sign_are_not_accepted_as_a_certificate():
    problem = LinearProgram([-1.0], A_ub=[[1.0]], b_ub=[1.0])  # dz/db = -1
    x = np.array([1.0])
    good = Solution(Status.OPTIMAL, x=x, objective=-1.0, duals_ub=[-1.0], duals_eq=[])
    bad = Solution(Status.OPTIMAL, x=x, objective=-1.0, duals_ub=[1.0], duals_eq=[])
    assert _verify(problem, good, 1e-6, 0.0, per_row=True).status is Status.OPTIMAL
    assert _verify(problem, bad, 1e-6, 0.0, per_row=True).status is Status.NUMERICAL


# -- item 9: scipy's input forms, and argument errors that name the argument -----------------


def test_column_right_hand_sides_are_accepted_like_scipy():
    problem = LinearProgram(
        [-1, -1], A_ub=[[1, 2], [3, 1]], b_ub=[[4], [6]], A_eq=[[1, -1]], b_eq=[[0]]
    )
    assert problem.b_ub.shape == (2,) and problem.b_eq.shape == (1,)
    ref = linprog([-1, -1], A_ub=[[1, 2], [3, 1]], b_ub=[[4], [6]], A_eq=[[1, -1]], b_eq=[[0]])
    assert solve(problem).objective == pytest.approx(ref.fun)


def test_empty_constraint_lists_mean_no_constraints_like_scipy():
    problem = LinearProgram([1, 1], A_ub=[], b_ub=[], A_eq=[], b_eq=[])
    assert problem.n_ub == 0 and problem.n_eq == 0
    assert solve(problem).objective == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"time_limit": "10"}, "`time_limit`"),
        ({"time_limit": True}, "`time_limit`"),
        ({"options": "fast"}, "`options`"),
        ({"options": {1: 2}}, "`options`"),
    ],
)
def test_bad_solve_arguments_are_named(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        solve(LinearProgram([1.0]), **kwargs)


def test_scipy_bounds_of_the_wrong_length_are_named():
    with pytest.raises(ValueError, match=r"`bounds\.lb`"):
        LinearProgram([1, 1], bounds=Bounds([0, 0, 0], [1, 1, 1]))
    with pytest.raises(ValueError, match=r"`bounds\.(lb|ub)` must be a scalar or have shape"):
        LinearProgram([1, 1], bounds=Bounds(0, [1, 1, 1]))
    assert LinearProgram([1, 1], bounds=Bounds(0, [1, 2])).ub.tolist() == [1.0, 2.0]


def test_unknown_cvxpy_backend_option_is_named_before_solving():
    with pytest.raises(ValueError, match=r"`options`.*bogus"):
        solvers.Solver(LinearProgram([1.0], bounds=(0, 1)), "cvxpy", options={"bogus": 1})


def test_ortools_parameters_must_be_text():
    with pytest.raises(ValueError, match=r"`options\['parameters'\]`"):
        solve(LinearProgram([1.0]), "glop", options={"parameters": {"a": 1}})


# -- item 8: infeasibility certificates ------------------------------------------------------


@pytest.mark.parametrize("backend", ["highs", "cvxpy"])
def test_infeasible_lp_carries_a_farkas_certificate(backend):
    # x free, x0 <= 0, x1 <= 0, -x0 - x1 <= -1: infeasible.
    A = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    b = np.array([0.0, 0.0, -1.0])
    problem = LinearProgram([0.0, 0.0], A_ub=A, b_ub=b, bounds=(None, None))
    sol = solve(problem, backend)
    assert sol.status is Status.INFEASIBLE
    y = sol.info["farkas_ub"]
    assert y.shape == (3,) and sol.info["farkas_eq"].shape == (0,)
    assert (y <= 1e-9).all()  # the duals' sign convention
    np.testing.assert_allclose(A.T @ y, 0.0, atol=1e-9)
    assert b @ y > 1e-6  # the dual objective grows along y


def test_an_infeasible_incumbent_at_a_limit_is_dropped_not_reported():
    problem = LinearProgram([1.0, 1.0], A_ub=[[-1.0, -1.0]], b_ub=[-1.0], integrality=1)
    bad = Solution(Status.TIME_LIMIT, x=np.array([0.0, 0.0]), objective=0.0, backend="fake")
    checked = _verify(problem, bad, 1e-6, 0.0, per_row=True)
    assert checked.status is Status.TIME_LIMIT and checked.x is None
    assert "dropped" in checked.message
    good = Solution(Status.TIME_LIMIT, x=np.array([1.0, 0.0]), objective=1.0, backend="fake")
    assert _verify(problem, good, 1e-6, 0.0, per_row=True).x is not None


def test_highs_array_model_constants_are_highspy_enums():
    # The model goes to HiGHS through passModel's array form, which takes the matrix
    # format, the sense and the integrality as plain integers.
    highspy = pytest.importorskip("highspy")
    from solvers._backends import highs

    assert highs._COLUMN_WISE == int(highspy.MatrixFormat.kColwise)
    assert highs._MINIMIZE == int(highspy.ObjSense.kMinimize)
    assert int(highspy.HighsVarType.kContinuous) == 0
    assert int(highspy.HighsVarType.kInteger) == 1


def test_highs_gets_integrality_and_strided_bounds_right():
    # A MILP whose LP relaxation differs, with bounds given per variable (the bound
    # columns are strided views of the (n, 2) bounds array).
    problem = LinearProgram(
        [-1.0, -1.0],
        A_ub=[[2.0, 2.0]],
        b_ub=[3.0],
        bounds=[(0, 1.2), (0, 5)],
        integrality=[1, 1],
    )
    mip = solve(problem, "highs")
    assert mip.status is Status.OPTIMAL and mip.objective == pytest.approx(-1.0)
    assert mip.x.tolist() == pytest.approx(np.round(mip.x).tolist())
    relaxed = solve(problem.relaxation(), "highs")
    assert relaxed.objective == pytest.approx(-1.5) and relaxed.duals_ub is not None
    capped = solve(problem.replace(bounds=[(0, 0.25), (0, 0.5)], integrality=None), "highs")
    assert capped.x.tolist() == pytest.approx([0.25, 0.5])


@pytest.mark.parametrize("reuse", [False, True])
def test_highs_solutions_are_complete_and_read_only(reuse):
    # HiGHS builds its Solution on a fast path (no conversions): it must still carry
    # every field, with read-only float64 arrays, like one built by the constructor.
    problem = LinearProgram([1.0, 2.0], A_ub=[[-1.0, -1.0]], b_ub=[-1.0], A_eq=[[1.0, -1.0]],
                            b_eq=[0.0], bounds=(0, None))  # fmt: skip
    sol = solvers.Solver(problem).solve([1.0, 2.0]) if reuse else solve(problem, "highs")
    assert sol.status is Status.OPTIMAL and sol.success and sol.backend == "highs"
    assert sol.objective == pytest.approx(1.5) and isinstance(sol.objective, float)
    for array in (sol.x, sol.duals_ub, sol.duals_eq):
        assert array.dtype == np.float64 and not array.flags.writeable
    assert sol.info["raw_status"] == "kOptimal" and "primal_residual" in sol.info
    assert sol.solve_time > 0 and "HiGHS kOptimal" in sol.message
    assert repr(sol).startswith("Solution(status=OPTIMAL")
