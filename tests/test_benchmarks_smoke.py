"""Smoke test of the benchmark suite: ``python -m benchmarks --quick`` runs and prints ratios.

No timing is asserted (machines are shared and noisy); the checks are that every section
runs end to end at tiny sizes, that its table has a numeric ratio on every row, that the
correctness checks printed next to the timings agree, and that the timing helpers compute
what they claim.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from benchmarks import __main__ as bench_main
from benchmarks._timing import Row, Target, Timing, format_table, measure

_NUMBER = r"\d+\.\d{3}|\d\.\de[+-]\d\d"  # 0.123, or 1.2e-04 for tiny ratios
RATIO = re.compile(rf"\s({_NUMBER})\s+({_NUMBER}|-)\s")


def _table_rows(text: str, title: str) -> list[str]:
    """The data lines of the table titled ``title``."""
    lines = text.splitlines()
    start = lines.index(title) + 3  # title, header, dashes
    rows = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("notes:") or line.startswith("("):
            break
        rows.append(line)
    return rows


def test_timing_helpers_compute_medians_ratios_and_targets():
    calls = {"a": 0, "b": 0}

    def work(name):
        def fn():
            calls[name] += 1

        return fn

    times = measure({"a": work("a"), "b": work("b")}, repeats=5, warmup=2, inner=3)
    assert calls == {"a": 2 + 5 * 3, "b": 2 + 5 * 3}
    assert times["a"].wall.shape == (5,) and times["a"].cpu.shape == (5,)

    ours = Timing(np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 1.0]))
    ref = Timing(np.array([4.0, 4.0, 5.0]), np.array([2.0, 2.0, 2.0]))
    assert ours.median == 2.0 and ref.median == 4.0
    assert ours.scaled(8).median == 16.0 and ours.scaled(8).cpu_median == 8.0
    row = Row("case", ours, "ref", ref, Target(0.5, "<= 0.5"))
    assert row.ratio == 0.5 and row.cpu_ratio == 0.5 and row.met is True
    assert Row("case", ours, "ref", ref, Target(0.49, "x")).met is False
    assert Row("case", ours, "none", None).met is None and math.isnan(
        Row("case", ours, "none", None).ratio
    )
    table = format_table("== t ==", [row])
    line = _table_rows(table, "== t ==")[0]
    assert "2000.0" in line and "4000.0" in line and "0.500" in line and line.endswith("yes")
    tiny = Row("tiny", ours, "slow", ref.scaled(1000))
    match = RATIO.search(_table_rows(format_table("== u ==", [tiny]), "== u ==")[0])
    assert match and float(match.group(1)) == pytest.approx(5e-4)


@pytest.mark.parametrize("section", ["solvers", "losses"])
def test_quick_section_prints_ratio_table(section, capsys):
    assert bench_main.main([section, "--quick"]) == 0
    out = capsys.readouterr().out
    title = f"== {section} =="
    rows = _table_rows(out, title)
    assert len(rows) >= 5
    for line in rows:
        match = RATIO.search(line)
        assert match, f"no ratio in row: {line!r}"
        assert float(match.group(1)) > 0
        assert re.search(r"\s(yes|NO|-)( \(cpu: (yes|no)\))?$", line), line
    assert "DIFFER" not in out  # the exact loss agrees with the bare solver it is timed against
    summary = out[out.index("== targets ==") :]
    assert re.search(r"\d+ of \d+ targets met", summary)
    # Each targeted row appears in the summary, met or missed.
    assert summary.count("met   ") + summary.count("MISSED") >= 1
    if section == "solvers":  # every backend reached linprog's optimum on the netlib LP
        diffs = re.findall(r"objective rel\. diff ([0-9.e+-]+) vs linprog", out)
        assert diffs and max(float(d) for d in diffs) < 1e-6


def test_combinatorial_section_calls_the_other_benchmark(monkeypatch, capsys):
    from benchmarks import bench_combinatorial

    seen = []
    monkeypatch.setattr(bench_combinatorial, "main", lambda argv=None: seen.append(argv))
    assert bench_main.main(["combinatorial", "--quick"]) == 0
    assert seen == [["--repeats", "2"]]
    out = capsys.readouterr().out
    assert "== combinatorial ==" in out and "no targeted rows" in out


def test_unknown_section_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        bench_main.main(["nonsense"])
    assert info.value.code == 2
    assert "unknown section" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_dfl_section_prints_both_libraries(capsys):
    pytest.importorskip(
        "pyepo", reason="pyepo is a bench extra (pip install '.[bench]'), not a test dependency"
    )
    assert bench_main.main(["dfl", "--quick"]) == 0
    out = capsys.readouterr().out
    for problem in ("shortest path", "knapsack"):
        table = _table_rows(out, f"== dfl: {problem} ==")
        rows = [r for r in table if not r.startswith("time over")]
        assert len(table) == len(rows) + 1  # the line comparing time over the two-stage floor
        assert len(rows) == 7  # two-stage, then PyEPO and combgrad for SPO+, PFYL and DBB
        for method in ("SPO+", "PFYL", "DBB"):
            for lib in ("pyepo", "combgrad"):
                line = next(r for r in rows if r.split()[0] == method and r.split()[1] == lib)
                regret = float(line.split()[2])
                assert 0.0 <= regret < 10.0, line
                if lib == "combgrad":
                    assert re.search(r"\s\d+\.\d{3}\s+(met|MISSED)", line), line
    summary = out[out.index("== targets ==") :]
    assert summary.count("dfl shortest path") == 3  # a speed target per method


def test_cuda_section_runs_its_cases_and_skips_without_a_gpu(capsys):
    import torch

    from benchmarks import bench_cuda

    # The device path is the CPU here (CI has no GPU): every case runs, with its ratio.
    rows = bench_cuda.run(quick=True, device="cpu")
    assert len(rows) == 4 and all(math.isfinite(r.ratio) for r in rows)
    assert "== cuda == cpu" in capsys.readouterr().out
    if not torch.cuda.is_available():
        assert bench_cuda.run(quick=True) == []
        assert "no CUDA device: skipped" in capsys.readouterr().out
