"""OR-Tools through its model-builder helper: GLOP and PDLP (LP), SCIP and CP-SAT (MILP)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._checks import NumericLimits
from ..problem import LinearProgram
from ..result import STATUS_MESSAGES, Solution, Status
from .base import Backend, Model

__all__ = ["OrToolsBackend"]

# PDLP's default termination tolerance (1e-4 relative) is far from vertex accuracy.
_PDLP_TIGHT = (
    "termination_criteria { simple_optimality_criteria { "
    "eps_optimal_relative: 1e-9 eps_optimal_absolute: 1e-9 } }"
)
# SCIP's default feasibility tolerance (1e-6, relative per row) lets LP answers drift
# visibly off the optimum (scipy's LAD-regression LP: objective 6e-4 off); LPs get 1e-9.
_SCIP_LP_TIGHT = "numerics/feastol = 1e-9"
# SCIP reads |values| >= 1e20 as infinite and treats |a_ij| < 1e-9 as zero.
SCIP_LIMITS = NumericLimits(
    infinity=1e20, min_coefficient=1e-9, max_coefficient=1e20, solver="SCIP"
)

# PDLP's own termination reasons (ortools.pdlp.solve_log_pb2.TerminationReason).
_PDLP_LIMIT_REASONS = {
    "TERMINATION_REASON_TIME_LIMIT",
    "TERMINATION_REASON_ITERATION_LIMIT",
    "TERMINATION_REASON_KKT_MATRIX_PASS_LIMIT",
    "TERMINATION_REASON_INTERRUPTED_BY_USER",
}


def _default_parameters(solver: str, problem: LinearProgram) -> str:
    if solver == "pdlp":
        return _PDLP_TIGHT
    if solver == "scip" and not problem.is_mip:
        return _SCIP_LP_TIGHT
    return ""


def _pdlp_termination(solver: Any) -> str | None:
    """PDLP's termination reason from its solve log, or None when it is not available."""
    try:
        from ortools.pdlp import solve_log_pb2

        log = solve_log_pb2.SolveLog.FromString(solver.response().solver_specific_info)
        return solve_log_pb2.TerminationReason.Name(log.termination_reason)
    except Exception:  # an older OR-Tools without the log: fall back to the generic status
        return None


class OrToolsModel(Model):
    def __init__(
        self,
        backend: OrToolsBackend,
        problem: LinearProgram,
        *,
        time_limit: float | None,
        options: Mapping[str, Any],
    ) -> None:

        unknown = set(options) - {"parameters"}
        if unknown:
            raise ValueError(
                f"`options`: unknown option(s) {sorted(unknown)} for backend {backend.name!r}; "
                "OR-Tools backends accept {'parameters': '<solver-specific text>'}."
            )
        self.backend = backend
        self.problem = problem
        self.time_limit = time_limit
        if "parameters" in options and not isinstance(options["parameters"], str):
            raise ValueError(
                "`options['parameters']` must be a string of solver-specific parameters; got "
                f"{type(options['parameters']).__name__}."
            )
        self._user_parameters = "parameters" in options  # may set limits of their own
        self.parameters = options.get("parameters", _default_parameters(backend.solver, problem))
        self._A = sp.csr_matrix(problem.stacked_constraints("csr"))
        self._row_lower = np.concatenate([np.full(problem.n_ub, -np.inf), problem.b_eq])
        self._row_upper = np.concatenate([problem.b_ub, problem.b_eq])
        self.model = self._build(problem.c)

    def _build(self, c: np.ndarray):
        # The helper offers no working bulk cost update, so a cost change rebuilds the
        # model (one vectorised call; OR-Tools has no warm start through this API anyway).
        from ortools.linear_solver.python import model_builder_helper as mbh

        problem = self.problem
        model = mbh.ModelBuilderHelper()
        model.fill_model_from_sparse_data(
            np.ascontiguousarray(problem.lb),
            np.ascontiguousarray(problem.ub),
            np.ascontiguousarray(c, dtype=np.float64),
            self._row_lower,
            self._row_upper,
            self._A,
        )
        # No vectorised setter exists; the loop runs over integer columns only.
        for j in np.flatnonzero(problem.integrality):
            model.set_var_integrality(int(j), True)
        return model

    def solve(self, c: np.ndarray | None = None) -> Solution:
        from ortools.linear_solver.python import model_builder_helper as mbh

        name = self.backend.name
        if c is not None:
            self.model = self._build(c)
        solver = mbh.ModelSolverHelper(self.backend.solver)
        if not solver.solver_is_supported():
            return Solution(
                Status.ERROR, backend=name, message=f"OR-Tools was built without {name}."
            )
        if self.time_limit is not None:
            solver.set_time_limit_in_seconds(float(self.time_limit))
        if self.parameters:
            solver.set_solver_specific_parameters(self.parameters)
        start = time.perf_counter()
        solver.solve(self.model)
        elapsed = time.perf_counter() - start
        raw = solver.status()
        raw_name = raw.name
        S = mbh.SolveStatus
        detail_text = solver.status_string()
        limited = self.time_limit is not None or self._user_parameters
        if raw == S.OPTIMAL:
            status = Status.OPTIMAL
        elif raw == S.INFEASIBLE:
            status = Status.INFEASIBLE
        elif raw == S.UNBOUNDED:
            status = Status.UNBOUNDED
        elif raw == S.ABNORMAL:
            status = Status.NUMERICAL
        elif raw == S.FEASIBLE:
            # The solver's own word for "stopped with a solution before proving optimality":
            # only a limit (time, nodes, solutions) does that.
            status = Status.TIME_LIMIT
        elif raw == S.NOT_SOLVED and limited and self.backend.solver in ("sat", "scip"):
            status = Status.TIME_LIMIT  # stopped by a limit before finding any solution
        elif raw == S.UNKNOWN_STATUS and "infeasible or unbounded" in detail_text.lower():
            status = Status.INFEASIBLE_OR_UNBOUNDED  # CP-SAT's presolve
        else:
            status = Status.ERROR
        reason = _pdlp_termination(solver) if self.backend.solver == "pdlp" else None
        if reason is not None:
            raw_name = f"{raw_name}, {reason}"
            status = self._pdlp_status(status, reason)
        elif (
            status in (Status.INFEASIBLE, Status.ERROR)
            and raw in (S.INFEASIBLE, S.NOT_SOLVED)
            and not (raw == S.NOT_SOLVED and limited)
            and not self.problem.is_mip
        ):
            status = self._distinguish_unbounded(status, raw)
        detail = detail_text + getattr(self, "_note", "")
        self._note = ""
        summary = STATUS_MESSAGES[status]
        if status is Status.TIME_LIMIT and self.time_limit is None:
            summary = "The solver stopped at a limit before optimality was proven."
        message = f"{summary} (OR-Tools {self.backend.solver} {raw_name}"
        message += f": {detail})" if detail else ")"
        if raw == S.INVALID_SOLVER_PARAMETERS:
            message = f"OR-Tools rejected the solver parameters {self.parameters!r}. ({raw_name})"
        problem = self.problem
        x = duals_ub = duals_eq = None
        objective = {Status.INFEASIBLE: np.inf, Status.UNBOUNDED: -np.inf}.get(status, np.nan)
        if status in (Status.OPTIMAL, Status.TIME_LIMIT) and solver.has_solution():
            x = np.array(solver.variable_values(), dtype=np.float64)
            objective = float(solver.objective_value())
            if status is Status.OPTIMAL and self.backend.supports_duals and not problem.is_mip:
                # OR-Tools duals are already dz/d(row bound) for a minimisation.
                duals = np.array(solver.dual_values(), dtype=np.float64)
                duals_ub, duals_eq = duals[: problem.n_ub], duals[problem.n_ub :]
        return Solution(
            status,
            x=x,
            objective=objective,
            duals_ub=duals_ub,
            duals_eq=duals_eq,
            backend=name,
            message=message,
            solve_time=elapsed,
            info={"raw_status": raw_name},
        )

    def _feasible(self) -> bool | None:
        """Whether the LP is feasible, decided by GLOP (simplex) with zero costs.

        With zero costs the problem is bounded, so the simplex status is trustworthy;
        None when GLOP reaches no verdict (time limit, numerical trouble).
        """
        from ortools.linear_solver.python import model_builder_helper as mbh

        solver = mbh.ModelSolverHelper("glop")
        if self.time_limit is not None:
            solver.set_time_limit_in_seconds(float(self.time_limit))
        if self.backend.solver == "glop" and self.parameters:
            solver.set_solver_specific_parameters(self.parameters)
        solver.solve(self._build(np.zeros(self.problem.n_vars)))
        raw = solver.status()
        if raw == mbh.SolveStatus.OPTIMAL:
            return True
        if raw == mbh.SolveStatus.INFEASIBLE:
            return False
        return None

    def _distinguish_unbounded(self, status: Status, raw: Any) -> Status:
        # GLOP reports INFEASIBLE for unbounded LPs: a feasible problem that had no
        # optimum is unbounded.
        self._note = "; re-checked with zero costs by GLOP"
        feasible = self._feasible()
        if feasible is None:
            return Status.INFEASIBLE_OR_UNBOUNDED
        return Status.UNBOUNDED if feasible else Status.INFEASIBLE

    def _pdlp_status(self, status: Status, reason: str) -> Status:
        """PDLP's verdict from its termination reason; infeasibility claims are re-checked.

        A first-order method can claim infeasibility wrongly on badly scaled problems
        (scipy's bug 10466 LP), so INFEASIBLE and UNBOUNDED are confirmed by a simplex
        feasibility solve (GLOP) and reported as NUMERICAL when it disagrees.
        """
        if reason == "TERMINATION_REASON_OPTIMAL":
            return status
        if reason in _PDLP_LIMIT_REASONS:
            return Status.TIME_LIMIT
        if reason == "TERMINATION_REASON_NUMERICAL_ERROR":
            return Status.NUMERICAL
        if reason not in (
            "TERMINATION_REASON_PRIMAL_INFEASIBLE",
            "TERMINATION_REASON_DUAL_INFEASIBLE",
            "TERMINATION_REASON_PRIMAL_OR_DUAL_INFEASIBLE",
        ):
            return Status.ERROR
        feasible = self._feasible()
        if reason == "TERMINATION_REASON_PRIMAL_INFEASIBLE":
            if feasible is False:
                self._note = "; confirmed by GLOP"
                return Status.INFEASIBLE
            self._note = (
                "; PDLP claimed infeasibility, but GLOP found a feasible point"
                if feasible
                else "; PDLP claimed infeasibility, and GLOP could not confirm it"
            )
            return Status.NUMERICAL
        if feasible is None:
            self._note = "; GLOP could not decide feasibility"
            return Status.INFEASIBLE_OR_UNBOUNDED
        if feasible:
            self._note = "; feasible by GLOP, so unbounded"
            return Status.UNBOUNDED
        self._note = "; infeasible by GLOP"
        return Status.INFEASIBLE


class OrToolsBackend(Backend):
    required_modules = ("ortools",)

    def __init__(
        self,
        name: str,
        solver: str,
        *,
        description: str,
        integer: bool,
        continuous: bool = True,
        duals: bool = False,
        exact: bool = True,
        feasibility_tol: float = 1e-6,
        feasibility_per_row: bool = True,
        numeric_limits: NumericLimits | None = None,
    ) -> None:
        self.name = name
        self.solver = solver
        self.description = description
        self.supports_integer = integer
        self.supports_continuous = continuous
        self.supports_duals = duals
        self.exact = exact
        self.feasibility_tol = feasibility_tol
        self.feasibility_per_row = feasibility_per_row
        self.numeric_limits = numeric_limits

    def tolerance(self, problem: LinearProgram, options: Mapping[str, Any]) -> float:
        if self.solver == "scip" and not problem.is_mip and "parameters" not in options:
            return 1e-9  # _SCIP_LP_TIGHT
        return self.feasibility_tol

    def build(
        self, problem: LinearProgram, *, time_limit: float | None, options: Mapping[str, Any]
    ) -> OrToolsModel:
        return OrToolsModel(self, problem, time_limit=time_limit, options=options)
