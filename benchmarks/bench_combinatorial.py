"""Sanity checks and timings of the combinatorial solvers (``solvers.combinatorial``).

* each fast solver against its LP solved by HiGHS (objective and solution vector);
* ``alignment_batch`` on 64 x 100 x 100: numba (all threads), numba (1 thread), numpy;
* ``assignment_batch`` on 256 x 50 x 50 against a bare ``linear_sum_assignment`` loop.

Run: ``python benchmarks/bench_combinatorial.py [--repeats 30]``. Prints wall-clock
medians and minima and the median process CPU time (summed over threads; on a loaded
machine it shows the work done, free of the time spent waiting for a core) in
milliseconds, and the ratios of wall-clock medians; the numba kernels are compiled (or loaded from
the cache) before timing. Variants are timed interleaved, so machine load drifts affect
all of them alike.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import networkx as nx
import numpy as np
from scipy.optimize import linear_sum_assignment

import solvers
from solvers.combinatorial import (
    alignment,
    alignment_batch,
    alignment_lp,
    assignment,
    assignment_batch,
    assignment_lp,
    numba_available,
    shortest_path,
    shortest_path_lp,
)

__all__ = ["main"]


def _interleaved(
    fns: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(wall, process CPU) seconds per call of each function, timed round-robin."""
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            cpu, wall = time.process_time(), time.perf_counter()
            fn()
            times[name][0].append(time.perf_counter() - wall)
            times[name][1].append(time.process_time() - cpu)
    return {name: (np.asarray(w), np.asarray(c)) for name, (w, c) in times.items()}


def _report(
    times: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Print wall-clock median and minimum and the median CPU time (all threads)."""
    wall_medians, cpu_medians = {}, {}
    for name, (wall, cpu) in times.items():
        wall_medians[name] = float(np.median(wall))
        cpu_medians[name] = float(np.median(cpu))
        print(
            f"  {name:<34s} wall median {wall_medians[name] * 1e3:8.3f} ms, "
            f"min {wall.min() * 1e3:8.3f} ms; CPU median {cpu_medians[name] * 1e3:8.3f} ms"
        )
    return wall_medians, cpu_medians


def sanity() -> None:
    """Print each exact solver next to its LP (HiGHS): values and max |x_fast - x_LP|."""
    rng = np.random.default_rng(0)
    print("sanity: fast solver vs its LP solved by HiGHS")
    sub_cost = rng.random((6, 5))
    lp = alignment_lp(sub_cost, 0.5)
    fast, exact = alignment(sub_cost, 0.5), solvers.solve(lp)
    print(
        f"  alignment 6x5, gap 0.5 (V={lp.n_eq}, E={lp.n_vars}): DP {fast.objective:.12f}, "
        f"LP {exact.objective:.12f}, max|dx| {np.abs(fast.x - exact.x).max():.1e}"
    )
    cost = rng.random((4, 7))
    fast, exact = assignment(cost), solvers.solve(assignment_lp(cost))
    print(
        f"  assignment 4x7: Hungarian {fast.objective:.12f}, LP {exact.objective:.12f}, "
        f"max|dx| {np.abs(fast.x - exact.x).max():.1e}"
    )
    fast, exact = assignment(cost, maximize=True), solvers.solve(assignment_lp(cost, maximize=True))
    print(
        f"  assignment 4x7, maximize: Hungarian {fast.objective:.12f}, "
        f"LP {exact.objective:.12f} (the LP minimises -cost)"
    )
    graph = nx.gnp_random_graph(40, 0.15, seed=1, directed=True)
    for u, v in graph.edges:
        graph.edges[u, v]["weight"] = rng.random()
    fast, exact = shortest_path(graph, 0, 39), solvers.solve(shortest_path_lp(graph, 0, 39))
    print(
        f"  shortest path, 40 nodes, {graph.number_of_edges()} edges: Dijkstra "
        f"{fast.objective:.12f}, LP {exact.objective:.12f}, "
        f"max|dx| {np.abs(fast.x - exact.x).max():.1e}"
    )


def bench_alignment(repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    sub_costs = rng.random((64, 100, 100))
    print("alignment_batch, B=64, N=M=100, float64, gap_cost=0.5")
    fns: dict[str, Callable[[], object]] = {
        "numpy engine": lambda: alignment_batch(sub_costs, 0.5, engine="numpy")
    }
    if numba_available():
        import numba

        threads = numba.get_num_threads()
        fns[f"numba, parallel ({threads} threads)"] = lambda: alignment_batch(
            sub_costs, 0.5, engine="numba", parallel=True
        )
        fns["numba, serial (parallel=False)"] = lambda: alignment_batch(
            sub_costs, 0.5, engine="numba", parallel=False
        )
        for fn in fns.values():  # compile / load the cache before timing
            fn()
        reference = alignment_batch(sub_costs, 0.5, engine="numpy")
        for a, b in zip(alignment_batch(sub_costs, 0.5, engine="numba"), reference):
            assert np.array_equal(a, b), "numba and numpy engines disagree"
        print(f"  numba threading layer: {numba.threading_layer()}")
    wall, cpu = _report(_interleaved(fns, repeats))
    for name in wall:
        if name != "numpy engine":
            print(
                f"  speed-up of {name} over numpy: {wall['numpy engine'] / wall[name]:6.1f}x "
                f"(wall), {cpu['numpy engine'] / cpu[name]:6.1f}x (CPU)"
            )
    return wall


def bench_assignment(repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    costs = rng.random((256, 50, 50))
    counts = rng.integers(25, 51, 256)

    def bare_loop() -> None:
        for cost in costs:
            linear_sum_assignment(cost)

    def bare_ragged_loop() -> None:
        for cost, k in zip(costs, counts.tolist()):
            linear_sum_assignment(cost[:k, :k])

    print("assignment_batch, B=256, n=m=50, float64")
    fns: dict[str, Callable[[], object]] = {
        "bare linear_sum_assignment loop": bare_loop,
        "assignment_batch": lambda: assignment_batch(costs),
        "bare loop, ragged sizes 25..50": bare_ragged_loop,
        "assignment_batch, ragged": lambda: assignment_batch(
            costs, row_counts=counts, col_counts=counts
        ),
    }
    wall, cpu = _report(_interleaved(fns, repeats))
    for label, times in (("wall", wall), ("CPU", cpu)):
        full = times["assignment_batch"] / times["bare linear_sum_assignment loop"]
        ragged = times["assignment_batch, ragged"] / times["bare loop, ragged sizes 25..50"]
        print(
            f"  ratio assignment_batch / bare loop ({label}): {full:.3f} full, {ragged:.3f} ragged"
        )
    return wall


def main(argv: list[str] | None = None) -> None:
    """Print the timings; ``argv`` as for the command line (``--repeats N``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per variant")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU cores: {os.cpu_count()}, 1-min load average at start: {load:.2f}")
    sanity()
    bench_alignment(args.repeats)
    bench_assignment(args.repeats)


if __name__ == "__main__":
    main()
