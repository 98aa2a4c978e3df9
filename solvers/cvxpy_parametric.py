r"""A parametrized cvxpy LP/MILP compiled once into an affine map to `LinearProgram` data.

cvxpy compiles a DPP problem (Disciplined Parametrized Programming) into a
*parametric* cone program: with $\theta$ the parameter values stacked into one
vector (each parameter flattened in column-major order, as cvxpy does), the data
of the compiled problem

$$\min_x\; c(\theta)^\top x + d(\theta) \quad\text{s.t.}\quad
A_{\text{eq}}(\theta)\, x = b_{\text{eq}}(\theta),\;
A_{\text{ub}}(\theta)\, x \le b_{\text{ub}}(\theta),\; l \le x \le u$$

is an affine function of $\theta$. `ParametricLP` keeps those affine maps as
sparse matrices, so a new parameter value costs sparse matrix products, never a
new canonicalization, and it applies the chain rule backwards: with the solution
$x^\star$ and duals $y^\star = \partial z/\partial b$ of the compiled problem,
the gradient of cvxpy's optimal value $V$ is

$$\frac{\partial V}{\partial \theta} = s\Big(J_c^\top x^\star + \nabla_\theta d
+ J_b^\top y^\star - J_A^\top \operatorname{vec}(y^\star x^{\star\top})\Big),$$

where $s = 1$ for `cvxpy.Minimize` and $s = -1$ for `cvxpy.Maximize` (cvxpy
compiles a maximisation into the minimisation of the negated objective).

Example:
    ```python
    import cvxpy as cp
    import numpy as np
    import solvers
    from solvers.cvxpy_parametric import ParametricLP

    x = cp.Variable(2)
    c = cp.Parameter(2)
    b = cp.Parameter()
    problem = cp.Problem(cp.Minimize(c @ x), [cp.sum(x) == b, x >= 0])
    plp = ParametricLP(problem, [c, b])
    theta = plp.theta([np.array([1.0, 2.0]), np.array(3.0)])
    sol = solvers.solve(plp.linear_program(theta))
    print(plp.value(sol.objective, theta))           # 3.0
    print(plp.value_gradient(theta, sol.x, sol.duals_eq, sol.duals_ub))  # [3, 0, 1]
    ```

Only numpy and scipy are needed at run time (and cvxpy to compile); `solvers`
stays importable without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .problem import LinearProgram

__all__ = ["ParametricLP"]

_CVXPYLAYERS_HINT = (
    "CvxpyLayer handles linear and mixed-integer linear programs only; for quadratic or "
    "conic problems use cvxpylayers (https://github.com/cvxpy/cvxpylayers)."
)


def _fortran_flat(value: np.ndarray) -> np.ndarray:
    """Flatten the trailing parameter axes in column-major order, keeping axis 0 (batch)."""
    batch = value.shape[0]
    axes = (0, *range(value.ndim - 1, 0, -1))
    return np.transpose(value, axes).reshape(batch, -1)


class ParametricLP:
    r"""A cvxpy LP/MILP canonicalized once, as affine maps from parameters to LP data.

    Args:
        problem: a DPP `cvxpy.Problem` with a linear objective and linear
            constraints after cvxpy's reductions (`abs`, `max`, `norm1`
            and the like are fine), integer or boolean variables allowed.
        parameters: the problem's parameters, all of them, in the order in
            which their values will be given (as in cvxpylayers).

    Attributes:
        problem: the cvxpy problem.
        parameters: the parameters, in the caller's order.
        n_vars: number of variables of the compiled problem.
        n_eq: number of equality rows of the compiled problem.
        n_ub: number of inequality rows of the compiled problem.
        n_theta: length of the stacked parameter vector $\theta$.
        sense: $1$ for `Minimize`, $-1$ for `Maximize`.
        bounds: `(n_vars, 2)` variable bounds of the compiled problem.
        integrality: `(n_vars,)` 0/1 integer markers, or None for an LP.
        cost_params: per parameter, whether it enters the objective.
        constraint_params: per parameter, whether it enters the constraints.

    Raises:
        TypeError: `problem` is not a `cvxpy.Problem` or `parameters` is not a list.
        ValueError: the problem is not DCP or not DPP, is not an LP/MILP (quadratic
            objective, second-order, exponential, power or semidefinite cones: the
            message points to cvxpylayers), the parameters do not match
            `problem.parameters()`, or variable bounds depend on parameters.
    """

    def __init__(self, problem: Any, parameters: Sequence[Any]) -> None:
        import cvxpy as cp

        if not isinstance(problem, cp.Problem):
            raise TypeError(f"`problem` must be a cvxpy.Problem; got {type(problem).__name__}.")
        if not isinstance(parameters, list | tuple):
            raise TypeError(
                f"`parameters` must be a list or tuple of cvxpy.Parameter; got "
                f"{type(parameters).__name__}."
            )
        parameters = list(parameters)
        for i, p in enumerate(parameters):
            if not isinstance(p, cp.Parameter):
                raise TypeError(
                    f"`parameters[{i}]` must be a cvxpy.Parameter; got {type(p).__name__}."
                )
        if len({p.id for p in parameters}) != len(parameters):
            raise ValueError("`parameters` lists a parameter more than once.")
        own = {p.id: p for p in problem.parameters()}
        extra = [p.name() for p in parameters if p.id not in own]
        missing = [p.name() for pid, p in own.items() if pid not in {q.id for q in parameters}]
        if extra or missing:
            raise ValueError(
                "`parameters` must list exactly the problem's parameters"
                + (f"; not in the problem: {', '.join(extra)}" if extra else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + "."
            )
        if not problem.variables():
            raise ValueError("`problem` has no variables.")
        if not problem.is_dcp():
            raise ValueError(
                "`problem` does not follow cvxpy's DCP rules (see problem.is_dcp()); "
                + _CVXPYLAYERS_HINT
            )
        if not problem.is_dpp():
            raise ValueError(
                "`problem` is not DPP: its data must be affine in the parameters (for example "
                "no product of two parameters, no parameter inside a nonlinear function). "
                "See cvxpy's 'Disciplined Parametrized Programming' rules; cvxpylayers "
                "requires the same."
            )

        from ._backends.highs import _new_highs

        _new_highs()  # silences the banner HiGHS prints on its first construction
        try:
            data, chain, _ = problem.get_problem_data(cp.HIGHS)
        except cp.error.SolverError as exc:
            raise ValueError(
                "`problem` is not a linear or mixed-integer linear program: cvxpy cannot "
                "reduce it to linear constraints (it needs second-order, exponential, power or "
                f"semidefinite cones; cvxpy says: {exc}) " + _CVXPYLAYERS_HINT
            ) from exc
        from cvxpy.reductions.solvers.conic_solvers.conic_solver import ConicSolver

        if "P" in data or not isinstance(chain.solver, ConicSolver):
            raise ValueError("`problem` has a quadratic objective. " + _CVXPYLAYERS_HINT)
        dims = data["dims"]
        cones = {
            "second-order": len(dims.soc),
            "semidefinite": len(dims.psd),
            "exponential": dims.exp,
            "power": len(dims.p3d) + len(getattr(dims, "pnd", [])),
        }
        if any(cones.values()):
            kinds = ", ".join(k for k, v in cones.items() if v)
            raise ValueError(
                f"`problem` is not a linear program: it needs {kinds} cone constraints. "
                + _CVXPYLAYERS_HINT
            )
        prog = data[cp.settings.PARAM_PROB]
        if any(len(v) > 1 for v in chain.compose_var_id_map().values()):
            raise ValueError("`problem` has complex variables; they are not supported.")

        self.problem = problem
        self.parameters = parameters
        self.sense = -1 if isinstance(problem.objective, cp.Maximize) else 1
        n = self.n_vars = int(prog.x.size)
        self.n_eq, self.n_ub = int(dims.zero), int(dims.nonneg)
        m = self.n_eq + self.n_ub
        self._var_id_map = {k: v[0] for k, v in chain.compose_var_id_map().items()}
        self._prog = prog

        # Columns of cvxpy's parameter vector, in the caller's parameter order.
        param_map = {k: v[0] for k, v in chain.compose_param_id_map().items()}
        cols: list[np.ndarray] = []
        self._param_slices: list[slice] = []
        start = 0
        for p in parameters:
            pid = param_map.get(p.id, p.id)
            size = int(np.prod(p.shape, dtype=np.int64))
            if pid not in prog.param_id_to_col or prog.param_id_to_size.get(pid) != size:
                raise ValueError(
                    f"parameter {p.name()!r}: cvxpy changed its size while compiling (a "
                    "dimension-reducing attribute such as symmetric=True or diag=True); "
                    "declare it without the attribute."
                )
            col = prog.param_id_to_col[pid]
            cols.append(np.arange(col, col + size))
            self._param_slices.append(slice(start, start + size))
            start += size
        self.n_theta = start
        self._shapes = [tuple(p.shape) for p in parameters]
        perm = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        const = prog.param_id_to_col[-1] if prog.total_param_size else 0

        def split(tensor: Any, rows: int) -> tuple[sp.csr_array, np.ndarray]:
            """(rows, n_theta) sparse Jacobian in the caller's order, and the constant column."""
            t = sp.csc_array(tensor)
            if t.shape[0] != rows:
                raise ValueError(
                    f"`problem`: cvxpy produced a parameter map of unexpected shape {t.shape}."
                )
            jac = sp.csr_array(t[:, perm]) if perm.size else sp.csr_array((rows, 0))
            return jac, np.asarray(t[:, [const]].toarray()).reshape(-1)

        q_jac, q_const = split(prog.q, n + 1)
        self._c_jac, self._c_const = sp.csr_array(q_jac[:n]), q_const[:n]
        self._d_jac = np.asarray(q_jac[[n]].toarray()).reshape(-1)
        self._d_const = float(q_const[n])
        # Bounds and integrality (as cvxpy's HiGHS interface reads them).
        for name, tensor in (("lower", prog.lb_tensor), ("upper", prog.ub_tensor)):
            if tensor is not None and perm.size and sp.csc_array(tensor)[:, perm].nnz:
                raise ValueError(
                    f"`problem`: the {name} bounds of a variable depend on a parameter; write "
                    "them as constraints (e.g. `x >= p`) instead of `bounds=[...]`."
                )
        lb = self._const_bounds(prog.lb_tensor, data.get("lower_bounds"), n, -np.inf)
        ub = self._const_bounds(prog.ub_tensor, data.get("upper_bounds"), n, np.inf)
        integrality = np.zeros(n, dtype=np.int8)
        boolean = np.asarray(data.get("bool_vars_idx", []), dtype=np.int64)
        integer = np.asarray(data.get("int_vars_idx", []), dtype=np.int64)
        integrality[boolean] = 1
        integrality[integer] = 1
        lb[boolean] = np.maximum(lb[boolean], 0.0)
        ub[boolean] = np.minimum(ub[boolean], 1.0)
        self.integrality = integrality if integrality.any() else None

        ab_jac, ab_const = split(prog.A, m * n + m)
        # cvxpy's rows are vec([A | b]) column-major, with A x + b in the cone, so that
        # A_eq = -A[:m_eq], b_eq = b[:m_eq] (zero cone) and A_ub = -A[m_eq:], b_ub = b[m_eq:].
        a_part = sp.csr_array(ab_jac[: m * n])
        nz = np.flatnonzero(np.diff(a_part.indptr) > 0) if a_part.shape[1] else []
        nz = np.union1d(nz, np.flatnonzero(ab_const[: m * n])).astype(np.int64)
        a_rows, a_cols = (nz % m, nz // m) if m else (nz, nz)
        a_jac = sp.csr_array(a_part[nz]) if len(nz) else sp.csr_array((0, start))
        a_const = ab_const[: m * n][nz]
        b_jac = sp.csr_array(ab_jac[m * n :])
        b_const = ab_const[m * n :]

        # Inequality rows a * x_j <= b on one variable, with constant a and b (such as
        # `x >= 0`, which cvxpy keeps as rows), become variable bounds: the backends solve
        # a smaller LP, and their duals are not needed (no parameter moves them).
        entries = np.bincount(a_rows, minlength=m)
        moving = np.zeros(m, dtype=bool)
        moving[a_rows[np.diff(a_jac.indptr) > 0]] = True
        moving |= np.diff(b_jac.indptr) > 0
        single = (np.arange(m) >= self.n_eq) & (entries == 1) & ~moving
        drop = np.zeros(m, dtype=bool)
        new_lb, new_ub = lb.copy(), ub.copy()
        for k in np.flatnonzero(single[a_rows]):
            coef, rhs, j = -a_const[k], b_const[a_rows[k]], a_cols[k]
            if coef > 0:
                new_ub[j] = min(new_ub[j], rhs / coef)
            elif coef < 0:
                new_lb[j] = max(new_lb[j], rhs / coef)
            else:
                continue
            drop[a_rows[k]] = True
        if drop.any() and np.all(new_lb <= new_ub):  # else keep the rows: infeasible as given
            lb, ub = new_lb, new_ub
            keep = ~drop
            renumber = np.cumsum(keep) - 1
            kept = keep[a_rows]
            a_rows, a_cols = renumber[a_rows[kept]], a_cols[kept]
            a_jac, a_const = sp.csr_array(a_jac[np.flatnonzero(kept)]), a_const[kept]
            b_jac, b_const = sp.csr_array(b_jac[np.flatnonzero(keep)]), b_const[keep]
            self.n_ub -= int(drop.sum())
        self.bounds = np.column_stack([lb, ub])
        self._a_rows, self._a_cols = a_rows, a_cols
        self._a_jac, self._a_const = a_jac, a_const
        self._b_jac, self._b_const = b_jac, b_const
        # For the adjoint: d(theta) += sum_k J_A[k] * y[row_k] * x[col_k].
        self._a_jac_t = sp.csr_array(self._a_jac.T)

        def touched(jac: sp.csr_array) -> np.ndarray:
            hit = np.zeros(self.n_theta, dtype=bool)
            nonzero = sp.csr_array(jac, copy=True)
            nonzero.eliminate_zeros()
            hit[nonzero.indices] = True
            return hit

        cost_hit = touched(self._c_jac) | (self._d_jac != 0)
        cons_hit = touched(self._a_jac) | touched(self._b_jac)
        self.cost_params = [bool(cost_hit[s].any()) for s in self._param_slices]
        self.constraint_params = [bool(cons_hit[s].any()) for s in self._param_slices]

    @staticmethod
    def _const_bounds(tensor: Any, given: Any, n: int, fill: float) -> np.ndarray:
        if tensor is not None:
            return np.asarray(sp.csc_array(tensor)[:, [-1]].toarray(), dtype=np.float64).reshape(-1)
        if given is None:
            return np.full(n, fill)
        return np.asarray(given, dtype=np.float64).copy()

    def __repr__(self) -> str:
        return (
            f"ParametricLP(n_vars={self.n_vars}, n_eq={self.n_eq}, n_ub={self.n_ub}, "
            f"n_theta={self.n_theta}, integer={self.integrality is not None})"
        )

    @property
    def is_mip(self) -> bool:
        """True when some variable is integer or boolean."""
        return self.integrality is not None

    @property
    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """The shape of each parameter, in the caller's order."""
        return list(self._shapes)

    @property
    def parameter_slices(self) -> list[slice]:
        r"""Where each parameter lies in $\theta$ (flattened column-major)."""
        return list(self._param_slices)

    def theta(self, values: Sequence[Any]) -> np.ndarray:
        r"""Stack parameter values into $\theta$.

        Args:
            values: one array per parameter, shaped like the parameter, or all
                with the same leading batch dimension `B`.

        Returns:
            `(n_theta,)`, or `(B, n_theta)` when the values are batched.
        """
        if len(values) != len(self.parameters):
            raise ValueError(
                f"expected {len(self.parameters)} parameter values; got {len(values)}."
            )
        arrays = [np.asarray(v, dtype=np.float64) for v in values]
        batched = [a.ndim == len(s) + 1 for a, s in zip(arrays, self._shapes)]
        if any(batched) and not all(batched):
            raise ValueError("either all parameter values carry a batch dimension or none.")
        flat = []
        for a, s, p in zip(arrays, self._shapes, self.parameters):
            if a.shape[int(batched[0]) :] != s:
                raise ValueError(f"parameter {p.name()!r}: expected shape {s}; got {a.shape}.")
            flat.append(_fortran_flat(a if batched[0] else a[None]))
        out = np.concatenate(flat, axis=1) if flat else np.zeros((1, 0))
        return out if batched[0] else out[0]

    def costs(self, theta: np.ndarray) -> np.ndarray:
        r"""`(..., n_vars)` costs $c(\theta)$ of the compiled minimisation."""
        t = np.asarray(theta, dtype=np.float64)
        flat = t.reshape(int(np.prod(t.shape[:-1], dtype=np.int64)), self.n_theta)
        return (self._c_jac @ flat.T).T.reshape(*t.shape[:-1], self.n_vars) + self._c_const

    def offset(self, theta: np.ndarray) -> np.ndarray | float:
        r"""The constant $d(\theta)$ of the compiled objective, shape of `theta[..., 0]`."""
        t = np.asarray(theta, dtype=np.float64)
        return t @ self._d_jac + self._d_const

    def constraint_data(self, theta: np.ndarray) -> dict[str, Any]:
        r"""`A_ub`, `b_ub`, `A_eq`, `b_eq` (sparse matrices; None when empty) at one $\theta$."""
        t = np.asarray(theta, dtype=np.float64)
        if t.shape != (self.n_theta,):
            raise ValueError(f"`theta` must have shape ({self.n_theta},); got {t.shape}.")
        m, n, m_eq = self.n_eq + self.n_ub, self.n_vars, self.n_eq
        vals = -(self._a_jac @ t + self._a_const)
        A = sp.csr_array((vals, (self._a_rows, self._a_cols)), shape=(m, n))
        b = self._b_jac @ t + self._b_const
        return {
            "A_ub": A[m_eq:] if self.n_ub else None,
            "b_ub": b[m_eq:] if self.n_ub else None,
            "A_eq": A[:m_eq] if self.n_eq else None,
            "b_eq": b[:m_eq] if self.n_eq else None,
        }

    def linear_program(self, theta: np.ndarray, costs: np.ndarray | None = None) -> LinearProgram:
        r"""The compiled `LinearProgram` (a minimisation) at one $\theta$.

        Args:
            theta: `(n_theta,)` stacked parameter values.
            costs: `(n_vars,)` costs to use instead of $c(\theta)$.
        """
        c = self.costs(theta) if costs is None else costs
        return LinearProgram(
            c, **self.constraint_data(theta), bounds=self.bounds, integrality=self.integrality
        )

    def stacked_linear_program(
        self, theta: np.ndarray, costs: np.ndarray | None = None
    ) -> LinearProgram:
        r"""One block-diagonal LP whose $K$ blocks are the compiled LPs at `theta[k]`.

        The blocks share no variable or row, so an optimal solution of the stacked LP,
        cut into $K$ consecutive parts (`x.reshape(K, n_vars)`, and likewise the duals),
        is optimal for every block; solving once amortizes the per-solve overhead on
        small LPs. Built with vectorized sparse operations (no per-item `LinearProgram`).

        Args:
            theta: `(K, n_theta)` stacked parameter values.
            costs: `(K, n_vars)` costs to use instead of $c(	heta)$.

        Raises:
            ValueError: the problem has integer variables (the MIP gap of a stacked MILP
                would bound the sum, not each item).
        """
        if self.is_mip:
            raise ValueError("stacking is for LPs only; this problem has integer variables.")
        t = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        K, n = t.shape[0], self.n_vars
        c = self.costs(t) if costs is None else np.asarray(costs, dtype=np.float64)
        vals = -(t @ self._a_jac.T + self._a_const) if self._a_jac.shape[0] else np.zeros((K, 0))
        b = t @ self._b_jac.T + self._b_const if self._b_jac.shape[0] else np.zeros((K, 0))
        blocks = np.arange(K)[:, None]
        out: dict[str, Any] = {}
        for kind, rows_of, lo, size in (
            ("eq", self._a_rows < self.n_eq, 0, self.n_eq),
            ("ub", self._a_rows >= self.n_eq, self.n_eq, self.n_ub),
        ):
            if size == 0:
                out[f"A_{kind}"] = out[f"b_{kind}"] = None
                continue
            r = (blocks * size + (self._a_rows[rows_of] - lo)).ravel()
            col = (blocks * n + self._a_cols[rows_of]).ravel()
            out[f"A_{kind}"] = sp.csr_array(
                (vals[:, rows_of].ravel(), (r, col)), shape=(K * size, K * n)
            )
            out[f"b_{kind}"] = b[:, lo : lo + size].ravel()
        return LinearProgram(c.ravel(), **out, bounds=np.tile(self.bounds, (K, 1)))

    def value(self, objective: Any, theta: np.ndarray) -> Any:
        r"""cvxpy's optimal value $s\,(z + d(\theta))$ from the compiled optimum `objective`."""
        return self.sense * (np.asarray(objective, dtype=np.float64) + self.offset(theta))

    def value_gradient(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        duals_eq: np.ndarray | None,
        duals_ub: np.ndarray | None,
        *,
        costs_only: bool = False,
    ) -> np.ndarray:
        r"""Gradient of cvxpy's optimal value with respect to $\theta$.

        Args:
            theta: `(n_theta,)` or `(B, n_theta)`; unused except for its batch shape
                (the map is affine).
            x: `(n_vars,)` or `(B, n_vars)` optimal solution of the compiled problem.
            duals_eq: `(n_eq,)` or `(B, n_eq)` duals `dz/db_eq` (package convention).
            duals_ub: `(n_ub,)` or `(B, n_ub)` duals `dz/db_ub` (`<= 0`).
            costs_only: skip the constraint terms (then the entries of parameters
                that enter the constraints are incomplete; for integer programs,
                whose duals are not defined).

        Returns:
            `(n_theta,)` or `(B, n_theta)`.
        """
        batched = np.ndim(x) == 2
        X = np.atleast_2d(np.asarray(x, dtype=np.float64))
        grad = (self._c_jac.T @ X.T).T + self._d_jac
        if not costs_only and self.n_eq + self.n_ub:
            ye = np.zeros((X.shape[0], 0)) if duals_eq is None else duals_eq
            yu = np.zeros((X.shape[0], 0)) if duals_ub is None else duals_ub
            Y = np.concatenate(
                [np.atleast_2d(np.asarray(ye, float)), np.atleast_2d(np.asarray(yu, float))],
                axis=1,
            )
            # dz/dA_cvx = +y x^T (A_cvx = -A), dz/db = y.
            grad = grad + (self._b_jac.T @ Y.T).T
            if self._a_jac.shape[0]:
                G = Y[:, self._a_rows] * X[:, self._a_cols]
                grad = grad + (self._a_jac_t @ G.T).T
        grad = self.sense * grad
        return grad if batched else grad[0]

    @property
    def cost_jacobian(self) -> sp.csr_array:
        r"""`(n_vars, n_theta)` sparse Jacobian $J_c$ of the compiled costs: $c = J_c \theta + c_0$."""
        return self._c_jac

    @property
    def cost_constant(self) -> np.ndarray:
        r"""`(n_vars,)` constant part $c_0$ of the compiled costs."""
        return self._c_const

    def constraint_key(self, theta: np.ndarray) -> bytes:
        r"""Bytes that are equal exactly when two $\theta$ give the same constraint data."""
        t = np.asarray(theta, dtype=np.float64)
        return np.concatenate([self._a_jac @ t, self._b_jac @ t]).tobytes()

    def variable_slice(self, variable: Any) -> slice:
        """Where a cvxpy variable of the problem lies in the compiled `x`.

        The values are read as `x[slice].reshape(variable.shape, order="F")`.

        Raises:
            ValueError: the variable is not in the problem, or cvxpy changed its
                size while compiling (e.g. `symmetric=True`).
        """
        if variable.id not in {v.id for v in self.problem.variables()}:
            raise ValueError(f"variable {variable.name()!r} is not a variable of `problem`.")
        vid = self._var_id_map.get(variable.id, variable.id)
        col = self._prog.var_id_to_col.get(vid)
        prog_var = self._prog.id_to_var.get(vid)
        if col is None or prog_var is None or prog_var.size != variable.size:
            raise ValueError(
                f"variable {variable.name()!r}: cvxpy changed its size while compiling (an "
                "attribute such as symmetric=True or diag=True); declare it without it."
            )
        return slice(col, col + variable.size)
