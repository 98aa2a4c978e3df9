"""The `solvers` LP layer: backends, model reuse across cost changes, per-call overhead.

Cases (every ratio is ``ours / reference`` of wall-clock medians from the same run):

1. one netlib LP (``adlittle.mps`` from ``../shared/data/instances``, read with
   `solvers.read`; a generated sparse LP when the file or reader is missing) through
   every installed LP backend, against ``scipy.optimize.linprog(method="highs")``;
2. 256 assignment LPs (10x10 and 50x50, `solvers.assignment_lp`) sharing one
   structure with new costs each: cold (`solvers.solve` per LP) against
   `solvers.Solver` reuse, with and without the HiGHS warm start (and, untargeted,
   with HiGHS presolve off). Target: reuse is never slower than cold, and at least
   1.5x faster on the 10x10 batch;
3. per-call overhead on a 10-variable LP: `solvers.solve` against a bare highspy call
   (construct ``Highs``, ``passModel``, ``run``, ``getSolution``), target within 1.2x;
   and `Solver.solve(c)` against bare ``changeColsCost`` + ``clearSolver`` + ``run``.

Run: ``python -m benchmarks solvers [--quick]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

import solvers

from ._timing import Row, Target, format_table, measure, ratio_row

__all__ = ["main", "run"]

INSTANCES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "instances"


# --------------------------------------------------------------------------- problems
def _generated_lp(n: int = 400, m: int = 200, seed: int = 0) -> solvers.LinearProgram:
    """A feasible, bounded sparse LP: min -r @ x, A x <= 1 with A >= 0 (density 5%), x >= 0."""
    rng = np.random.default_rng(seed)
    A = sp.random_array((m, n), density=0.05, rng=rng, format="csr")
    A = A + sp.csr_array((np.ones(n), (rng.integers(0, m, n), np.arange(n))), shape=(m, n))
    return solvers.LinearProgram(-rng.random(n), A_ub=A, b_ub=np.ones(m))


def netlib_lp(name: str) -> tuple[solvers.LinearProgram, str]:
    """The netlib instance ``name`` via `solvers.read`, or a generated LP when unavailable."""
    path = INSTANCES / name
    read = getattr(solvers, "read", None) if path.exists() else None
    if read is None:
        return _generated_lp(), "generated sparse LP (400 vars, 200 rows)"
    lp = read(path)
    return lp, f"{name} ({lp.n_vars} vars, {lp.n_ub + lp.n_eq} rows)"


def tiny_lp(n: int = 10, seed: int = 0) -> solvers.LinearProgram:
    """A 10-variable LP: min c @ x, A x <= 1 (5 dense rows, A > 0), 0 <= x <= 1."""
    rng = np.random.default_rng(seed)
    return solvers.LinearProgram(
        -rng.random(n), A_ub=rng.random((n // 2, n)), b_ub=np.ones(n // 2), bounds=(0.0, 1.0)
    )


def _linprog(lp: solvers.LinearProgram):
    return linprog(
        lp.c,
        A_ub=lp.A_ub if lp.n_ub else None,
        b_ub=lp.b_ub if lp.n_ub else None,
        A_eq=lp.A_eq if lp.n_eq else None,
        b_eq=lp.b_eq if lp.n_eq else None,
        bounds=lp.bounds,
        method="highs",
    )


# --------------------------------------------------------------------------- cases
def bench_backends(name: str, repeats: int) -> list[Row]:
    """One LP through every installed backend that accepts it, against scipy's linprog."""
    lp, label = netlib_lp(name)
    reference = _linprog(lp)
    if reference.status != 0:
        raise RuntimeError(f"linprog failed on {label}: {reference.message}")
    fns = {"linprog": lambda: _linprog(lp)}
    checks: dict[str, str] = {}
    for backend in solvers.available_backends():
        try:
            sol = solvers.solve(lp, backend)
        except solvers.SolverError:  # e.g. cp-sat: pure integer programs only
            continue
        gap = abs(sol.objective - reference.fun) / (1.0 + abs(reference.fun))
        checks[backend] = f"{sol.status.name}, objective rel. diff {gap:.1e} vs linprog"
        fns[backend] = lambda backend=backend: solvers.solve(lp, backend)
    times = measure(fns, repeats)
    return [
        ratio_row(f"solve {label}, backend={b}", times, b, "linprog", note=checks[b])
        for b in checks
    ]


def bench_reuse(size: int, batch: int, repeats: int) -> list[Row]:
    """``batch`` assignment LPs of one structure: cold solves against `Solver` reuse."""
    rng = np.random.default_rng(size)
    costs = rng.random((batch, size * size))
    structure = solvers.assignment_lp(costs[0].reshape(size, size))

    def cold() -> list[float]:
        return [solvers.solve(structure.with_costs(c)).objective for c in costs]

    def reuse(options: dict | None = None):
        def run_batch() -> list[float]:
            solver = solvers.Solver(structure, options=options)  # built once per batch
            return [solver.solve(c).objective for c in costs]

        return run_batch

    fns = {
        "cold": cold,
        "reuse": reuse(),
        "reuse+warm": reuse({"warm_start": True}),
        # Not a target: the default re-solve already skips presolve; this pins it explicitly.
        "reuse, presolve off": reuse({"presolve": "off"}),
    }
    values = {name: np.asarray(fn()) for name, fn in fns.items()}  # also the warm-up
    for name, v in values.items():
        if not np.allclose(v, values["cold"], rtol=1e-9, atol=1e-9):
            raise RuntimeError(f"{name} disagrees with cold solves on the {size}x{size} batch")
    times = measure(fns, repeats, warmup=0)
    never_slower = Target(1.0, "<= 1 (never slower)")
    reuse_target = Target(1 / 1.5, "<= 0.667 (1.5x faster)") if size == 10 else never_slower
    what = f"{batch} assignment LPs {size}x{size}"
    note = "cold = solvers.solve(structure.with_costs(c)) per LP; reuse = one Solver per batch"
    return [
        ratio_row(f"{what}: Solver reuse", times, "reuse", "cold", reuse_target, note),
        ratio_row(
            f"{what}: Solver reuse, warm_start (opt-in)",
            times,
            "reuse+warm",
            "cold",
            note="options={'warm_start': True} keeps the basis; not the default, because "
            "after all costs change it can be slower than a cold solve (see the 50x50 row)",
        ),
        ratio_row(
            f"{what}: Solver reuse, presolve off",
            times,
            "reuse, presolve off",
            "cold",
            note="options={'presolve': 'off'}: what the default re-solve now does for LPs",
        ),
    ]


def _bare_highs(lp: solvers.LinearProgram):
    """Closures calling highspy directly on ``lp`` (no validation, no result object)."""
    import highspy

    A = sp.vstack([lp.A_ub, lp.A_eq], format="csc")
    start, index = A.indptr.astype(np.int32), A.indices.astype(np.int32)
    row_lower = np.concatenate([np.full(lp.n_ub, -np.inf), lp.b_eq])
    row_upper = np.concatenate([lp.b_ub, lp.b_eq])
    n, m = lp.n_vars, A.shape[0]

    def model() -> highspy.HighsLp:
        h_lp = highspy.HighsLp()
        h_lp.num_col_, h_lp.num_row_ = n, m
        h_lp.col_cost_, h_lp.col_lower_, h_lp.col_upper_ = lp.c, lp.lb, lp.ub
        h_lp.row_lower_, h_lp.row_upper_ = row_lower, row_upper
        h_lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        h_lp.a_matrix_.num_col_, h_lp.a_matrix_.num_row_ = n, m
        h_lp.a_matrix_.start_, h_lp.a_matrix_.index_, h_lp.a_matrix_.value_ = start, index, A.data
        return h_lp

    def new_highs() -> highspy.Highs:
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.passModel(model())
        return h

    def one_shot():
        h = new_highs()
        h.run()
        return h.getSolution()

    kept = new_highs()
    indices = np.arange(n, dtype=np.int32)

    def resolve(c: np.ndarray):
        kept.changeColsCost(n, indices, c)
        kept.clearSolver()
        kept.run()
        return kept.getSolution()

    return one_shot, resolve


def bench_overhead(repeats: int, inner: int) -> list[Row]:
    """Per-call overhead of `solve` and `Solver.solve` on a 10-variable LP."""
    lp = tiny_lp()
    expected = solvers.solve(lp).objective  # first: it silences the HiGHS banner
    one_shot, resolve = _bare_highs(lp)
    rng = np.random.default_rng(1)
    costs = -rng.random((inner, lp.n_vars))
    solver = solvers.Solver(lp)
    for c in costs:  # the two re-solve paths must agree before they are timed
        ours, bare = solver.solve(c), resolve(c)
        if not np.allclose(ours.x, bare.col_value, atol=1e-7):
            raise RuntimeError("Solver.solve(c) and bare highspy disagree on the tiny LP")
    if not np.isclose(lp.c @ np.asarray(one_shot().col_value), expected):
        raise RuntimeError("solvers.solve and bare highspy disagree on the tiny LP")
    position = iter(range(1 << 62))

    def next_cost() -> np.ndarray:
        return costs[next(position) % inner]

    times = measure(
        {
            "solve": lambda: solvers.solve(lp),
            "bare": one_shot,
            "Solver.solve": lambda: solver.solve(next_cost()),
            "bare re-solve": lambda: resolve(next_cost()),
        },
        repeats,
        inner=inner,
    )
    within = Target(1.2, "<= 1.2")
    return [
        ratio_row(
            "solvers.solve, 10-var LP (per call)",
            times,
            "solve",
            "bare",
            within,
            "bare = highspy Highs() + passModel + run + getSolution",
        ),
        ratio_row(
            "Solver.solve(c), 10-var LP (per call)",
            times,
            "Solver.solve",
            "bare re-solve",
            within,
            "bare = changeColsCost + clearSolver + run + getSolution; target by analogy",
        ),
    ]


def run(quick: bool = False, repeats: int | None = None) -> list[Row]:
    """Run every solver case and print its table; returns the rows."""
    if quick:
        reps = repeats or 3
        rows = bench_backends("afiro.mps", reps)
        rows += bench_reuse(4, 8, reps)
        rows += bench_overhead(reps, inner=5)
    else:
        reps = repeats or 15
        rows = bench_backends("adlittle.mps", reps)
        rows += bench_reuse(10, 256, max(3, reps // 2))
        rows += bench_reuse(50, 256, max(1, reps // 5))
        rows += bench_overhead(reps, inner=50)
    print(format_table("== solvers ==", rows))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    """Command-line entry: ``--quick`` for a fast smoke run, ``--repeats N``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per variant")
    args = parser.parse_args(argv)
    return run(args.quick, args.repeats)


if __name__ == "__main__":
    main()
