"""cvxpy's own solver conformance tests, run through `from_cvxpy` on every capable backend.

cvxpy tests each of its solver interfaces with the problems of
``cvxpy.tests.solver_test_helpers`` (known objective, primal and dual values). Here
``Problem.solve`` is routed through `solvers.from_cvxpy`, `solvers.solve` and
`CvxpyMapping.load`, so the same checks hold our backends and our mapping back to
cvxpy's variables and constraints to cvxpy's standard.
"""

from __future__ import annotations

import contextlib

import cvxpy as cp
import numpy as np
import pytest
from cvxpy.tests.solver_test_helpers import StandardTestInfeasibleProblems, StandardTestLPs

import solvers

INFO = solvers.backend_info()
BACKENDS = solvers.available_backends()
LP_BACKENDS = [b for b in BACKENDS if INFO[b]["continuous"]]
MILP_BACKENDS = [b for b in BACKENDS if INFO[b]["integer"]]
# Backends whose infeasible LPs carry a Farkas certificate (see Solution.info).
CERTIFYING = {"highs", "cvxpy"}

# test_lp_7 is cvxpy's test for the SDPA solver (it imports sdpap); the others are all LPs.
LP_TESTS = sorted(n for n in dir(StandardTestLPs) if n.startswith("test_lp_") and n != "test_lp_7")
MILP_TESTS = sorted(n for n in dir(StandardTestLPs) if n.startswith("test_mi_lp_"))
# The LP members of cvxpy's infeasible set (the others need cones).
INFEASIBLE_TESTS = ["test_lp_eq_constraints", "test_lp_ineq_constraints"]


@contextlib.contextmanager
def routed_through(backend: str, monkeypatch: pytest.MonkeyPatch):
    """Make ``cvxpy.Problem.solve`` solve with ``backend`` via `from_cvxpy`."""
    compiled: list[solvers.LinearProgram] = []
    original = cp.Problem.solve
    busy = []  # the "cvxpy" backend itself solves cvxpy problems: those go to cvxpy

    def solve(self, solver=None, **kwargs):
        if busy:
            return original(self, solver=solver, **kwargs)
        busy.append(True)
        try:
            lp, mapping = solvers.from_cvxpy(self)
            compiled.append(lp)
            mapping.load(solvers.solve(lp, backend))
        finally:
            busy.pop()
        return self.value

    with monkeypatch.context() as patch:
        patch.setattr(cp.Problem, "solve", solve)
        yield compiled


@pytest.mark.parametrize("backend", LP_BACKENDS)
@pytest.mark.parametrize("name", LP_TESTS)
def test_cvxpy_standard_lps(name, backend, monkeypatch):
    kwargs = {} if name in ("test_lp_3", "test_lp_4") else {"duals": INFO[backend]["duals"]}
    with routed_through(backend, monkeypatch) as compiled:
        getattr(StandardTestLPs, name)(cp.HIGHS, **kwargs)
    assert compiled, "the problem was not solved through from_cvxpy"


@pytest.mark.parametrize("backend", MILP_BACKENDS)
@pytest.mark.parametrize("name", MILP_TESTS)
def test_cvxpy_standard_milps(name, backend, monkeypatch):
    with routed_through(backend, monkeypatch) as compiled:
        try:
            getattr(StandardTestLPs, name)(cp.HIGHS)
        except solvers.CapabilityError:
            # CP-SAT takes pure integer programs only, and must say so.
            assert backend == "cp-sat" and not compiled[-1].integrality.all()
            return
    assert compiled, "the problem was not solved through from_cvxpy"


@pytest.mark.parametrize("backend", LP_BACKENDS)
@pytest.mark.parametrize("name", INFEASIBLE_TESTS)
def test_cvxpy_infeasible_lps(name, backend, monkeypatch):
    if backend in CERTIFYING:
        # cvxpy's full check, including a valid Farkas certificate in the duals.
        with routed_through(backend, monkeypatch):
            getattr(StandardTestInfeasibleProblems, name)(cp.HIGHS)
        return
    # Documented: other backends prove infeasibility but give no certificate.
    A = np.array([[1, 0], [0, 1], [-1, -1]])
    x = cp.Variable(2)
    problem = cp.Problem(cp.Minimize(0), [A @ x <= np.array([0, 0, -1])])
    with routed_through(backend, monkeypatch):
        problem.solve()
    assert problem.status == "infeasible" and problem.value == np.inf
    assert x.value is None and problem.constraints[0].dual_value is None
