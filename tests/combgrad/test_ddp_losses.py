"""The losses under DistributedDataParallel: torchrun with 2 gloo processes on CPU.

`examples/ddp_losses.py` runs one step on a global batch split over the ranks; its
gradients must equal those of the same step in a single process on the whole batch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "ddp_losses.py"


def _run(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr[-4000:]}"


@pytest.mark.slow  # three torch start-ups (~15 s on a quiet machine)
def test_ddp_gradients_equal_the_single_process_run(tmp_path):
    single, ddp = tmp_path / "single.pt", tmp_path / "ddp.pt"
    _run([sys.executable, str(SCRIPT), "--grads", str(single)], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    _run([*torchrun, "--nproc_per_node=2", str(SCRIPT), "--grads", str(ddp)], tmp_path)
    expected, got = torch.load(single), torch.load(ddp)
    assert expected.keys() == got.keys()
    for name in expected:
        assert expected[name].abs().max() > 0, name  # the check is not vacuous
        torch.testing.assert_close(got[name], expected[name], rtol=1e-12, atol=1e-14)
