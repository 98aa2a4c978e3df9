"""Dependencies point one way: combgrad -> solvers, never back; combgrad.optim needs only torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def test_import_solvers_loads_neither_torch_nor_combgrad_nor_backends():
    loaded = _modules_after("import solvers")
    for forbidden in ("torch", "combgrad", "highspy", "ortools", "cvxpy"):
        assert forbidden not in loaded, f"`import solvers` imported {forbidden}"


def test_solving_with_solvers_does_not_import_torch():
    loaded = _modules_after(
        "import solvers\nsolvers.solve(solvers.LinearProgram([1.0], A_ub=[[1.0]], b_ub=[1.0]))"
    )
    assert "torch" not in loaded and "combgrad" not in loaded


@pytest.mark.parametrize(
    "module", ["combgrad.optim.sgld", "combgrad.optim.hadam", "combgrad.optim.ogd"]
)
def test_optimizers_do_not_import_solvers(module):
    loaded = _modules_after(f"import {module}")
    assert "solvers" not in loaded, f"{module} imported solvers"


def test_distributed_does_not_import_solvers():
    loaded = _modules_after("import combgrad.distributed")
    assert "solvers" not in loaded


@pytest.mark.parametrize("subpackage", ["oracles", "combinatorial"])
def test_from_solvers_import_subpackage_gives_that_subpackage(subpackage):
    loaded = _modules_after(f"from solvers import {subpackage} as m\nprint(m.__name__)")
    assert f"solvers.{subpackage}" in loaded
    if subpackage == "oracles":
        assert "torch" not in loaded
