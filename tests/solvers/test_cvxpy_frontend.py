"""solvers.from_cvxpy: cvxpy LPs/MILPs in standard form, and solutions mapped back to cvxpy's
variables, objective and duals, checked against cvxpy's own solve."""

from __future__ import annotations

import numpy as np
import pytest

cp = pytest.importorskip("cvxpy")

import solvers  # noqa: E402
from solvers import LinearProgram, SolverError, Status  # noqa: E402
from solvers.cvxpy_frontend import CvxpyMapping, from_cvxpy  # noqa: E402


def lp_vector_with_duals():
    """min c @ x, a budget, an equality, box bounds: unique, nondegenerate optimum."""
    x = cp.Variable(3, name="x")
    constraints = [
        cp.sum(x) <= 4,
        x[0] - x[1] == 0.5,
        x >= 0,
        x <= np.array([3.0, 2.0, 1.0]),
    ]
    return cp.Problem(cp.Minimize(np.array([-1.0, -2.0, 0.5]) @ x + 2), constraints)


def lp_maximize_matrix_variable():
    """A transport problem with a matrix variable, maximised profit, a constant term."""
    X = cp.Variable((2, 3), nonneg=True, name="X")
    supply = np.array([5.0, 4.0])
    demand = np.array([3.0, 2.0, 3.0])
    profit = np.array([[4.0, 3.0, 1.0], [2.0, 5.0, 3.5]])
    constraints = [cp.sum(X, axis=1) <= supply, cp.sum(X, axis=0) <= demand, X[0, 2] >= 0.5]
    return cp.Problem(cp.Maximize(cp.sum(cp.multiply(profit, X)) - 1.0), constraints)


def lp_with_parameter_and_norm1():
    """norm1 (auxiliary variables from cvxpy's reductions) and a parameter."""
    x = cp.Variable(2, name="x")
    target = cp.Parameter(2, value=np.array([1.0, -2.0]), name="target")
    constraints = [x[0] + x[1] >= 1.0]
    return cp.Problem(cp.Minimize(cp.norm1(x - target) + 0.1 * cp.sum(x)), constraints)


def lp_with_variable_bounds():
    """Bounds given as a variable attribute (cvxpy passes them as lower/upper bounds)."""
    y = cp.Variable(2, bounds=[np.array([-1.0, 0.0]), np.array([2.0, 3.0])], name="y")
    z = cp.Variable(name="z")
    constraints = [y[0] + 2 * y[1] + z <= 5, z >= -1, z - y[0] == 0.25]
    return cp.Problem(cp.Maximize(y[0] + y[1] + 0.5 * z), constraints)


LPS = [
    lp_vector_with_duals,
    lp_maximize_matrix_variable,
    lp_with_parameter_and_norm1,
    lp_with_variable_bounds,
]


def reference(build):
    """The same problem solved by cvxpy itself (HiGHS interface)."""
    problem = build()
    problem.solve(solver=cp.HIGHS)
    assert problem.status == "optimal"
    return problem


@pytest.mark.parametrize("build", LPS, ids=lambda b: b.__name__)
def test_lp_objective_values_and_duals_match_cvxpy(build):
    expected = reference(build)
    problem = build()
    lp, mapping = from_cvxpy(problem)
    assert isinstance(lp, LinearProgram) and isinstance(mapping, CvxpyMapping)
    assert not lp.is_mip
    sol = solvers.solve(lp)
    assert sol.status is Status.OPTIMAL, sol.message
    assert mapping.objective(sol) == pytest.approx(expected.value, rel=1e-7, abs=1e-7)
    values = mapping.values(sol)
    assert set(values) == set(problem.variables())
    for var, ref_var in zip(problem.variables(), expected.variables()):
        assert values[var].shape == var.shape
        np.testing.assert_allclose(values[var], ref_var.value, atol=1e-6)
    duals = mapping.duals(sol)
    assert set(duals) == set(problem.constraints)
    for con, ref_con in zip(problem.constraints, expected.constraints):
        np.testing.assert_allclose(duals[con], ref_con.dual_value, atol=1e-6)


def test_hand_worked_lp():
    # min -x0 - 2 x1 + 0.5 x2 + 2 with x0 = x1 + 0.5, x0 + x1 + x2 <= 4, x <= (3, 2, 1):
    # x2 = 0, x1 = 1.75, x0 = 2.25 (budget binding), z = -2.25 - 3.5 + 2 = -3.75.
    # With budget B and equality right-hand side e: x0 = (B + e) / 2, x1 = (B - e) / 2, so
    # z = -1.5 B + 0.5 e + 2: dz/dB = -1.5 (cvxpy's dual +1.5), dz/de = +0.5 (cvxpy's -0.5).
    problem = lp_vector_with_duals()
    lp, mapping = from_cvxpy(problem)
    sol = solvers.solve(lp)
    assert mapping.objective(sol) == pytest.approx(-3.75)
    assert sol.objective == pytest.approx(-5.75)  # without cvxpy's constant 2
    np.testing.assert_allclose(mapping.values(sol)[problem.variables()[0]], [2.25, 1.75, 0])
    duals = mapping.duals(sol)
    assert float(duals[problem.constraints[0]]) == pytest.approx(1.5)
    assert float(duals[problem.constraints[1]]) == pytest.approx(-0.5)
    np.testing.assert_allclose(sol.duals_eq, [0.5], atol=1e-9)  # dz/de, the package convention


def test_maximisation_is_negated():
    problem = lp_maximize_matrix_variable()
    lp, mapping = from_cvxpy(problem)
    sol = solvers.solve(lp)
    # cvxpy minimises -objective (without its constant): solution.objective = -(value + 1).
    assert sol.objective == pytest.approx(-(mapping.objective(sol) + 1.0))


def test_milp_matches_cvxpy():
    def build():
        n = cp.Variable(3, integer=True, name="n")
        b = cp.Variable(2, boolean=True, name="b")
        w = cp.Variable(name="w")
        constraints = [
            np.array([3.0, 4.0, 5.0]) @ n + 6 * b[0] + 2.5 * w <= 17.5,
            n <= 3,
            n >= 0,
            w >= 0,
            w <= 1.5,
            b[1] >= b[0] - n[2],
        ]
        value = np.array([4.0, 5.5, 7.0]) @ n + 8 * b[0] - b[1] + 3 * w
        return cp.Problem(cp.Maximize(value), constraints)

    expected = reference(build)
    problem = build()
    lp, mapping = from_cvxpy(problem)
    assert lp.is_mip and int(lp.integrality.sum()) == 5
    sol = solvers.solve(lp)
    assert sol.status is Status.OPTIMAL
    assert mapping.objective(sol) == pytest.approx(expected.value, rel=1e-9)
    for var, ref_var in zip(problem.variables(), expected.variables()):
        np.testing.assert_allclose(mapping.values(sol)[var], ref_var.value, atol=1e-6)
    with pytest.raises(ValueError, match="no duals"):
        mapping.duals(sol)
    mapping.load(sol)
    assert problem.status == "optimal" and problem.value == pytest.approx(expected.value)


def test_load_sets_values_duals_status_and_value():
    expected = reference(lp_vector_with_duals)
    problem = lp_vector_with_duals()
    lp, mapping = from_cvxpy(problem)
    mapping.load(solvers.solve(lp))
    assert problem.status == "optimal"
    assert problem.value == pytest.approx(expected.value)
    np.testing.assert_allclose(problem.variables()[0].value, expected.variables()[0].value)
    for con, ref_con in zip(problem.constraints, expected.constraints):
        np.testing.assert_allclose(con.dual_value, ref_con.dual_value, atol=1e-6)


@pytest.mark.parametrize("sense", [cp.Minimize, cp.Maximize])
def test_infeasible_problem(sense):
    x = cp.Variable(2)
    problem = cp.Problem(sense(cp.sum(x)), [x >= 1, cp.sum(x) <= 1])
    lp, mapping = from_cvxpy(problem)
    sol = solvers.solve(lp)
    assert sol.status is Status.INFEASIBLE
    # cvxpy's convention: +inf for an infeasible minimisation, -inf for a maximisation.
    assert mapping.objective(sol) == (np.inf if sense is cp.Minimize else -np.inf)
    with pytest.raises(ValueError, match="no point"):
        mapping.values(sol)
    mapping.load(sol)
    assert problem.status == "infeasible" and x.value is None


def test_parameter_values_are_read_when_compiling():
    problem = lp_with_parameter_and_norm1()
    target = problem.parameters()[0]
    lp_before, _ = from_cvxpy(problem)
    target.value = np.array([3.0, 1.0])
    lp_after, mapping = from_cvxpy(problem)
    assert not np.array_equal(lp_before.b_ub, lp_after.b_ub)
    sol = solvers.solve(lp_after)
    problem.solve(solver=cp.HIGHS)
    assert mapping.objective(sol) == pytest.approx(problem.value)


def test_works_with_another_backend():
    expected = reference(lp_maximize_matrix_variable)
    lp, mapping = from_cvxpy(lp_maximize_matrix_variable())
    sol = solvers.solve(lp, "glop")
    assert mapping.objective(sol) == pytest.approx(expected.value, rel=1e-7)


def test_non_lp_problems_are_rejected_clearly():
    x = cp.Variable(3)
    cases = [
        (cp.Problem(cp.Minimize(cp.sum_squares(x)), [cp.sum(x) == 1]), "quadratic"),
        (cp.Problem(cp.Minimize(cp.sum(x)), [cp.norm(x, 2) <= 1]), "not a linear"),
        (cp.Problem(cp.Minimize(cp.sum(cp.exp(x))), [x >= 0]), "not a linear"),
        (cp.Problem(cp.Maximize(cp.norm1(x)), [x <= 1]), "DCP"),
        (cp.Problem(cp.Minimize(cp.Parameter(3, name="p") @ x), [x >= 0]), "no value"),
        (cp.Problem(cp.Minimize(3)), "no variables"),
    ]
    for problem, reason in cases:
        with pytest.raises(ValueError, match=reason):
            from_cvxpy(problem)
    with pytest.raises(TypeError, match=r"cvxpy\.Problem"):
        from_cvxpy(LinearProgram([1.0]))


def test_mismatched_or_failed_solutions_are_refused():
    _, mapping = from_cvxpy(lp_vector_with_duals())
    other = solvers.solve(LinearProgram([1.0, 1.0], A_ub=[[1.0, 1.0]], b_ub=[1.0]))
    with pytest.raises(ValueError, match="shape"):
        mapping.values(other)
    failed = solvers.Solution(Status.ERROR, message="backend crashed", backend="test")
    with pytest.raises(ValueError, match="ERROR"):
        mapping.objective(failed)
    with pytest.raises(SolverError, match="Cannot load"):
        mapping.load(failed)
    with pytest.raises(TypeError, match="Solution"):
        mapping.values({"x": [1.0]})
