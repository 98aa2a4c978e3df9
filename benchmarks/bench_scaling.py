"""Scaling curves: time and peak memory against problem size, with fitted exponents.

Three problems, each timed in its own fresh process (so the peak-memory figures start
from the same baseline), sizes in increasing order:

* assignment: one n x n problem, ``solvers.assignment_batch`` (the compiled kernel,
  one thread), n = 10 .. 1000, uniform random costs; the ``lap.lapjv`` time next to it
  when ``lap`` is installed;
* alignment: `AlignmentLoss` forward + backward, 4 sequences, T = L = 10 .. 2000, C = 30;
* the LP layer: `combgrad.functional.lp_value` forward + backward in ``c``, n = 10 ..
  10^4 variables, ``max(5, n / 100)`` dense rows ``A x <= 1`` (A >= 0), ``0 <= x <= 1``.

Peak memory is the peak resident set size (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` before each size) minus the resident size just before the
size's inputs are built: it includes the inputs, and memory the allocator kept from a
smaller size may hide part of a small size's peak. The
exponent is the least-squares slope of log(time) against log(size) over the sizes at or
above ``fit_from`` (the smallest sizes measure per-call overhead, not the algorithm).

Run: ``python -m benchmarks scaling``; writes ``docs/img/performance_scaling.png``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["PROBLEMS", "main", "run"]

PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "performance_scaling.png"

# name -> (sizes, quick sizes, fit_from, theoretical exponent (label), x label)
PROBLEMS = {
    "assignment": (
        [10, 30, 100, 300, 1000],
        [10, 30],
        100,
        "3 (worst case); ~2-2.5 typical",
        "n (n x n)",
    ),
    "alignment": ([10, 30, 100, 300, 1000, 2000], [10, 30], 300, "2 (T * L cells)", "T = L"),
    "lp_layer": ([10, 100, 1000, 10000], [10, 100], 100, "none sharp (simplex)", "n variables"),
}

_WORKER = r"""
import json, sys, time
import numpy as np
import torch

problem, sizes, repeats = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)

def status_mib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024

def reset_peak():  # Linux: VmHWM back to the current resident size
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

if problem == "assignment":
    from solvers.combinatorial import assignment_batch
    try:
        import lap
    except ImportError:
        lap = None
    def setup(n):
        return rng.random((1, n, n))
    def ours(cost):
        assignment_batch(cost, threads=1, return_indices=True)
    def reference(cost):
        if lap is not None:
            lap.lapjv(cost[0])
elif problem == "alignment":
    from combgrad.losses import AlignmentLoss
    loss_fn = AlignmentLoss(gap_cost=2.0, reduction="sum")
    def setup(T):
        lp = torch.log_softmax(torch.randn(4, T, 30), -1).requires_grad_(True)
        return lp, torch.randint(0, 30, (4, T)), torch.full((4,), T)
    def ours(args):
        lp, tg, n = args
        lp.grad = None
        loss_fn(lp, tg, n, n).backward()
    reference = None
else:
    from combgrad.functional import lp_value
    def setup(n):
        m = max(5, n // 100)
        A = torch.from_numpy(rng.random((m, n)))
        c = torch.from_numpy(-rng.random(n)).requires_grad_(True)
        return c, A, torch.ones(m)
    def ours(args):
        c, A, b = args
        c.grad = None
        lp_value(c, A, b, bounds=(0.0, 1.0)).backward()
    reference = None

def timed(fn, args):
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(args); times.append(time.perf_counter() - t)
    return float(np.median(times))

ours(setup(sizes[0]))  # warm-up: compiled kernels, allocator, HiGHS
out = []
for n in sizes:
    reset_peak()
    base = status_mib("VmRSS:")
    args = setup(n)
    ours(args)
    row = {"size": n, "seconds": timed(ours, args), "peak_mib": status_mib("VmHWM:") - base}
    if reference is not None and (problem != "assignment" or lap is not None):
        row["reference_seconds"] = timed(reference, args)
    out.append(row)
    del args
print(json.dumps(out))
"""


def measure_problem(name: str, sizes: list[int], repeats: int) -> list[dict]:
    """Run one problem's sizes in a fresh process; one dict per size."""
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, name, json.dumps(sizes), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def fitted_exponent(rows: list[dict], fit_from: int) -> float:
    """Least-squares slope of log(seconds) against log(size) over sizes >= fit_from."""
    points = [(r["size"], r["seconds"]) for r in rows if r["size"] >= fit_from]
    if len(points) < 2:
        return float("nan")
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in results.items():
        sizes = [r["size"] for r in rows]
        (line,) = ax_t.loglog(sizes, [r["seconds"] * 1e3 for r in rows], "o-", label=name)
        if any("reference_seconds" in r for r in rows):
            ax_t.loglog(
                sizes,
                [r["reference_seconds"] * 1e3 for r in rows],
                "x--",
                color=line.get_color(),
                label=f"{name}: lap.lapjv",
            )
        ax_m.loglog(sizes, [max(r["peak_mib"], 0.01) for r in rows], "o-", label=name)
    ax_t.set(xlabel="problem size", ylabel="median ms per call", title="time")
    ax_m.set(xlabel="problem size", ylabel="peak RSS above baseline, MiB", title="peak memory")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool = False, repeats: int | None = None) -> dict[str, list[dict]]:
    """Measure every problem, print the table and exponents, and (full run) save the plot."""
    reps = repeats or (2 if quick else 5)
    results = {}
    print("== scaling ==")
    for name, (sizes, quick_sizes, fit_from, theory, xlabel) in PROBLEMS.items():
        rows = measure_problem(name, quick_sizes if quick else sizes, reps)
        results[name] = rows
        print(f"{name} ({xlabel}):")
        for r in rows:
            ref = r.get("reference_seconds")
            extra = f", lap.lapjv {ref * 1e3:.3f} ms" if ref is not None else ""
            print(
                f"  size {r['size']:6d}: {r['seconds'] * 1e3:10.3f} ms, "
                f"peak +{r['peak_mib']:8.1f} MiB{extra}"
            )
        exponent = fitted_exponent(rows, fit_from)
        print(f"  fitted time exponent (sizes >= {fit_from}): {exponent:.2f}; theory: {theory}")
    if not quick:
        plot(results, PLOT)
        print(f"plot: {PLOT}")
    return results


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small sizes, no plot")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per size")
    args = parser.parse_args(argv)
    run(args.quick, args.repeats)


if __name__ == "__main__":
    main()
