"""`LinearProgram`: the problem model shared by every backend.

The form is scipy's (`scipy.optimize.linprog` / `milp`), always a minimization::

    min  c @ x
    s.t. A_ub @ x <= b_ub
         A_eq @ x == b_eq
         lb <= x <= ub              (bounds; default 0 <= x < inf)
         x[j] integer where integrality[j] == 1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["LinearProgram"]


def _vector(value: Any, name: str, column_ok: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a one-dimensional array of numbers.") from exc
    if isinstance(value, np.ndarray) and np.may_share_memory(arr, value):
        arr = arr.copy()  # the problem freezes its arrays: never the caller's own
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if column_ok and arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)  # scipy accepts a right-hand side of shape (m, 1) or (1, m)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional; got shape {arr.shape}.")
    if not np.isfinite(arr).all():  # one pass when all is well (per-call overhead)
        if np.isnan(arr).any():
            raise ValueError(
                f"`{name}` must not contain NaN (found at index {int(np.isnan(arr).argmax())})."
            )
        raise ValueError(
            f"`{name}` must contain only finite numbers; found +-inf at index "
            f"{int((~np.isfinite(arr)).argmax())}."
        )
    return arr


def _matrix(value: Any, name: str, n: int) -> sp.csr_array:
    if sp.issparse(value):
        mat = sp.csr_array(value, dtype=np.float64)
    else:
        try:
            dense = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`{name}` must be a two-dimensional array of numbers.") from exc
        if dense.ndim == 1 and dense.size == n and n > 0:
            dense = dense.reshape(1, n)
        if dense.ndim != 2:
            raise ValueError(f"`{name}` must be two-dimensional; got shape {dense.shape}.")
        if np.isnan(dense).any():
            raise ValueError(f"`{name}` must not contain NaN.")
        if not np.isfinite(dense).all():
            raise ValueError(f"`{name}` must contain only finite numbers; found +-inf.")
        mat = sp.csr_array(dense)
    if mat.ndim != 2:
        raise ValueError(f"`{name}` must be two-dimensional; got shape {mat.shape}.")
    if np.isnan(mat.data).any():
        raise ValueError(f"`{name}` must not contain NaN.")
    if not np.isfinite(mat.data).all():
        raise ValueError(f"`{name}` must contain only finite numbers; found +-inf.")
    if mat.shape[1] != n:
        raise ValueError(f"`{name}` must have len(c) = {n} columns; got shape {mat.shape}.")
    mat.sum_duplicates()
    mat.eliminate_zeros()
    return mat


def _constraints(
    A: Any, b: Any, a_name: str, b_name: str, n: int
) -> tuple[sp.csr_array, np.ndarray]:
    if _is_empty(A) and _is_empty(b):  # None, or scipy's A_ub=[] / b_ub=[]
        return sp.csr_array((0, n)), np.zeros(0)
    if A is None or b is None:
        missing, given = (a_name, b_name) if A is None else (b_name, a_name)
        raise ValueError(f"`{missing}` must be given when `{given}` is given.")
    mat = _matrix(A, a_name, n)
    rhs = _vector(b, b_name, column_ok=True)
    if mat.shape[0] != rhs.shape[0]:
        raise ValueError(
            f"`{a_name}` must have shape (len({b_name}), len(c)) = {(rhs.shape[0], n)}; "
            f"got {mat.shape}."
        )
    return mat, rhs


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if sp.issparse(value):
        return value.shape[0] == 0
    try:
        return np.size(value) == 0
    except (TypeError, ValueError):
        return False


def _bounds(bounds: Any, n: int) -> np.ndarray:
    """Normalise scipy-style bounds to an (n, 2) float array with +-inf for 'none'."""
    out = np.empty((n, 2))
    if bounds is None:
        out[:, 0], out[:, 1] = 0.0, np.inf
        return out
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        for side in ("lb", "ub"):
            try:
                values = np.asarray(getattr(bounds, side), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"`bounds.{side}` must be numbers.") from exc
            if values.ndim > 1 or values.size not in (1, n):
                raise ValueError(
                    f"`bounds.{side}` must be a scalar or have shape (len(c),) = ({n},); got "
                    f"shape {values.shape}."
                )
            out[:, 0 if side == "lb" else 1] = np.broadcast_to(values.reshape(-1), (n,))
    elif isinstance(bounds, np.ndarray) and bounds.dtype.kind in "fiu":
        arr = bounds.astype(np.float64)
        if arr.shape == (2,):
            arr = np.tile(arr, (n, 1))
        if arr.shape != (n, 2):
            raise ValueError(
                f"`bounds` must be a (lb, ub) pair or have shape (len(c), 2) = {(n, 2)}; "
                f"got shape {arr.shape}."
            )
        out[:] = arr
    else:
        try:
            items = list(bounds)
            is_pair = len(items) == 2 and not any(
                isinstance(b, Sequence | np.ndarray) for b in items
            )
            pairs = [items] * n if is_pair else [list(p) for p in items]
        except TypeError as exc:
            raise ValueError(
                "`bounds` must be a (lb, ub) pair or a sequence of len(c) pairs."
            ) from exc
        if len(pairs) == 1 and n > 1:
            pairs = pairs * n
        if len(pairs) != n or any(len(p) != 2 for p in pairs):
            raise ValueError(
                f"`bounds` must be a (lb, ub) pair or have shape (len(c), 2) = {(n, 2)}; "
                f"got {len(pairs)} entries."
            )
        for j, (lo, hi) in enumerate(pairs):
            try:
                out[j, 0] = -np.inf if lo is None else float(lo)
                out[j, 1] = np.inf if hi is None else float(hi)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"`bounds` must hold numbers or None (variable {j}).") from exc
    if np.isnan(out).any():
        raise ValueError("`bounds` must not contain NaN (use None or +-inf for 'unbounded').")
    if (out[:, 0] == np.inf).any():
        raise ValueError(
            f"`bounds`: lower bound of variable {int((out[:, 0] == np.inf).argmax())} is +inf."
        )
    if (out[:, 1] == -np.inf).any():
        raise ValueError(
            f"`bounds`: upper bound of variable {int((out[:, 1] == -np.inf).argmax())} is -inf."
        )
    bad = out[:, 0] > out[:, 1]
    if bad.any():
        j = int(bad.argmax())
        raise ValueError(
            f"`bounds`: lower bound exceeds upper bound for variable {j} ({out[j, 0]} > {out[j, 1]})."
        )
    return out


def _integrality(value: Any, n: int) -> np.ndarray:
    if value is None:
        return np.zeros(n, dtype=np.int8)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("`integrality` must be an array of 0/1 flags.") from exc
    arr = np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr
    if arr.shape != (n,):
        raise ValueError(f"`integrality` must have shape (len(c),) = ({n},); got {arr.shape}.")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError("`integrality` must contain only 0 (continuous) or 1 (integer).")
    return arr.astype(np.int8)


@dataclass(frozen=True, eq=False, init=False)
class LinearProgram:
    """A linear or mixed-integer linear program, validated on construction.

    Arguments follow `scipy.optimize.linprog` / `milp`; the problem is always
    a minimization of `c @ x`.

    Args:
        c: objective coefficients, shape (n,), finite.
        A_ub: inequality matrix, shape (m_ub, n), dense or scipy.sparse, finite.
            `A_ub=[]` with `b_ub=[]` means no inequalities, as in scipy.
        b_ub: inequality right-hand side, shape (m_ub,) (or a column (m_ub, 1), as
            scipy accepts), finite.
        A_eq: equality matrix, shape (m_eq, n), dense or scipy.sparse, finite.
        b_eq: equality right-hand side, shape (m_eq,) or (m_eq, 1), finite.
        bounds: as scipy: None (every `0 <= x < inf`), one `(lb, ub)` pair for
            all variables, a sequence of n pairs, an (n, 2) array, or a
            `scipy.optimize.Bounds` (whose `lb`/`ub` are scalars or shape (n,)).
            `None` or +-inf means no bound.
        integrality: 0/1 per variable (1 = integer), or a scalar for all; None
            means all continuous.

    Stored attributes are normalised: `A_ub`/`A_eq` are CSR arrays (with zero
    rows when absent), `bounds` is an (n, 2) float array, `integrality` an int8
    vector; all arrays are read-only.

    Raises:
        ValueError: naming the offending argument, for wrong shapes, NaN anywhere,
            +-inf outside `bounds`, an empty `c`, or a lower bound above its
            upper bound.
    """

    c: np.ndarray
    A_ub: sp.csr_array
    b_ub: np.ndarray
    A_eq: sp.csr_array
    b_eq: np.ndarray
    bounds: np.ndarray
    integrality: np.ndarray

    def __init__(
        self,
        c: Any,
        A_ub: Any = None,
        b_ub: Any = None,
        A_eq: Any = None,
        b_eq: Any = None,
        bounds: Any = None,
        integrality: Any = None,
    ) -> None:
        c_arr = _vector(c, "c")
        n = c_arr.shape[0]
        if n == 0:
            raise ValueError("`c` must be non-empty: a problem needs at least one variable.")
        A_ub_m, b_ub_v = _constraints(A_ub, b_ub, "A_ub", "b_ub", n)
        A_eq_m, b_eq_v = _constraints(A_eq, b_eq, "A_eq", "b_eq", n)
        bnds = _bounds(bounds, n)
        integ = _integrality(integrality, n)
        for arr in (c_arr, b_ub_v, b_eq_v, bnds, integ):
            arr.setflags(write=False)
        for name, value in (
            ("c", c_arr),
            ("A_ub", A_ub_m),
            ("b_ub", b_ub_v),
            ("A_eq", A_eq_m),
            ("b_eq", b_eq_v),
            ("bounds", bnds),
            ("integrality", integ),
        ):
            object.__setattr__(self, name, value)

    # -- derived views -------------------------------------------------------------
    @property
    def n_vars(self) -> int:
        """Number of variables n."""
        return int(self.c.shape[0])

    @property
    def n_ub(self) -> int:
        """Number of inequality rows m_ub."""
        return int(self.b_ub.shape[0])

    @property
    def n_eq(self) -> int:
        """Number of equality rows m_eq."""
        return int(self.b_eq.shape[0])

    @property
    def lb(self) -> np.ndarray:
        """Lower bounds, shape (n,), -inf where unbounded."""
        return self.bounds[:, 0]

    @property
    def ub(self) -> np.ndarray:
        """Upper bounds, shape (n,), +inf where unbounded."""
        return self.bounds[:, 1]

    @property
    def is_mip(self) -> bool:
        """True when at least one variable is integer."""
        cache = self.__dict__
        if "_is_mip" not in cache:
            cache["_is_mip"] = bool(self.integrality.any())
        return cache["_is_mip"]

    def stacked_constraints(self, fmt: str = "csc") -> sp.sparray:
        """`[A_ub; A_eq]` in sparse format `fmt` ("csc" or "csr"), built once and cached.

        Backends hand the rows to the solver in one call; the matrix is shared by every
        problem derived with `with_costs`, so re-solves with new costs never rebuild it.
        """
        cache = self.__dict__.setdefault("_stacked", {})
        if fmt not in cache:
            if self.n_eq == 0:
                stacked = self.A_ub
            elif self.n_ub == 0:
                stacked = self.A_eq
            else:
                stacked = sp.vstack([self.A_ub, self.A_eq])
            cache[fmt] = stacked.asformat(fmt)
        return cache[fmt]

    def with_costs(self, c: Any) -> LinearProgram:
        """Same constraints, new objective (validated); the matrices are shared, not copied."""
        c_arr = _vector(c, "c")
        if c_arr.shape != self.c.shape:
            raise ValueError(f"`c` must have shape {self.c.shape}; got {c_arr.shape}.")
        return self._with_checked_costs(c_arr)

    def _with_checked_costs(self, c_arr: np.ndarray) -> LinearProgram:
        """`with_costs` for a float64 vector already checked (right shape, finite) and owned."""
        c_arr.setflags(write=False)
        # Fill the caches first so that every problem derived from this one shares them.
        # Every cached entry (stacked matrices, residual system, rhs scale, is_mip) is
        # independent of the costs, so the new problem takes this one's state as it is.
        state = self.__dict__
        if "_rhs_scale" not in state or "_is_mip" not in state or "_stacked" not in state:
            self.rhs_scale()
            self.is_mip  # noqa: B018 - fills the cache
            state.setdefault("_stacked", {})
        new = object.__new__(LinearProgram)
        new.__dict__.update(state)
        new.__dict__["c"] = c_arr
        return new

    def relaxation(self) -> LinearProgram:
        """The LP relaxation (integrality dropped)."""
        return self.replace(integrality=None)

    def replace(self, **changes: Any) -> LinearProgram:
        """A new validated problem with some arguments replaced."""
        args = {
            "c": self.c,
            "A_ub": self.A_ub if self.n_ub else None,
            "b_ub": self.b_ub if self.n_ub else None,
            "A_eq": self.A_eq if self.n_eq else None,
            "b_eq": self.b_eq if self.n_eq else None,
            "bounds": self.bounds,
            "integrality": self.integrality,
        }
        args.update(changes)
        return LinearProgram(**args)

    def residuals(self, x: np.ndarray) -> float:
        """Largest violation of any constraint or bound at `x` (0 when feasible)."""
        x = np.asarray(x, dtype=np.float64)
        system = self._residual_system()
        if system is not None:  # small problem: one dense product covers every row and bound
            matrix, rhs = system
            return max(0.0, float((matrix @ x - rhs).max()))
        worst = max(0.0, float(np.max(self.lb - x)), float(np.max(x - self.ub)))
        if self.n_ub or self.n_eq:
            activity = self.stacked_constraints("csr") @ x  # one product for both row kinds
            if self.n_ub:
                worst = max(worst, float(np.max(activity[: self.n_ub] - self.b_ub)))
            if self.n_eq:
                worst = max(worst, float(np.max(np.abs(activity[self.n_ub :] - self.b_eq))))
        return worst

    def _residual_system(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Dense `(M, r)` with `max(M @ x - r)` the largest violation, for small problems.

        Rows: `-x <= -lb`, `x <= ub`, `A_ub x <= b_ub`, `A_eq x <= b_eq` and
        `-A_eq x <= -b_eq`. Checking a solution then takes three numpy calls instead of
        a dozen plus a sparse product (per-call overhead of small solves). None when the
        dense matrix would be large. Cached with the stacked matrix (shared by `with_costs`).
        """
        cache = self.__dict__.setdefault("_stacked", {})
        if "residual_system" not in cache:
            n, m_ub, m_eq = self.n_vars, self.n_ub, self.n_eq
            system = None
            if (2 * n + m_ub + 2 * m_eq) * n <= 8192:
                eye = np.eye(n)
                rows = [-eye, eye]
                if m_ub or m_eq:
                    stacked = self.stacked_constraints("csr").toarray()
                    rows += [stacked, -stacked[m_ub:]]
                matrix = np.vstack(rows)
                rhs = np.concatenate([-self.lb, self.ub, self.b_ub, self.b_eq, -self.b_eq])
                system = (matrix, rhs)
            cache["residual_system"] = system
        return cache["residual_system"]

    def rhs_scale(self) -> float:
        """`1 + max |b|` over both right-hand sides: the scale of feasibility tolerances."""
        cache = self.__dict__
        if "_rhs_scale" not in cache:
            cache["_rhs_scale"] = 1.0 + max(
                float(np.max(np.abs(self.b_ub), initial=0.0)),
                float(np.max(np.abs(self.b_eq), initial=0.0)),
            )
        return cache["_rhs_scale"]

    def __repr__(self) -> str:
        kind = "MILP" if self.is_mip else "LP"
        return f"LinearProgram({kind}, n={self.n_vars}, m_ub={self.n_ub}, m_eq={self.n_eq})"
