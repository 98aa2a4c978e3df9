"""Fixtures for the solver tests: the vendored instance folder and its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import INSTANCES

MANIFEST_PATH = INSTANCES / "MANIFEST.json"


def read_manifest() -> dict:
    """The instance manifest (for parametrisation at collection time)."""
    return json.loads(MANIFEST_PATH.read_text())


@pytest.fixture(scope="session")
def instances_dir() -> Path:
    """The folder of vendored LP/MILP instances (`tests/data/instances`)."""
    return INSTANCES


@pytest.fixture(scope="session")
def manifest() -> dict:
    """The parsed MANIFEST.json of the vendored instances."""
    return read_manifest()
