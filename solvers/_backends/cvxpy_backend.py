"""cvxpy as a backend: solve through any LP/MILP solver cvxpy has installed."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..problem import LinearProgram
from ..result import STATUS_MESSAGES, Solution, Status
from .base import Backend, Model

__all__ = ["CvxpyBackend"]

# cvxpy solver name -> its keyword for a time limit in seconds.
_TIME_LIMIT_KEYWORD = {"HIGHS": "time_limit", "SCIP": "scip_params", "GLOP": "time_limit_sec"}


_STATUS_MAP = {  # cvxpy's status strings
    "optimal": Status.OPTIMAL,
    "optimal_inaccurate": Status.NUMERICAL,
    "infeasible": Status.INFEASIBLE,
    "infeasible_inaccurate": Status.INFEASIBLE,
    "unbounded": Status.UNBOUNDED,
    "unbounded_inaccurate": Status.UNBOUNDED,
    "infeasible_or_unbounded": Status.INFEASIBLE_OR_UNBOUNDED,
    "user_limit": Status.TIME_LIMIT,
    "solver_error": Status.ERROR,
}


class CvxpyModel(Model):
    """The problem as a cvxpy Problem whose costs are a Parameter (re-solves reuse canonicalisation)."""

    def __init__(
        self, problem: LinearProgram, *, time_limit: float | None, options: Mapping[str, Any]
    ) -> None:
        import cvxpy as cp

        from .highs import _new_highs

        opts = dict(options)
        self.solver = str(opts.pop("solver", "HIGHS")).upper()
        if self.solver not in cp.installed_solvers():
            raise ValueError(
                f"`options['solver']`: cvxpy has no solver {self.solver!r}; installed: "
                f"{cp.installed_solvers()}."
            )
        from cvxpy.reductions.solvers.defines import INSTALLED_MI_SOLVERS

        if problem.is_mip and self.solver not in INSTALLED_MI_SOLVERS:
            from ..errors import CapabilityError

            raise CapabilityError(
                f"`options['solver']`: cvxpy's {self.solver!r} cannot solve integer programs."
            )
        if time_limit is not None:
            if self.solver != "HIGHS":
                from ..errors import CapabilityError

                raise CapabilityError(
                    f"`time_limit` is supported for cvxpy's HIGHS solver only, not {self.solver!r}."
                )
            opts["time_limit"] = float(time_limit)
        if self.solver == "HIGHS":
            _new_highs()  # silences the banner HiGHS prints on its first construction
        self.solver_options = opts
        self.problem = problem
        n = problem.n_vars
        mask = problem.integrality.astype(bool)
        if mask.all() or not mask.any():
            x = cp.Variable(n, integer=bool(mask.all()))
            self._parts = [x]
        else:
            # cvxpy has no per-entry integrality: split, then scatter back with selection matrices.
            import scipy.sparse as sp

            cols = (np.flatnonzero(~mask), np.flatnonzero(mask))
            self._parts = [cp.Variable(len(cols[0])), cp.Variable(len(cols[1]), integer=True)]
            scatter = [
                sp.csr_array((np.ones(len(j)), (j, np.arange(len(j)))), shape=(n, len(j)))
                for j in cols
            ]
            x = scatter[0] @ self._parts[0] + scatter[1] @ self._parts[1]
        self.x = x
        self.cost = cp.Parameter(n, value=np.asarray(problem.c))
        self.ub_constraint = problem.A_ub @ x <= problem.b_ub if problem.n_ub else None
        self.eq_constraint = problem.A_eq @ x == problem.b_eq if problem.n_eq else None
        constraints = [c for c in (self.ub_constraint, self.eq_constraint) if c is not None]
        lo = np.isfinite(problem.lb)
        hi = np.isfinite(problem.ub)
        if lo.any():
            constraints.append(x[np.flatnonzero(lo)] >= problem.lb[lo])
        if hi.any():
            constraints.append(x[np.flatnonzero(hi)] <= problem.ub[hi])
        self.cvx_problem = cp.Problem(cp.Minimize(self.cost @ x), constraints)

    def solve(self, c: np.ndarray | None = None) -> Solution:
        import cvxpy as cp

        if c is not None:
            self.cost.value = np.asarray(c, dtype=np.float64)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # cvxpy warns on inaccurate or limited solves; the status carries that instead.
                warnings.simplefilter("ignore", UserWarning)
                self.cvx_problem.solve(solver=self.solver, verbose=False, **self.solver_options)
        except cp.error.SolverError as exc:
            return Solution(
                Status.ERROR,
                backend="cvxpy",
                solve_time=time.perf_counter() - start,
                message=f"cvxpy's {self.solver} failed: {exc}",
            )
        elapsed = time.perf_counter() - start
        raw = self.cvx_problem.status
        status = _STATUS_MAP.get(str(raw), Status.ERROR)
        problem = self.problem
        x = duals_ub = duals_eq = None
        objective = {Status.INFEASIBLE: np.inf, Status.UNBOUNDED: -np.inf}.get(status, np.nan)
        if status is Status.OPTIMAL:
            x = np.asarray(self.x.value, dtype=np.float64).reshape(-1)
            objective = float(self.cvx_problem.value)
            if not problem.is_mip:
                # cvxpy's multipliers enter its Lagrangian with a + sign: dz/db = -dual.
                if self.ub_constraint is not None:
                    duals_ub = -np.asarray(self.ub_constraint.dual_value, np.float64).reshape(-1)
                else:
                    duals_ub = np.zeros(0)
                if self.eq_constraint is not None:
                    duals_eq = -np.asarray(self.eq_constraint.dual_value, np.float64).reshape(-1)
                else:
                    duals_eq = np.zeros(0)
        return Solution(
            status,
            x=x,
            objective=objective,
            duals_ub=duals_ub,
            duals_eq=duals_eq,
            backend="cvxpy",
            message=f"{STATUS_MESSAGES[status]} (cvxpy {self.solver} status {raw!r})",
            solve_time=elapsed,
            info={"raw_status": raw, "solver": self.solver},
        )


class CvxpyBackend(Backend):
    name = "cvxpy"
    description = (
        "cvxpy with any installed LP/MILP solver, chosen by options={'solver': NAME} "
        "(default its HiGHS interface)."
    )
    supports_integer = True
    supports_duals = True
    required_modules = ("cvxpy",)

    def build(
        self, problem: LinearProgram, *, time_limit: float | None, options: Mapping[str, Any]
    ) -> CvxpyModel:
        return CvxpyModel(problem, time_limit=time_limit, options=options)
