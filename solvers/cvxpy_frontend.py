"""Turn a cvxpy LP/MILP into a `LinearProgram`, and map solutions back to its variables.

Example:
    ```python
    import cvxpy as cp
    import solvers
    x = cp.Variable(2, name="x")
    budget = x[0] + x[1] <= 4
    problem = cp.Problem(cp.Maximize(x[0] + 2 * x[1] + 1), [budget, x >= 0, x[1] <= 3])
    lp, mapping = solvers.from_cvxpy(problem)
    solution = solvers.solve(lp)
    print(round(mapping.objective(solution), 6))  # 8.0 (cvxpy's sense, with the constant)
    print(mapping.values(solution)[x].round(6).tolist())  # [1.0, 3.0]
    print(round(float(mapping.duals(solution)[budget]), 6))  # 1.0 (as budget.dual_value)
    ```

How the mapping works: cvxpy compiles the problem for its HiGHS interface
(`problem.get_problem_data(cvxpy.HIGHS)`) into `min c @ x` subject to
`A x + s = b` with `s` in the zero cone (equalities, first) and the
non-negative cone (`A x <= b`), plus variable bounds and integer indices. Those
are exactly the `LinearProgram`'s `A_eq`/`A_ub` blocks. To go back, a `Solution`
is turned into the cvxpy solution that cvxpy's own HiGHS interface would build,
and inverted through the chain of reductions that compiled the problem, so every
reshaping, sign flip and constant that cvxpy applied is undone by cvxpy itself.

Sign conventions:

* A `cvxpy.Maximize` problem becomes the minimisation of the negated objective
  (cvxpy's own `FlipObjective`), so `solution.objective` is minus cvxpy's value,
  without the constant. `CvxpyMapping.objective` returns cvxpy's value (`problem.value`).
* Duals: `Solution` holds `dz/db` (`duals_ub <= 0`). cvxpy's multipliers have
  the opposite sign (`y = -dz/db` on the compiled rows). `CvxpyMapping.duals`
  returns exactly what cvxpy would store in each `constraint.dual_value`:
  nonnegative for an inequality of a minimisation, for example.
* Parameters are read once, when `from_cvxpy` is called: after changing a
  parameter's value, call `from_cvxpy` again.
* Infeasibility certificates: when the `Solution` of an infeasible LP carries
  one (`info["farkas_ub"]`/`info["farkas_eq"]`, from the "highs" backend or
  "cvxpy" with HiGHS), `CvxpyMapping.load` stores it as each constraint's
  `dual_value`, as cvxpy's own HiGHS interface does (a Farkas ray). Other
  backends give none: the duals of an infeasible problem are then None.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

import numpy as np

from .errors import SolverError
from .problem import LinearProgram
from .result import Solution, Status

__all__ = ["CvxpyMapping", "from_cvxpy"]


def from_cvxpy(problem: Any) -> tuple[LinearProgram, CvxpyMapping]:
    """Compile a cvxpy LP or MILP into a `LinearProgram`, keeping the map back.

    Args:
        problem: a `cvxpy.Problem` whose objective is linear and whose
            constraints are linear equalities and inequalities after cvxpy's
            reductions (`abs`, `norm1`, `max` and the like are fine). Every
            parameter must have a value.

    Returns:
        `(lp, mapping)`: the problem in standard form (a minimisation; see the
            module docstring for maximisation), and a `CvxpyMapping` that reads a
            `Solution` of `lp` per cvxpy variable and constraint.

    Raises:
        TypeError: `problem` is not a `cvxpy.Problem`.
        ValueError: naming the reason, when the problem is not DCP, has no
            variables, has a parameter without a value, or is not an LP/MILP
            (quadratic objective, second-order, exponential or semidefinite cones).
    """
    import cvxpy as cp

    if not isinstance(problem, cp.Problem):
        raise TypeError(f"`problem` must be a cvxpy.Problem; got {type(problem).__name__}.")
    if not problem.variables():
        raise ValueError("`problem` has no variables.")
    unset = [p.name() for p in problem.parameters() if p.value is None]
    if unset:
        raise ValueError(f"`problem`: parameter(s) {', '.join(unset)} have no value; set `.value`.")
    if cp.HIGHS not in cp.installed_solvers():
        raise ValueError("`problem`: from_cvxpy needs cvxpy's HIGHS interface (package highspy).")

    from ._backends.highs import _new_highs

    _new_highs()  # silences the banner HiGHS prints on its first construction
    try:
        data, chain, inverse_data = problem.get_problem_data(cp.HIGHS)
    except cp.error.DCPError as exc:
        raise ValueError(f"`problem` does not follow cvxpy's DCP rules: {exc}") from exc
    except cp.error.SolverError as exc:
        raise ValueError(
            "`problem` is not a linear or mixed-integer linear program: cvxpy cannot reduce it "
            f"to linear constraints (it needs second-order, exponential or semidefinite cones). "
            f"cvxpy says: {exc}"
        ) from exc
    from cvxpy.reductions.solvers.conic_solvers.conic_solver import ConicSolver

    if "P" in data or not isinstance(chain.solver, ConicSolver):
        raise ValueError(
            "`problem` has a quadratic objective; only linear objectives can become a "
            "LinearProgram."
        )
    dims = data["dims"]
    cones = {
        "second-order": len(dims.soc),
        "semidefinite": len(dims.psd),
        "exponential": dims.exp,
        "power": len(dims.p3d) + len(getattr(dims, "pnd", [])),
    }
    if any(cones.values()):
        kinds = ", ".join(k for k, v in cones.items() if v)
        raise ValueError(f"`problem` is not a linear program: it needs {kinds} cone constraints.")

    c = np.asarray(data["c"], dtype=np.float64).reshape(-1)
    n = c.shape[0]
    A = data["A"].tocsr()
    b = np.asarray(data["b"], dtype=np.float64).reshape(-1)
    m_eq, m_ub = int(dims.zero), int(dims.nonneg)
    if A.shape != (m_eq + m_ub, n) or b.shape != (m_eq + m_ub,):
        raise ValueError(
            f"`problem`: cvxpy produced data of unexpected shapes (A {A.shape}, b {b.shape}, "
            f"{m_eq} equalities, {m_ub} inequalities, {n} variables)."
        )
    lower = data.get("lower_bounds")
    upper = data.get("upper_bounds")
    lb = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=np.float64).copy()
    ub = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=np.float64).copy()
    integrality = np.zeros(n, dtype=np.int8)
    boolean = np.asarray(data.get("bool_vars_idx", []), dtype=np.int64)
    integer = np.asarray(data.get("int_vars_idx", []), dtype=np.int64)
    integrality[boolean] = 1
    integrality[integer] = 1
    lb[boolean] = np.maximum(lb[boolean], 0.0)  # as cvxpy's HiGHS interface does
    ub[boolean] = np.minimum(ub[boolean], 1.0)
    try:
        lp = LinearProgram(
            c,
            A_ub=A[m_eq:] if m_ub else None,
            b_ub=b[m_eq:] if m_ub else None,
            A_eq=A[:m_eq] if m_eq else None,
            b_eq=b[:m_eq] if m_eq else None,
            bounds=np.column_stack([lb, ub]),
            integrality=integrality,
        )
    except ValueError as exc:  # NaN/inf in parameter values, inconsistent bounds
        raise ValueError(
            f"`problem`: its compiled data is not a valid LinearProgram: {exc}"
        ) from exc
    return lp, CvxpyMapping(problem, lp, chain, inverse_data)


class CvxpyMapping:
    """The way back from a `Solution` of `lp` to the cvxpy problem it came from.

    Made by `from_cvxpy`; holds the cvxpy problem, the compiled `LinearProgram`
    and cvxpy's reduction chain. A `Solution` passed in must come from solving
    `lp` itself (any backend). Shapes are checked, but a solve with other costs
    (`lp.with_costs`) would be mapped back as if it were cvxpy's objective.

    Attributes:
        problem: the cvxpy problem.
        lp: the compiled `LinearProgram`.
    """

    # Our statuses in cvxpy's words (cvxpy.settings); the others have no cvxpy
    # equivalent that carries a solution, so `load` refuses them.
    _CVXPY_STATUS: ClassVar[dict[Status, str]] = {
        Status.OPTIMAL: "optimal",
        Status.INFEASIBLE: "infeasible",
        Status.UNBOUNDED: "unbounded",
        Status.INFEASIBLE_OR_UNBOUNDED: "infeasible_or_unbounded",
        Status.TIME_LIMIT: "user_limit",
    }

    def __init__(self, problem: Any, lp: LinearProgram, chain: Any, inverse_data: Any) -> None:
        self.problem = problem
        self.lp = lp
        self._chain = chain
        self._inverse_data = inverse_data

    def __repr__(self) -> str:
        return f"CvxpyMapping({self.lp!r}, variables={len(self.problem.variables())})"

    def invert(self, solution: Solution) -> Any:
        """The `cvxpy.reductions.solution.Solution` of the original problem.

        Raises:
            TypeError: `solution` is not a `Solution`.
            ValueError: its arrays do not fit `lp`, or its status has no cvxpy
                equivalent (`ERROR`, `NUMERICAL`, or `TIME_LIMIT` without a point).
        """
        import cvxpy.settings as s
        from cvxpy.reductions.solution import Solution as CvxpySolution
        from cvxpy.reductions.solution import failure_solution
        from cvxpy.reductions.solvers import utilities
        from cvxpy.reductions.solvers.solver import Solver as CvxpySolver

        _check_solution(solution)
        status = self._CVXPY_STATUS.get(solution.status)
        if status is None or (status == s.USER_LIMIT and solution.x is None):
            raise ValueError(
                f"`solution` has status {solution.status.name}, which carries no solution for "
                f"cvxpy: {solution.message}"
            )
        solver_data = self._inverse_data[-1]
        if status in s.SOLUTION_PRESENT:
            x = self._checked(solution.x, self.lp.n_vars, "x")
            # The same Solution cvxpy's HiGHS interface builds in HIGHS.invert.
            dual_vars = None
            if solution.duals_ub is not None and solution.duals_eq is not None:
                y = -np.concatenate(
                    [
                        self._checked(solution.duals_eq, self.lp.n_eq, "duals_eq"),
                        self._checked(solution.duals_ub, self.lp.n_ub, "duals_ub"),
                    ]
                )
                dual_vars = utilities.get_dual_values(
                    y,
                    utilities.extract_dual_value,
                    solver_data[CvxpySolver.EQ_CONSTR] + solver_data[CvxpySolver.NEQ_CONSTR],
                )
            result = CvxpySolution(
                status,
                solution.objective + solver_data[s.OFFSET],
                {solver_data[CvxpySolver.VAR_ID]: x},
                dual_vars,
                {s.SOLVE_TIME: solution.solve_time},
            )
        else:
            dual_vars = None
            farkas = solution.info.get("farkas_ub"), solution.info.get("farkas_eq")
            if status == s.INFEASIBLE and farkas[0] is not None and farkas[1] is not None:
                # As cvxpy's HiGHS interface does with HiGHS' dual ray (cvxpy's sign).
                y = -np.concatenate(
                    [
                        self._checked(farkas[1], self.lp.n_eq, "info['farkas_eq']"),
                        self._checked(farkas[0], self.lp.n_ub, "info['farkas_ub']"),
                    ]
                )
                dual_vars = utilities.get_dual_values(
                    y,
                    utilities.extract_dual_value,
                    solver_data[CvxpySolver.EQ_CONSTR] + solver_data[CvxpySolver.NEQ_CONSTR],
                )
            result = failure_solution(status, {s.SOLVE_TIME: solution.solve_time}, dual_vars)
        # Undo the reductions before the solver, last first (SolvingChain.invert does the same).
        reductions = self._chain.reductions[:-1]
        for reduction, inverse in reversed(list(zip(reductions, self._inverse_data[:-1]))):
            result = reduction.invert(result, inverse)
        return result

    def values(self, solution: Solution) -> dict[Any, np.ndarray]:
        """The value of every cvxpy variable at `solution.x`, shaped like the variable.

        Raises:
            ValueError: `solution` has no point (e.g. infeasible), or does not fit `lp`.
        """
        _check_solution(solution)
        if solution.x is None:
            raise ValueError(
                f"`solution` has no point (status {solution.status.name}): {solution.message}"
            )
        primal = self.invert(solution).primal_vars
        return {v: np.asarray(primal[v.id], dtype=np.float64) for v in self.problem.variables()}

    def objective(self, solution: Solution) -> float:
        """The cvxpy objective value: cvxpy's sense, with its constant term.

        For statuses without a point this is cvxpy's convention (+inf infeasible
        minimisation, -inf unbounded minimisation, signs swapped for maximisation).
        """
        value = self.invert(solution).opt_val
        return float("nan") if value is None else float(value)

    def duals(self, solution: Solution) -> dict[Hashable, np.ndarray | float]:
        """Each constraint's dual, exactly as cvxpy stores it in `constraint.dual_value`.

        Raises:
            ValueError: `solution` carries no duals (integer program, or not optimal).
        """
        _check_solution(solution)
        if solution.duals_ub is None or solution.duals_eq is None:
            raise ValueError(
                f"`solution` has no duals (status {solution.status.name}; integer programs "
                "have none)."
            )
        dual_vars = self.invert(solution).dual_vars
        return {con: dual_vars[con.id] for con in self.problem.constraints if con.id in dual_vars}

    def load(self, solution: Solution) -> None:
        """Store `solution` in the cvxpy problem as if cvxpy had solved it.

        Sets each variable's `value`, each constraint's `dual_value` (LP only),
        and `problem.status` / `problem.value`.

        Raises:
            SolverError: the status has no cvxpy equivalent (`ERROR`,
                `NUMERICAL`, `TIME_LIMIT` without a point).
        """
        try:
            result = self.invert(solution)
        except ValueError as exc:
            raise SolverError(f"Cannot load the solution into the cvxpy problem: {exc}") from exc
        self.problem.unpack(result)

    @staticmethod
    def _checked(values: np.ndarray | None, size: int, name: str) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (size,):
            raise ValueError(
                f"`solution.{name}` has shape {arr.shape}, but the compiled problem needs "
                f"({size},): was the solution computed for this mapping's `lp`?"
            )
        return arr


def _check_solution(solution: Any) -> None:
    if not isinstance(solution, Solution):
        raise TypeError(f"`solution` must be a solvers.Solution; got {type(solution).__name__}.")
