"""`solvers.linprog` / `solvers.milp` against scipy's own answers on the vendored instances."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
from scipy.optimize import Bounds, LinearConstraint, OptimizeWarning

import solvers
from tests.conftest import INSTANCES

INFO = solvers.backend_info()
LP_BACKENDS = [b for b in solvers.available_backends() if INFO[b]["continuous"]]
MILP_BACKENDS = solvers.available_backends(integer=True)
LP_FILES = ["afiro.mps", "blending.mps", "sctest.mps", "avgas.mps", "adlittle.mps", "galenet.mps"]
MILP_FILES = ["small_mip.mps", "flugpl.mps", "lseu.mps", "infeasible-mip0.mps"]


def scipy_args(problem: solvers.LinearProgram) -> dict:
    return {
        "A_ub": problem.A_ub if problem.n_ub else None,
        "b_ub": problem.b_ub if problem.n_ub else None,
        "A_eq": problem.A_eq if problem.n_eq else None,
        "b_eq": problem.b_eq if problem.n_eq else None,
        "bounds": problem.bounds,
    }


def dual_objective(res, args) -> float:
    """b' y + lb' z_l + ub' z_u from scipy-convention marginals (= fun at an optimum)."""
    total = 0.0
    if args["b_ub"] is not None:
        total += float(args["b_ub"] @ res.ineqlin.marginals)
    if args["b_eq"] is not None:
        total += float(args["b_eq"] @ res.eqlin.marginals)
    lb, ub = args["bounds"][:, 0], args["bounds"][:, 1]
    total += float(np.where(np.isfinite(lb), lb, 0.0) @ res.lower.marginals)
    total += float(np.where(np.isfinite(ub), ub, 0.0) @ res.upper.marginals)
    return total


@pytest.mark.parametrize("backend", LP_BACKENDS)
@pytest.mark.parametrize("name", LP_FILES)
def test_linprog_matches_scipy(name, backend):
    problem = solvers.read(INSTANCES / name)
    args = scipy_args(problem)
    ref = so.linprog(problem.c, **args)
    res = solvers.linprog(problem.c, **args, backend=backend)
    assert res.status == ref.status, res.message
    assert res.success == ref.success
    if ref.status != 0:
        assert res.x is None and res.fun is None
        return
    assert res.fun == pytest.approx(ref.fun, rel=1e-6, abs=1e-6)
    assert problem.residuals(res.x) <= 1e-5 * (1 + np.abs(problem.b_ub).max(initial=0))
    np.testing.assert_allclose(res.slack, problem.b_ub - problem.A_ub @ res.x)
    np.testing.assert_allclose(res.ineqlin.residual, res.slack)
    if not INFO[backend]["duals"]:
        assert res.ineqlin.marginals is None
        return
    # scipy's convention: marginals are d fun / d (right-hand side or bound).
    assert (res.ineqlin.marginals <= 1e-9).all() and (ref.ineqlin.marginals <= 1e-9).all()
    assert (res.lower.marginals >= 0).all() and (res.upper.marginals <= 0).all()
    scale = 1 + abs(ref.fun)
    assert dual_objective(ref, args) == pytest.approx(ref.fun, abs=1e-6 * scale)
    assert dual_objective(res, args) == pytest.approx(ref.fun, abs=1e-4 * scale)
    # Degenerate LPs have many optimal duals (afiro: HiGHS' own choice depends on presolve),
    # so the marginals are checked as a certificate, not entry by entry.


def test_linprog_marginals_are_sensitivities_like_scipy():
    # min -x0 - 2 x1, x0 + x1 <= 4, x1 <= 3 (a bound): fun = -7, d fun/d b = -1, d fun/d ub1 = -1.
    kwargs = {"A_ub": [[1, 1]], "b_ub": [4], "bounds": [(0, None), (0, 3)]}
    for res in (so.linprog([-1, -2], **kwargs), solvers.linprog([-1, -2], **kwargs)):
        assert res.fun == pytest.approx(-7.0)
        np.testing.assert_allclose(res.ineqlin.marginals, [-1.0])
        np.testing.assert_allclose(res.upper.marginals, [0.0, -1.0])
        np.testing.assert_allclose(res.lower.marginals, [0.0, 0.0])


@pytest.mark.parametrize("backend", LP_BACKENDS)
def test_linprog_unbounded_is_status_3(backend):
    ref = so.linprog([-1, -1], A_ub=[[1, -1]], b_ub=[1])
    res = solvers.linprog([-1, -1], A_ub=[[1, -1]], b_ub=[1], backend=backend)
    assert ref.status == 3
    assert res.status in (3, 4) and not res.success  # 4: "infeasible or unbounded"
    if backend in ("highs", "glop"):
        assert res.status == 3


def milp_args(problem: solvers.LinearProgram) -> dict:
    constraints = []
    if problem.n_ub:
        constraints.append(LinearConstraint(problem.A_ub, -np.inf, problem.b_ub))
    if problem.n_eq:
        constraints.append((problem.A_eq, problem.b_eq, problem.b_eq))
    return {
        "integrality": problem.integrality,
        "bounds": Bounds(problem.lb, problem.ub),
        "constraints": constraints,
    }


@pytest.mark.parametrize("backend", MILP_BACKENDS)
@pytest.mark.parametrize("name", MILP_FILES)
def test_milp_matches_scipy(name, backend):
    problem = solvers.read(INSTANCES / name)
    if backend == "cp-sat" and not problem.integrality.all():
        with pytest.raises(solvers.CapabilityError):
            solvers.milp(problem.c, **milp_args(problem), backend=backend)
        return
    ref = so.milp(problem.c, **milp_args(problem))
    res = solvers.milp(problem.c, **milp_args(problem), backend=backend)
    assert res.status == ref.status, res.message
    if ref.status == 0:
        assert res.fun == pytest.approx(ref.fun, rel=1e-6, abs=1e-6)
        assert problem.residuals(res.x) <= 1e-5 * (1 + np.abs(problem.b_ub).max(initial=0))
    else:
        assert res.x is None and res.fun is None
    if backend == "highs" and ref.status == 0:
        assert res.mip_gap == pytest.approx(ref.mip_gap, abs=1e-6)
        assert isinstance(res.mip_node_count, int) and res.mip_node_count >= 0
        assert res.mip_dual_bound == pytest.approx(ref.mip_dual_bound, rel=1e-6, abs=1e-6)


def test_milp_time_limit_is_status_1_with_the_incumbent():
    rng = np.random.default_rng(1)
    c = -(1 + rng.random(100))
    A = rng.integers(0, 5, (30, 100))
    kwargs = {
        "integrality": 1,
        "bounds": (0, 1),
        "constraints": LinearConstraint(A, -np.inf, 25),
        "options": {"time_limit": 0.3},
    }
    ref = so.milp(c, **kwargs)
    res = solvers.milp(c, **kwargs, backend="cvxpy")
    assert ref.status == res.status == 1
    assert res.x is not None and (A @ res.x <= 25 + 1e-9).all()
    assert res.fun == pytest.approx(float(c @ res.x))


def test_arguments_are_checked_like_scipy():
    with pytest.raises(ValueError, match="`method`"):
        solvers.linprog([1], method="simplex")
    with pytest.raises(ValueError, match="`callback`"):
        solvers.linprog([1], callback=print)
    with pytest.raises(ValueError, match="`integrality`"):
        solvers.milp([1], integrality=[2])
    with pytest.warns(OptimizeWarning, match="Unrecognized options"):
        res = solvers.linprog([1], options={"dual_feasibility_tolerance": 1e-9}, backend="glop")
    assert res.status == 0
    with pytest.raises(solvers.CapabilityError):
        solvers.milp([1], integrality=1, backend="glop")
