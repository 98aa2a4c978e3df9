"""cvxpy as a backend: solve through any LP/MILP solver cvxpy has installed."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import NumericLimits
from ..errors import CapabilityError
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
        self.solver = _solver_name(opts.pop("solver", "HIGHS"))
        if self.solver not in cp.installed_solvers():
            raise ValueError(
                f"`options['solver']`: cvxpy has no solver {self.solver!r}; installed: "
                f"{cp.installed_solvers()}."
            )
        from cvxpy.reductions.solvers.defines import INSTALLED_MI_SOLVERS

        if problem.is_mip and self.solver not in INSTALLED_MI_SOLVERS:
            raise CapabilityError(
                f"`options['solver']`: cvxpy's {self.solver!r} cannot solve integer programs; "
                f"its integer-capable solvers here are {sorted(INSTALLED_MI_SOLVERS)}."
            )
        if time_limit is not None:
            if self.solver != "HIGHS":
                raise CapabilityError(
                    f"`time_limit` is supported for cvxpy's HIGHS solver only, not {self.solver!r}."
                )
            opts["time_limit"] = float(time_limit)
        if self.solver == "HIGHS":
            h = _new_highs()  # also silences the banner HiGHS prints on its first construction
            import highspy

            for name, value in opts.items():
                if h.setOptionValue(name, value) == highspy.HighsStatus.kError:
                    raise ValueError(
                        f"`options`: cvxpy's HIGHS solver rejected option {name}={value!r} "
                        "(not a HiGHS option, or a value of the wrong type or range)."
                    )
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
            self._cols = cols
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
        incumbent = None
        try:
            with warnings.catch_warnings():
                # cvxpy warns on inaccurate or limited solves; the status carries that instead.
                warnings.simplefilter("ignore", UserWarning)
                if self.solver == "HIGHS":
                    incumbent = self._solve_highs()
                else:
                    self.cvx_problem.solve(solver=self.solver, verbose=False, **self.solver_options)
        except (cp.error.SolverError, ValueError, TypeError) as exc:
            # cvxpy raises ValueError when a solver returns no usable status (e.g. HiGHS on
            # a cost of 1e30), TypeError or SolverError for options the solver refuses.
            hint = f" (options: {self.solver_options})" if self.solver_options else ""
            return Solution(
                Status.ERROR,
                backend="cvxpy",
                solve_time=time.perf_counter() - start,
                message=f"cvxpy's {self.solver} failed{hint}: {' '.join(str(exc).split())}",
            )
        elapsed = time.perf_counter() - start
        raw = self.cvx_problem.status
        status = _STATUS_MAP.get(str(raw), Status.ERROR)
        problem = self.problem
        x = duals_ub = duals_eq = None
        objective = {Status.INFEASIBLE: np.inf, Status.UNBOUNDED: -np.inf}.get(status, np.nan)
        if status is Status.TIME_LIMIT and incumbent is not None:
            x = incumbent  # the best solution HiGHS found before the limit
            objective = float(np.asarray(self.cost.value) @ x)
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
        info: dict[str, Any] = {"raw_status": raw, "solver": self.solver}
        if status is Status.INFEASIBLE and not problem.is_mip:
            # cvxpy's HiGHS interface stores a Farkas ray as the duals (cvxpy's sign).
            rays = [
                None if con is None else con.dual_value
                for con in (self.ub_constraint, self.eq_constraint)
            ]
            if all(
                r is not None
                for r, con in zip(rays, (self.ub_constraint, self.eq_constraint))
                if con is not None
            ):
                info["farkas_ub"] = (
                    np.zeros(0) if rays[0] is None else -np.asarray(rays[0], np.float64).reshape(-1)
                )
                info["farkas_eq"] = (
                    np.zeros(0) if rays[1] is None else -np.asarray(rays[1], np.float64).reshape(-1)
                )
        summary = STATUS_MESSAGES[status]
        if status is Status.TIME_LIMIT and "time_limit" not in self.solver_options:
            summary = "The solver stopped at a limit before optimality was proven."
        return Solution(
            status,
            x=x,
            objective=objective,
            duals_ub=duals_ub,
            duals_eq=duals_eq,
            backend="cvxpy",
            message=f"{summary} (cvxpy {self.solver} status {raw!r})",
            solve_time=elapsed,
            info=info,
        )

    def _solve_highs(self) -> np.ndarray | None:
        """Solve as `Problem.solve` does, keeping HiGHS' incumbent at a limit.

        cvxpy drops the primal point of a limited solve (its `user_limit` status
        carries no solution); the raw HiGHS result still has it, so it is inverted
        through cvxpy's own chain as if it were optimal. Returns the incumbent in the
        order of `problem`'s variables, or None.
        """
        import cvxpy as cp

        problem = self.cvx_problem
        data, chain, inverse_data = problem.get_problem_data(
            cp.HIGHS, solver_opts=dict(self.solver_options)
        )
        raw = chain.solve_via_data(problem, data, False, False, dict(self.solver_options))
        problem.unpack_results(raw, chain, inverse_data)
        if str(problem.status) != "user_limit":
            return None
        try:
            if raw["info"].primal_solution_status != 2:  # kSolutionStatusFeasible
                return None
            result = chain.invert({**raw, "model_status": "kOptimal"}, inverse_data)
            parts = [
                np.asarray(result.primal_vars[v.id], np.float64).reshape(-1) for v in self._parts
            ]
        except (KeyError, AttributeError, TypeError, ValueError):
            return None  # another cvxpy layout: no incumbent rather than a wrong one
        if len(parts) == 1:
            return parts[0]
        x = np.empty(self.problem.n_vars)
        for cols, values in zip(self._cols, parts):
            x[cols] = values
        return x


def _solver_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"`options['solver']` must be a cvxpy solver name such as 'HIGHS'; got {value!r}."
        )
    return value.upper()


class CvxpyBackend(Backend):
    name = "cvxpy"
    description = (
        "cvxpy with any installed LP/MILP solver, chosen by options={'solver': NAME} "
        "(default its HiGHS interface)."
    )
    supports_integer = True
    supports_duals = True
    required_modules = ("cvxpy",)

    def limits(self, options: Mapping[str, Any]) -> NumericLimits | None:
        solver = str(options.get("solver", "HIGHS")).upper()
        if solver == "HIGHS":
            from .highs import highs_limits

            return highs_limits({k: v for k, v in options.items() if k != "solver"})
        if solver == "SCIP":
            from .ortools import SCIP_LIMITS

            return SCIP_LIMITS
        if solver == "GLOP":
            return None
        # Interior-point and first-order solvers (CLARABEL, SCS, PDLP, ...) have no
        # infinity, but answer wrongly, without a warning, beyond it: CLARABEL calls
        # min 1e30 x0 - x1 on [0, 1]^2 unbounded.
        return NumericLimits(
            infinity=1e20,
            solver=f"cvxpy's {solver}",
            infinity_text="gives wrong answers, without a warning, for |values| >= {limit:g}",
        )

    def tolerance(self, problem: LinearProgram, options: Mapping[str, Any]) -> float:
        if str(options.get("solver", "HIGHS")).upper() == "HIGHS":
            from .highs import HighsBackend

            return HighsBackend().tolerance(problem, options)
        return self.feasibility_tol

    def build(
        self, problem: LinearProgram, *, time_limit: float | None, options: Mapping[str, Any]
    ) -> CvxpyModel:
        return CvxpyModel(problem, time_limit=time_limit, options=options)
