"""Shared fixtures: the vendored test data, and installed backends."""

from __future__ import annotations

import json
from pathlib import Path

import solvers

REPO_ROOT = Path(__file__).resolve().parents[1]
# Vendored into the repository (see tests/data/README.md): tests never read outside it.
TEST_DATA = REPO_ROOT / "tests" / "data"
INSTANCES = TEST_DATA / "instances"

LP_BACKENDS = solvers.available_backends(duals=True)
MILP_BACKENDS = solvers.available_backends(integer=True)


def load_manifest() -> dict:
    """The instance manifest of `tests/data/instances`."""
    return json.loads((INSTANCES / "MANIFEST.json").read_text())
