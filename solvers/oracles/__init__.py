r"""Fast exact [`Oracle`][solvers.oracle.Oracle]s for structures used in decision-focused learning.

Each builder returns an oracle whose `solve(costs)` takes `(B, n)` or `(n,)` costs and
returns minimizers and optimal values, and whose `to_problem()` gives the equivalent
[`LinearProgram`][solvers.LinearProgram] with the same variable order (so that
`Oracle.from_problem(oracle.to_problem())` is the slow, general path to the same optimum):

| builder | problem | method |
|---|---|---|
| [`grid_shortest_path`][solvers.oracles.grid_shortest_path] | top-left to bottom-right path, edges right and down, PyEPO's edge order | compiled batched DP |
| [`assignment`][solvers.oracles.assignment] | linear assignment, costs flattened row-major | Hungarian (`assignment_batch`) |
| [`top_k`][solvers.oracles.top_k] | the `k` cheapest entries | closed form (sort) |
| [`knapsack`][solvers.oracles.knapsack] | 0/1 knapsack, one or several dimensions | DP (one integer dimension), else HiGHS MILP |

Everything **minimizes**; to maximize a value $v^\top x$ (PyEPO's knapsack), pass `-v`
and negate the returned values.
"""

from __future__ import annotations

from ._grid import grid_edges, grid_shortest_path
from ._knapsack import knapsack
from ._simple import assignment, top_k

__all__ = ["assignment", "grid_edges", "grid_shortest_path", "knapsack", "top_k"]
