"""0/1 knapsack (one or several dimensions): exact DP for one integer dimension, else MILP."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..combinatorial._common import resolve_engine
from ..oracle import Oracle
from ..problem import LinearProgram

__all__ = ["Knapsack", "knapsack"]

#: Largest DP table (items x capacity cells) solved by the DP; larger goes to the MILP.
MAX_DP_CELLS = 20_000_000
_SCALES = (1, 10, 100, 1000, 10_000)


def _integer_scale(weights: np.ndarray, capacity: float) -> int | None:
    """The smallest power of ten that makes every weight an integer, or None."""
    for scale in _SCALES:
        scaled = weights * scale
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            cells = (weights.size) * (np.floor(capacity * scale + 1e-9) + 1)
            return scale if cells <= MAX_DP_CELLS else None
    return None


def _knapsack_numpy(costs, weights, capacity):
    """The DP of the numba kernel, vectorised over the batch (same comparisons, same ties)."""
    batch, n = costs.shape
    best = np.zeros((batch, capacity + 1))
    take = np.zeros((n, batch, capacity + 1), dtype=bool)
    for i in range(n):
        wi = int(weights[i])
        if wi > capacity:
            continue
        cand = best[:, : capacity + 1 - wi] + costs[:, i : i + 1]
        better = cand < best[:, wi:]
        take[i, :, wi:] = better
        best[:, wi:] = np.where(better, cand, best[:, wi:])
    x = np.zeros_like(costs)
    rows = np.arange(batch)
    w = np.full(batch, capacity)
    for i in range(n - 1, -1, -1):
        t = take[i, rows, w]
        x[t, i] = 1.0
        w = w - np.where(t, int(weights[i]), 0)
    return x, best[:, capacity].copy()


class Knapsack(Oracle):
    """The oracle of [`knapsack`][solvers.oracles.knapsack]."""

    def __init__(
        self,
        weights: Any,
        capacities: Any,
        *,
        method: str = "auto",
        engine: str | None = None,
        backend: str = "highs",
    ) -> None:
        try:
            w = np.asarray(weights, dtype=np.float64)
            cap = np.asarray(capacities, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError("`weights` and `capacities` must be arrays of numbers.") from exc
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] == 0:
            raise ValueError(
                f"`weights` must have shape (n_items,) or (dim, n_items); got {np.shape(weights)}."
            )
        cap = np.broadcast_to(cap, (w.shape[0],)) if cap.ndim == 0 else cap
        if cap.shape != (w.shape[0],):
            raise ValueError(
                f"`capacities` must be a scalar or have shape ({w.shape[0]},) (one per "
                f"dimension of `weights`); got {cap.shape}."
            )
        if not np.isfinite(w).all():
            raise ValueError("`weights` must be finite.")
        if not np.isfinite(cap).all():
            raise ValueError("`capacities` must be finite.")
        if method not in ("auto", "dp", "milp"):
            raise ValueError(f"`method` must be 'auto', 'dp' or 'milp'; got {method!r}.")
        self.weights = w.copy()
        self.capacities = cap.astype(np.float64).copy()
        for arr in (self.weights, self.capacities):
            arr.setflags(write=False)
        super().__init__(w.shape[1], name=f"knapsack({w.shape[0]} x {w.shape[1]})")
        scale = None
        if w.shape[0] == 1 and (w >= 0).all() and cap[0] >= 0:
            scale = _integer_scale(w[0], float(cap[0]))
        if method == "dp" and scale is None:
            raise ValueError(
                "`method='dp'` needs one dimension, non-negative weights that are integers "
                "after scaling by a power of ten (at most 10**4), a non-negative capacity "
                f"and at most {MAX_DP_CELLS} DP cells."
            )
        self.method = "dp" if scale is not None and method != "milp" else "milp"
        if self.method == "dp":
            self.engine = resolve_engine(engine)
            self._int_weights = np.round(w[0] * scale).astype(np.int64)
            self._int_capacity = int(np.floor(cap[0] * scale + 1e-9))
            self._milp = None
        else:
            self.engine = None
            self._milp = Oracle.from_problem(self.to_problem(), backend=backend)

    def to_problem(self) -> LinearProgram:
        """The MILP: $\\min c^\\top x$ s.t. `weights @ x <= capacities`, $x \\in \\{0, 1\\}^n$."""
        return LinearProgram(
            np.zeros(self.n),
            A_ub=self.weights,
            b_ub=self.capacities,
            bounds=(0, 1),
            integrality=1,
        )

    def _solve_batch(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._milp is not None:
            return self._milp._solve_batch(costs)
        if self.engine == "numba":
            from ._numba import run_knapsack_batch

            x = np.zeros_like(costs)
            values = np.empty(costs.shape[0])
            run_knapsack_batch(
                np.ascontiguousarray(costs), self._int_weights, self._int_capacity, x, values
            )
            return x, values
        return _knapsack_numpy(costs, self._int_weights, self._int_capacity)


def knapsack(
    weights: Any,
    capacities: Any,
    *,
    method: str = "auto",
    engine: str | None = None,
    backend: str = "highs",
) -> Oracle:
    r"""0/1 knapsack with one or several capacity dimensions, as PyEPO's `knapsackModel`.

    $$
    x^\star(c) \in \arg\min_{x \in \{0, 1\}^n} c^\top x
    \quad \text{s.t.} \quad W x \le \text{capacities}.
    $$

    **Maximization.** PyEPO's knapsack *maximizes* the value $v^\top x$; here, as everywhere
    in `solvers`, the oracle minimizes, so pass the negated values: `x, values =
    oracle.solve(-v)` gives PyEPO's optimal selection and `-values` its optimal value.
    An item with a non-negative cost is never worth taking.

    **Method.** With one dimension, non-negative weights that become integers when scaled
    by a power of ten up to $10^4$ (PyEPO's `genData` weights have two decimals) and a DP
    table of at most `MAX_DP_CELLS` cells, an exact dynamic program over the capacity
    (numba, parallel over the batch; numpy fallback); otherwise HiGHS's MILP, through
    [`Oracle.from_problem`][solvers.oracle.Oracle.from_problem]. **Ties** (DP): an item is taken
    only when it strictly lowers the cost of the best selection seen so far.

    Args:
        weights: `(n_items,)` or `(dim, n_items)` item weights (PyEPO's shape).
        capacities: a scalar or `(dim,)` capacities.
        method: `"auto"` (the DP when it applies), `"dp"` (raise when it does not) or
            `"milp"`.
        engine: DP engine, `"numba"`, `"numpy"` or `"auto"`, as for
            [`grid_shortest_path`][solvers.oracles.grid_shortest_path].
        backend: the MILP backend.

    Returns:
        An [`Oracle`][solvers.oracle.Oracle] with `n = n_items` and a `to_problem()` method.

    Raises:
        ValueError: shapes, non-finite weights or capacities, a bad `method`.

    Examples:
        ```python
        import numpy as np
        from solvers.oracles import knapsack

        values = np.array([[6.0, 5.0, 4.0]])
        oracle = knapsack([3.0, 2.0, 2.0], 4.0)
        x, neg_best = oracle.solve(-values)   # x == [[0, 1, 1]], -neg_best == [9]
        ```
    """
    return Knapsack(weights, capacities, method=method, engine=engine, backend=backend)
