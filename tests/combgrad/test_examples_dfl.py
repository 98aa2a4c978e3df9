"""examples/dfl_shortest_path.py: the PyEPO-style data generator and the quick run end to end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ex = load_example("dfl_shortest_path")


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_data_follow_the_gendata_formula():
    feats, costs = ex.shortest_path_data(50, 5, (5, 5), deg=1, noise_width=0.0, seed=3)
    assert feats.shape == (50, 5) and costs.shape == (50, 40) and costs.dtype == np.float32
    again = ex.shortest_path_data(50, 5, (5, 5), deg=1, noise_width=0.0, seed=3)
    np.testing.assert_array_equal(costs, again[1])
    # deg 1, no noise: c = (x B^T / sqrt(5) + 4) / 3.5 with a 0/1 matrix B: solve for B
    mapping, *_ = np.linalg.lstsq(feats / np.sqrt(5), costs * 3.5 - 4.0, rcond=None)
    np.testing.assert_allclose(mapping, np.round(mapping), atol=1e-4)
    assert set(np.round(mapping).ravel()) <= {0.0, 1.0}
    _, noisy = ex.shortest_path_data(2000, 5, (5, 5), deg=4, noise_width=0.5, seed=0)
    assert noisy.min() > 0


def test_data_equal_pyepo_genData_when_installed():
    pyepo_data = pytest.importorskip("pyepo.data", reason="pyepo is a bench extra")
    ours = ex.shortest_path_data(100, 5, (5, 5), deg=4, noise_width=0.5, seed=1)
    theirs = pyepo_data.shortestpath.genData(100, 5, (5, 5), deg=4, noise_width=0.5, seed=1)
    np.testing.assert_allclose(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1])


@pytest.mark.slow
def test_quick_run_trains_every_method_and_decision_focused_ones_improve():
    results = ex.main(["--quick"])
    assert set(results) == {f"{m}/{k}" for m in ex.MODELS for k in ex.METHODS}
    for row in results.values():
        assert np.isfinite(row["regret"]).all() and min(row["regret"]) >= 0
        assert min(row["s_per_epoch"]) > 0
    for key in ("linear/spo+", "linear/pfyl", "mlp/spo+"):
        assert results[key]["regret"][0] < 0.5 * results[key]["untrained_regret"][0], key
