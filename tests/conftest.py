"""Shared fixtures: locations of the shared test data, and installed backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import solvers

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
INSTANCES = SHARED_DATA / "instances"

LP_BACKENDS = solvers.available_backends(duals=True)
MILP_BACKENDS = solvers.available_backends(integer=True)


def load_manifest() -> dict:
    """The instance manifest, or a clean skip when the shared data is absent."""
    path = INSTANCES / "MANIFEST.json"
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (CI provides ../shared/data)")
    return json.loads(path.read_text())
