"""Run the benchmark sections: ``python -m benchmarks [SECTION ...] [--quick] [--repeats N]``.

Sections: ``solvers`` (LP layer), ``losses`` (exact losses against references),
``combinatorial`` (the fast exact solvers; ``benchmarks/bench_combinatorial.py``),
``dfl`` (decision-focused learning side by side with PyEPO; needs the ``bench`` extra),
``cvxpy`` (`CvxpyLayer` against cvxpylayers; ``benchmarks/bench_cvxpy_layer.py``),
``cuda`` (the losses with CUDA inputs against the CPU; skipped without a GPU;
``benchmarks/bench_cuda.py``) and ``scaling`` (time and memory against size;
``benchmarks/bench_scaling.py``). With no section named, all run in that order. ``--quick`` runs tiny sizes with few repeats (a
smoke run, numbers meaningless). A summary of every targeted row closes the output.
"""

from __future__ import annotations

# No OMP_WAIT_POLICY or other setting here: the targets hold in a user's default
# environment (the library's kernels run on Python threads that sleep when idle and
# keep their work out of torch's OpenMP regions; see docs/performance.md).
import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable

from ._timing import Row

__all__ = ["SECTIONS", "main"]


def _solvers(quick: bool, repeats: int | None) -> list[Row]:
    from . import bench_solvers

    return bench_solvers.run(quick, repeats)


def _losses(quick: bool, repeats: int | None) -> list[Row]:
    from . import bench_losses

    return bench_losses.run(quick, repeats)


def _combinatorial(quick: bool, repeats: int | None) -> list[Row]:
    # Written separately; it prints its own medians and ratios and takes only --repeats
    # (its problem sizes are fixed, so --quick only cuts the repeats).
    from . import bench_combinatorial

    print("== combinatorial ==")
    bench_combinatorial.main(["--repeats", str(repeats or (2 if quick else 30))])
    return []


def _dfl(quick: bool, repeats: int | None) -> list[Row]:
    from . import bench_dfl

    return bench_dfl.run(quick, repeats)


def _cvxpy(quick: bool, repeats: int | None) -> list[Row]:
    from . import bench_cvxpy_layer

    return bench_cvxpy_layer.run(quick, repeats)


def _cuda(quick: bool, repeats: int | None) -> list[Row]:
    from . import bench_cuda

    return bench_cuda.run(quick, repeats)


def _scaling(quick: bool, repeats: int | None) -> list[Row]:
    # Curves, not targets: it prints its table and fitted exponents and saves the plot.
    from . import bench_scaling

    bench_scaling.run(quick, repeats)
    return []


SECTIONS: dict[str, Callable[[bool, int | None], list[Row]]] = {
    "solvers": _solvers,
    "losses": _losses,
    "combinatorial": _combinatorial,
    "dfl": _dfl,
    "cvxpy": _cvxpy,
    "cuda": _cuda,
    "scaling": _scaling,
}


def _header() -> str:
    import numpy
    import scipy
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"combgrad benchmarks, {now}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, 1-min load average {load:.2f}\n"
        f"python {platform.python_version()}, numpy {numpy.__version__}, scipy "
        f"{scipy.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}\n"
        "median of interleaved repeats after warm-up; ratio = ours / reference (below 1: "
        "ours faster); cpu ratio = the same with process CPU time"
    )


def summary(rows: list[Row]) -> str:
    """One line per row that has a target, and the count met (judged on wall-clock time)."""
    targeted = [r for r in rows if r.target is not None]
    lines = ["== targets =="]
    for r in targeted:
        lines.append(
            f"  {'met   ' if r.met else 'MISSED'}  {r.case} vs {r.reference_name}: "
            f"ratio {r.ratio:.3f}, cpu ratio {r.cpu_ratio:.3f} (target {r.target.label}: "
            f"{r.met_label})"
        )
    if targeted:
        lines.append(f"  {sum(bool(r.met) for r in targeted)} of {len(targeted)} targets met")
    else:
        lines.append("  (no targeted rows in the sections run)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the sections, print the summary."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"any of {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per variant")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be a positive integer; got {args.repeats}")
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    chosen = args.sections or list(SECTIONS)
    print(_header(), flush=True)
    rows: list[Row] = []
    for name in chosen:
        start = time.perf_counter()
        rows += SECTIONS[name](args.quick, args.repeats)
        print(f"({name}: {time.perf_counter() - start:.1f} s)\n", flush=True)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
