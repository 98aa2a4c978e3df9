"""Smoke test of ``python -m benchmarks cvxpy --quick``: it runs, and ours is exact vs FD."""

from __future__ import annotations

import re

from benchmarks import __main__ as bench_main


def test_quick_cvxpy_section_runs_and_reports_exact_gradients(capsys):
    assert bench_main.main(["cvxpy", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "== cvxpy ==" in out
    errors = re.findall(r"(met   |MISSED)  .*: ours gradient rel\. error vs FD ([0-9.e+-]+)", out)
    assert len(errors) == 3  # one line per LP family
    assert all(flag == "met   " and float(err) <= 1e-6 for flag, err in errors)
