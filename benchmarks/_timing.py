"""Shared timing helpers: interleaved medians, ratios against a reference, result tables.

Machines running the benchmarks are shared and noisy, so every case is timed the same way:

* one or more warm-up calls first (imports, numba caches, allocator, HiGHS thread pool);
* then the variants of one comparison are timed *round-robin* (``a, b, c, a, b, c, ...``),
  so a load spike slows all of them alike instead of one;
* the figure reported is the median over the repeats, and comparisons are quoted as
  ratios ``ours / reference`` of medians measured in the same run;
* process CPU time (all threads) is recorded next to wall time: on an overloaded
  machine the CPU-time ratio is the steadier of the two.

Targets are stated as an upper bound on the ratio and printed with a yes/no; they are
never asserted (a benchmark reports, it does not fail).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["Row", "Target", "Timing", "format_table", "measure", "per_call", "ratio_row"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one variant: wall-clock and process CPU time, one entry per repeat."""

    wall: np.ndarray
    cpu: np.ndarray
    scale: float = 1.0  # multiply to extrapolate (e.g. 256 / 4 when 4 of 256 items were timed)

    @property
    def median(self) -> float:
        """Median wall-clock seconds, times `scale`."""
        return float(np.median(self.wall)) * self.scale

    @property
    def cpu_median(self) -> float:
        """Median process CPU seconds (summed over threads), times `scale`."""
        return float(np.median(self.cpu)) * self.scale

    def scaled(self, factor: float) -> Timing:
        """The same samples, reported for ``factor`` times the work (an extrapolation)."""
        return Timing(self.wall, self.cpu, self.scale * factor)


def measure(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    *,
    warmup: int = 1,
    inner: int = 1,
) -> dict[str, Timing]:
    """Time each function ``repeats`` times, round-robin, after ``warmup`` untimed calls each.

    Args:
        fns: variant name -> zero-argument callable doing one unit of work.
        repeats: timed samples per variant (the median is taken over these).
        warmup: untimed calls of each variant before timing.
        inner: calls per sample; the sample is divided by ``inner`` (for sub-millisecond
            work, where one call is too short to time reliably).

    Returns:
        variant name -> `Timing` in seconds per call.
    """
    if repeats < 1 or inner < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats}, inner={inner} must be >= 1, warmup={warmup} >= 0.")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(inner):
                fn()
            wall[name].append((time.perf_counter() - w0) / inner)
            cpu[name].append((time.process_time() - c0) / inner)
    return {name: Timing(np.asarray(wall[name]), np.asarray(cpu[name])) for name in fns}


def per_call(fn: Callable[[], object], repeats: int, inner: int, warmup: int = 1) -> Timing:
    """`measure` for a single function."""
    return measure({"f": fn}, repeats, warmup=warmup, inner=inner)["f"]


@dataclass(frozen=True)
class Target:
    """An upper bound on ``ours / reference`` (wall-clock medians), with how it reads."""

    max_ratio: float
    label: str

    def met(self, ratio: float) -> bool:
        return math.isfinite(ratio) and ratio <= self.max_ratio


@dataclass(frozen=True)
class Row:
    """One line of a results table."""

    case: str
    ours: Timing
    reference_name: str
    reference: Timing | None
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.reference is None or self.reference.median == 0:
            return math.nan
        return self.ours.median / self.reference.median

    @property
    def cpu_ratio(self) -> float:
        if self.reference is None or self.reference.cpu_median == 0:
            return math.nan
        return self.ours.cpu_median / self.reference.cpu_median

    @property
    def met(self) -> bool | None:
        """Whether the wall-clock ratio meets the target (None when there is no target)."""
        return None if self.target is None else self.target.met(self.ratio)

    @property
    def met_label(self) -> str:
        """``yes``/``NO``, plus what the CPU-time ratio says when it disagrees."""
        if self.target is None:
            return "-"
        label = "yes" if self.met else "NO"
        cpu_met = self.target.met(self.cpu_ratio)
        if cpu_met != self.met and math.isfinite(self.cpu_ratio):
            label += f" (cpu: {'yes' if cpu_met else 'no'})"
        return label


def ratio_row(
    case: str,
    times: dict[str, Timing],
    ours: str,
    reference: str,
    target: Target | None = None,
    note: str = "",
) -> Row:
    """A `Row` comparing two entries of a `measure` result."""
    return Row(case, times[ours], reference, times[reference], target, note)


def _ms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    ms = seconds * 1e3
    return f"{ms:.4f}" if ms < 0.1 else f"{ms:.3f}" if ms < 100 else f"{ms:.1f}"


def _ratio(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.3f}" if value >= 0.01 else f"{value:.1e}"  # keep tiny ratios readable


def format_table(title: str, rows: Iterable[Row]) -> str:
    """A fixed-width text table: case, medians, ratio ours/reference, CPU ratio, target, met.

    ``met`` judges the wall-clock ratio; when the CPU-time ratio would judge otherwise
    it is added in brackets (under heavy load the CPU ratio is the steadier one).
    """
    rows = list(rows)
    header = (
        "case",
        "median ms",
        "reference",
        "ref median ms",
        "ratio",
        "cpu ratio",
        "target",
        "met",
    )
    lines = []
    for r in rows:
        ref_ms = _ms(r.reference.median) if r.reference is not None else "-"
        lines.append(
            (
                r.case,
                _ms(r.ours.median),
                r.reference_name,
                ref_ms,
                _ratio(r.ratio),
                _ratio(r.cpu_ratio),
                r.target.label if r.target is not None else "-",
                r.met_label,
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    right = {1, 3, 4, 5}

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [title, fmt(header), fmt(tuple("-" * w for w in widths))]
    out += [fmt(line) for line in lines]
    notes = [f"  - {r.case}: {r.note}" for r in rows if r.note]
    if notes:
        out.append("notes:")
        out += notes
    return "\n".join(out)
