"""Fast exact combinatorial solvers returning the same `Solution` as the LP layer.

Each problem comes with an exact special-purpose solver and an LP builder with the same
variable order, so `solver(...).x` is an optimal vertex of `solve(builder(...))`:

* `assignment` / `assignment_batch` / `assignment_lp`: linear assignment
  (`scipy.optimize.linear_sum_assignment`);
* `alignment` / `alignment_batch` / `alignment_lp`: global (Needleman-Wunsch) sequence
  alignment by dynamic programming (numba kernel, numpy fallback);
* `shortest_path` / `shortest_path_lp`: shortest path in a `networkx.DiGraph`
  (Dijkstra, or DAG dynamic programming when weights are negative).

Torch-free: numpy, scipy, networkx (imported when used) and, optionally, numba
(imported only when a numba kernel first runs).
"""

from __future__ import annotations

from ._common import ENGINE_ENV_VAR, numba_available, resolve_engine
from .alignment import alignment, alignment_batch, alignment_batch_gather, alignment_lp
from .assignment import assignment, assignment_batch, assignment_batch_gather, assignment_lp
from .shortest_path import shortest_path, shortest_path_lp

__all__ = [
    "ENGINE_ENV_VAR",
    "alignment",
    "alignment_batch",
    "alignment_batch_gather",
    "alignment_lp",
    "assignment",
    "assignment_batch",
    "assignment_batch_gather",
    "assignment_lp",
    "numba_available",
    "resolve_engine",
    "shortest_path",
    "shortest_path_lp",
]
