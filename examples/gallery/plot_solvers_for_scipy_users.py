"""The solver layer for scipy users: `scipy.optimize.linprog` next to `solvers.solve`.

`solvers.LinearProgram` takes `linprog`'s arguments (`c, A_ub, b_ub, A_eq, b_eq, bounds`,
and `integrality` as in `scipy.optimize.milp`), so a problem moves over unchanged. What
changes:

- `solvers.solve(lp, backend=...)` reaches HiGHS, OR-Tools (GLOP, PDLP, SCIP, CP-SAT) and cvxpy;
- the result is a `Solution`: `status` (an enum), `objective` (scipy's `fun`), `x`,
  `duals_ub` / `duals_eq` (scipy's `ineqlin.marginals` / `eqlin.marginals`: the same numbers,
  `dz/db`), and a `message` that carries the backend's raw status;
- `solvers.Solver(lp)` keeps the backend model to re-solve with new costs.

The script solves the same random LP with `linprog` and with every installed LP backend, checks
that objectives and duals agree, and times each (median of repeats, same process).

Run: `python examples/gallery/plot_solvers_for_scipy_users.py` (full, about a minute) or with
`--quick` (a few seconds; its numbers are for smoke testing only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import linprog
from tqdm import tqdm

import solvers

FIGURE = (
    Path(__file__).resolve().parents[2] / "docs" / "img" / "gallery" / "solvers_for_scipy_users.png"
)


def random_lp(n: int, m: int, rng: np.random.Generator) -> dict:
    """A feasible, bounded LP in linprog's arguments: min c @ x, A_ub x <= b_ub, x >= 0."""
    A_ub = rng.uniform(0.0, 1.0, (m, n))
    b_ub = A_ub.sum(1) * rng.uniform(0.2, 0.5, m)
    c = -rng.uniform(0.5, 1.5, n)  # maximize profit = minimize its negation
    return {"c": c, "A_ub": A_ub, "b_ub": b_ub, "bounds": (0, None)}


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds; smoke test only")
    parser.add_argument("--size", type=int, default=None, help="variables (default 400, quick 40)")
    parser.add_argument("--repeats", type=int, default=None, help="default 7 (quick: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=f"figure path (default {FIGURE})")
    args = parser.parse_args(argv)
    n = args.size or (40 if args.quick else 400)
    repeats = args.repeats or (1 if args.quick else 7)
    problem = random_lp(n, n // 2, np.random.default_rng(args.seed))

    ref = linprog(**problem, method="highs")  # scipy
    lp = solvers.LinearProgram(**problem)  # the same arguments
    backends = [b for b in solvers.available_backends(duals=True) if b != "cvxpy"]
    print(f"scipy linprog: fun={ref.fun:.6f}  status={ref.status}  ({ref.message})")
    timings = {"scipy linprog": median_seconds(lambda: linprog(**problem, method="highs"), repeats)}
    for backend in tqdm(backends, desc="backends", file=sys.stderr):
        sol = solvers.solve(lp, backend=backend)
        gap = abs(sol.objective - ref.fun)
        dual_gap = float(np.max(np.abs(sol.duals_ub - ref.ineqlin.marginals)))
        print(
            f"{backend:>6}: objective={sol.objective:.6f}  |diff|={gap:.1e}  "
            f"max |duals_ub - ineqlin.marginals|={dual_gap:.1e}  {sol.status.name}"
        )
        timings[backend] = median_seconds(lambda b=backend: solvers.solve(lp, backend=b), repeats)

    if args.quick:
        print("quick mode: these numbers are for smoke testing only")
    for name, seconds in timings.items():
        print(f"{name:>14}: {1e3 * seconds:8.2f} ms (median of {repeats})")

    out = args.out or (None if args.quick else FIGURE)
    if out is not None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        names = list(timings)
        ax.barh(names, [1e3 * timings[k] for k in names])
        ax.set(xlabel=f"ms per solve (median of {repeats}, log scale)", xscale="log")
        ax.set_title(f"one LP, {n} variables x {n // 2} rows, seed {args.seed}", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(f"figure written to {out}")
    return timings


if __name__ == "__main__":
    main()
