"""OR-Tools through its model-builder helper: GLOP and PDLP (LP), SCIP and CP-SAT (MILP)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..problem import LinearProgram
from ..result import STATUS_MESSAGES, Solution, Status
from .base import Backend, Model

__all__ = ["OrToolsBackend"]

# PDLP's default termination tolerance (1e-4 relative) is far from vertex accuracy.
_PDLP_TIGHT = (
    "termination_criteria { simple_optimality_criteria { "
    "eps_optimal_relative: 1e-9 eps_optimal_absolute: 1e-9 } }"
)


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
        self.parameters = options.get("parameters", _PDLP_TIGHT if backend.solver == "pdlp" else "")
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
        timed_out = self.time_limit is not None and elapsed >= 0.95 * self.time_limit
        S = mbh.SolveStatus
        if raw == S.OPTIMAL:
            status = Status.OPTIMAL
        elif raw == S.INFEASIBLE:
            status = Status.INFEASIBLE
        elif raw == S.UNBOUNDED:
            status = Status.UNBOUNDED
        elif raw == S.ABNORMAL:
            status = Status.NUMERICAL
        elif raw in (S.FEASIBLE, S.NOT_SOLVED) and timed_out:
            status = Status.TIME_LIMIT
        else:
            status = Status.ERROR
        if (
            status in (Status.INFEASIBLE, Status.ERROR)
            and raw in (S.INFEASIBLE, S.NOT_SOLVED)
            and not timed_out
            and not self.problem.is_mip
        ):
            status = self._distinguish_unbounded(status, raw)
        detail = solver.status_string() + getattr(self, "_note", "")
        self._note = ""
        message = f"{STATUS_MESSAGES[status]} (OR-Tools {self.backend.solver} {raw_name}"
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

    def _feasible(self) -> bool:
        """Solve with zero costs: a bounded problem, so its status is trustworthy."""
        from ortools.linear_solver.python import model_builder_helper as mbh

        solver = mbh.ModelSolverHelper(self.backend.solver)
        if self.parameters:
            solver.set_solver_specific_parameters(self.parameters)
        solver.solve(self._build(np.zeros(self.problem.n_vars)))
        return solver.status() == mbh.SolveStatus.OPTIMAL

    def _distinguish_unbounded(self, status: Status, raw: Any) -> Status:
        # GLOP reports INFEASIBLE for unbounded LPs, and PDLP NOT_SOLVED: a feasible
        # problem that had no optimum is unbounded.
        self._note = "; re-checked with zero costs"
        if self._feasible():
            return Status.UNBOUNDED
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
    ) -> None:
        self.name = name
        self.solver = solver
        self.description = description
        self.supports_integer = integer
        self.supports_continuous = continuous
        self.supports_duals = duals
        self.exact = exact
        self.feasibility_tol = feasibility_tol

    def build(
        self, problem: LinearProgram, *, time_limit: float | None, options: Mapping[str, Any]
    ) -> OrToolsModel:
        return OrToolsModel(self, problem, time_limit=time_limit, options=options)
