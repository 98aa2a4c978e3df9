"""Assignment (our Hungarian batch path) and top-k (closed form) oracles."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..oracle import Oracle
from ..problem import LinearProgram

__all__ = ["Assignment", "TopK", "assignment", "top_k"]


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    return int(value)


class Assignment(Oracle):
    """The oracle of [`assignment`][solvers.oracles.assignment]."""

    def __init__(self, n_rows: int, n_cols: int, *, threads: int | None = None) -> None:
        self.n_rows = _check_int(n_rows, "n_rows", 1)
        self.n_cols = _check_int(n_cols, "n_cols", 1)
        self.threads = threads
        super().__init__(self.n_rows * self.n_cols, name=f"assignment({n_rows}, {n_cols})")

    def _solve_batch(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from ..combinatorial import assignment_batch

        values, indicator = assignment_batch(
            costs.reshape(-1, self.n_rows, self.n_cols), threads=self.threads
        )
        return indicator.reshape(costs.shape).astype(np.float64), values

    def to_problem(self) -> LinearProgram:
        """The assignment LP of [`assignment_lp`][solvers.combinatorial.assignment.assignment_lp], same variable order."""
        from ..combinatorial import assignment_lp

        return assignment_lp(np.zeros((self.n_rows, self.n_cols)))


def assignment(n_rows: int, n_cols: int, *, threads: int | None = None) -> Oracle:
    r"""Linear assignment: match every row of the smaller side to a distinct column.

    Costs are the `n_rows` x `n_cols` cost matrix flattened row-major (entry `i * n_cols + j`
    is the cost of matching row `i` with column `j`); `x` is the flattened 0/1 matching.
    When `n_rows <= n_cols` every row is matched (and vice versa); see
    [`assignment_lp`][solvers.combinatorial.assignment.assignment_lp]. Solved by
    [`assignment_batch`][solvers.combinatorial.assignment.assignment_batch] (the Hungarian algorithm of
    `scipy.optimize.linear_sum_assignment`, threads over large batches); ties are its own
    deterministic choice.

    Args:
        n_rows: rows, $\ge 1$.
        n_cols: columns, $\ge 1$.
        threads: as for [`assignment_batch`][solvers.combinatorial.assignment.assignment_batch].

    Returns:
        An [`Oracle`][solvers.oracle.Oracle] with `n = n_rows * n_cols` and `to_problem()`.

    Examples:
        ```python
        import numpy as np
        from solvers.oracles import assignment

        oracle = assignment(2, 2)
        x, values = oracle.solve(np.array([[4.0, 1.0, 2.0, 5.0]]))   # x == [[0, 1, 1, 0]]
        ```
    """
    return Assignment(n_rows, n_cols, threads=threads)


class TopK(Oracle):
    """The oracle of [`top_k`][solvers.oracles.top_k]."""

    def __init__(self, n: int, k: int) -> None:
        n = _check_int(n, "n", 1)
        self.k = _check_int(k, "k", 0)
        if self.k > n:
            raise ValueError(f"`k` must be at most `n` = {n}; got {k}.")
        super().__init__(n, name=f"top_k({n}, {k})")

    def _solve_batch(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chosen = np.argsort(costs, axis=1, kind="stable")[:, : self.k]
        x = np.zeros_like(costs)
        np.put_along_axis(x, chosen, 1.0, axis=1)
        return x, np.take_along_axis(costs, chosen, axis=1).sum(axis=1)

    def to_problem(self) -> LinearProgram:
        """$\\min c^\\top x$ s.t. $\\sum_i x_i = k$, $0 \\le x \\le 1$."""
        return LinearProgram(
            np.zeros(self.n),
            A_eq=sp.csr_array(np.ones((1, self.n))),
            b_eq=[float(self.k)],
            bounds=(0, 1),
        )


def top_k(n: int, k: int) -> Oracle:
    r"""Choose the `k` cheapest of `n` entries: $\min c^\top x$ s.t. $\sum_i x_i = k$, $0 \le x \le 1$.

    Closed form: `x` marks the `k` smallest costs (a stable sort, so **ties** go to the
    lower index). To choose the `k` *largest* scores `s`, pass `-s`.

    Args:
        n: number of entries, $\ge 1$.
        k: how many to choose, $0 \le k \le n$.

    Returns:
        An [`Oracle`][solvers.oracle.Oracle] with `to_problem()`.

    Examples:
        ```python
        from solvers.oracles import top_k

        x, values = top_k(4, 2).solve([3.0, -1.0, 2.0, 0.5])   # x == [0, 1, 0, 1], values == -0.5
        ```
    """
    return TopK(n, k)
