"""Command line: `python -m solvers solve FILE` and `python -m solvers backends`.

Also installed as the `combgrad-solve` script. Run with `--help` for usage and
the exit codes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import BackendUnavailableError, CapabilityError, ProblemFileError, SolverError
from .result import Status

__all__ = ["EXIT_CODES", "main"]

#: Exit status of ``solve`` for each outcome; usage errors and unreadable files give 2.
EXIT_CODES: dict[Status, int] = {
    Status.OPTIMAL: 0,
    Status.ERROR: 1,
    Status.NUMERICAL: 1,
    Status.INFEASIBLE: 3,
    Status.UNBOUNDED: 4,
    Status.INFEASIBLE_OR_UNBOUNDED: 5,
    Status.TIME_LIMIT: 6,
}
EXIT_FAILURE = 1
EXIT_USAGE = 2

_EPILOG = """\
exit codes of `solve`:
  0  optimal solution found
  1  the solver failed or hit numerical trouble
  2  bad usage: unreadable or invalid problem file, unknown or unsuitable backend
  3  infeasible
  4  unbounded
  5  infeasible or unbounded (the solver could not tell which)
  6  time limit reached before optimality was proven

The objective is reported in the file's own sense (a maximisation file gives its
maximum) and includes any constant term of the file's objective.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default `sys.argv[1:]`); returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "backends":
        return _backends(args, sys.stdout)
    return _solve(args, sys.stdout)


def _program_name() -> str:
    """`python -m solvers`, or the installed script's name (`combgrad-solve`)."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m solvers" if script in ("", "__main__.py", "-c") else script


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_program_name(),
        description="Solve LP/MILP problem files with any installed backend.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    solve = commands.add_parser(
        "solve",
        help="solve an MPS or LP file",
        description="Solve an MPS or LP file (.mps, .lp, optionally .gz) and print the result.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    solve.add_argument("file", metavar="FILE", help="problem file: .mps, .lp, .mps.gz or .lp.gz")
    solve.add_argument(
        "--backend", default="highs", metavar="NAME", help="backend name (default: highs)"
    )
    solve.add_argument(
        "--time-limit", type=_positive_seconds, default=None, metavar="S", help="seconds"
    )
    solve.add_argument(
        "--json",
        action="store_true",
        help=(
            "print one JSON object: status, objective, solve_time, backend, message, x "
            '(on an error too: status "error", the message and the exit code)'
        ),
    )
    backends = commands.add_parser(
        "backends",
        help="list the backends and their capabilities",
        description="List every backend, whether it is installed, and its capability flags.",
    )
    backends.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _error(message: str) -> None:
    """One line on stderr, never a traceback."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def _fail(args: argparse.Namespace, out: TextIO, message: str, code: int) -> int:
    """Report an error: one line on stderr, and with `--json` also a JSON object on stdout."""
    _error(message)
    if getattr(args, "json", False):
        record = {
            "file": str(args.file),
            "status": "error",
            "objective": None,
            "backend": args.backend,
            "message": " ".join(str(message).split()),
            "exit_code": code,
            "x": None,
        }
        json.dump(record, out)
        out.write("\n")
    return code


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _solve(args: argparse.Namespace, out: TextIO) -> int:
    from . import solve
    from .files import read_model

    try:
        model = read_model(args.file)
    except ProblemFileError as exc:
        return _fail(args, out, str(exc), EXIT_USAGE)
    try:
        solution = solve(model.problem, args.backend, time_limit=args.time_limit)
    except (BackendUnavailableError, CapabilityError) as exc:
        return _fail(args, out, str(exc), EXIT_USAGE)
    except (SolverError, RuntimeError, OSError, ValueError) as exc:
        return _fail(args, out, f"the {args.backend} backend failed: {exc}", EXIT_FAILURE)

    objective = model.file_objective(solution.objective)
    status = solution.status.name.lower()
    if args.json:
        record: dict[str, Any] = {
            "file": str(model.path),
            "status": status,
            "objective": _finite_or_none(objective),
            "solve_time": solution.solve_time,
            "backend": solution.backend,
            "message": solution.message,
            "sense": "maximize" if model.maximize else "minimize",
            "x": None if solution.x is None else [float(v) for v in solution.x],
        }
        json.dump(record, out, allow_nan=False)
        out.write("\n")
    else:
        out.write(f"status:     {status}\n")
        out.write(f"objective:  {objective!r}\n")
        out.write(f"solve time: {solution.solve_time:.3f} s\n")
        out.write(f"backend:    {solution.backend}\n")
        out.write(f"message:    {solution.message}\n")
    return EXIT_CODES.get(solution.status, EXIT_FAILURE)


def _backends(args: argparse.Namespace, out: TextIO) -> int:
    from .registry import backend_info

    info = backend_info()
    if args.json:
        json.dump(info, out, indent=2)
        out.write("\n")
        return 0
    flags = ("installed", "integer", "continuous", "duals", "exact")
    header = ["backend", *flags, "description"]
    rows = [
        [name, *("yes" if entry.get(f) else "no" for f in flags), str(entry.get("description", ""))]
        for name, entry in info.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")
    return 0
