"""solve_batch(workers=N) run from a plain script: works under a `__main__` guard, and without
one fails at once with a one-line error that says what to add (never a batch of ERRORs)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BODY = """
import numpy as np
import solvers

lp = solvers.LinearProgram(c=[-1.0, -2.0], A_ub=[[1.0, 1.0]], b_ub=[4.0], bounds=(0, 3))
costs = np.array([[-1.0, -2.0], [-3.0, 1.0], [1.0, 1.0], [-1.0, -1.5]])
sols = solvers.solve_batch(costs, structure=lp, workers=2)
print([round(s.objective, 9) for s in sols])
"""


def _run(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    script = tmp_path / "batch_script.py"
    script.write_text(source)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_workers_from_a_script(tmp_path):
    guarded = "if __name__ == '__main__':\n" + textwrap.indent(BODY, "    ")
    ok = _run(tmp_path, guarded)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip() == "[-7.0, -9.0, 0.0, -5.5]"

    unguarded = _run(tmp_path, BODY)
    assert unguarded.returncode != 0
    last_line = unguarded.stderr.strip().splitlines()[-1]
    assert last_line == (
        "RuntimeError: solve_batch(workers=2): the worker processes died at start-up; they "
        're-import the calling script, so put the call under `if __name__ == "__main__":`.'
    )
    assert "ERROR" not in unguarded.stdout
