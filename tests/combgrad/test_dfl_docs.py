"""docs/dfl.md: every Python block runs as copied, and the method table names every method."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "dfl.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_code_the_table_and_the_pyepo_section():
    text = DOC.read_text()
    assert BLOCKS
    for name in ("perturbed(", "blackbox(", "imle(", "nid(", "SPOPlusLoss(", "FenchelYoungLoss("):
        assert name in text, name
    assert "NCELoss(" in text and "regret(" in text
    assert "## Sign convention" in text and "## Side by side with PyEPO" in text


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_block_runs_as_copied(index, tmp_path):
    script = tmp_path / "block.py"
    script.write_text(BLOCKS[index])
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    if index == 0:  # the quick start: training lowers the regret
        before, after = (float(line.split()[-1]) for line in out.stdout.splitlines()[:2])
        assert after < 0.5 * before


def _docstring_blocks():
    import combgrad.argmin as argmin
    import combgrad.losses as losses
    import combgrad.metrics as metrics

    objects = [
        argmin.perturbed,
        argmin.blackbox,
        argmin.imle,
        argmin.nid,
        losses.SPOPlusLoss,
        losses.spo_plus_loss,
        losses.FenchelYoungLoss,
        losses.fenchel_young_loss,
        losses.NCELoss,
        losses.nce_loss,
        metrics.regret,
    ]
    for obj in objects:
        for k, block in enumerate(re.findall(r"```python\n(.*?)```", obj.__doc__ or "", re.S)):
            yield pytest.param(block, id=f"{obj.__name__}-{k}")


@pytest.mark.parametrize("block", list(_docstring_blocks()))
def test_docstring_examples_run(block):
    import textwrap

    exec(compile(textwrap.dedent(block), "<docstring>", "exec"), {})
