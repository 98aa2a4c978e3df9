"""Fixtures for the solver tests: the shared instance folder and its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# tests/solvers/conftest.py -> repository root is parents[2]; shared data sits beside it.
REPO_ROOT = Path(__file__).resolve().parents[2]
INSTANCES = REPO_ROOT.parent / "shared" / "data" / "instances"
MANIFEST_PATH = INSTANCES / "MANIFEST.json"
MISSING_DATA = f"shared test data not found at {INSTANCES} (CI provides ../shared/data)"


def read_manifest() -> dict | None:
    """The instance manifest, or None when the shared data is absent (for parametrisation)."""
    if not MANIFEST_PATH.is_file():
        return None
    return json.loads(MANIFEST_PATH.read_text())


@pytest.fixture(scope="session")
def instances_dir() -> Path:
    """The folder of shared LP/MILP instances; skips the test cleanly when it is absent."""
    if not MANIFEST_PATH.is_file():
        pytest.skip(MISSING_DATA)
    return INSTANCES


@pytest.fixture(scope="session")
def manifest(instances_dir: Path) -> dict:
    """The parsed MANIFEST.json of the shared instances."""
    return json.loads((instances_dir / "MANIFEST.json").read_text())
