"""The gallery: every tutorial script runs in quick mode and has a docs page with its figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "examples" / "gallery").glob("plot_*.py"))


def test_gallery_has_the_five_tutorials() -> None:
    assert [p.stem for p in SCRIPTS] == [
        "plot_alignment_vs_ctc",
        "plot_lp_layer",
        "plot_matching_bags",
        "plot_shortest_path",
        "plot_solvers_for_scipy_users",
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_gallery_script_runs_quick(script: Path, tmp_path: Path) -> None:
    figure = tmp_path / "figure.png"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(figure)],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "for smoke testing only" in proc.stdout
    assert figure.stat().st_size > 1000  # the plotting code runs too


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_gallery_script_has_a_page_and_a_figure(script: Path) -> None:
    page = ROOT / "docs" / "gallery" / f"{script.stem}.md"
    text = page.read_text()
    assert f'--8<-- "examples/gallery/{script.name}"' in text  # the page shows the script
    figures = [ln.split("](")[1].rstrip(")") for ln in text.splitlines() if ln.startswith("![")]
    assert figures, f"{page} shows no figure"
    for fig in figures:
        assert (page.parent / fig).resolve().is_file(), f"{page}: missing figure {fig}"
    source = script.read_text()
    assert "tqdm" in source and "--quick" in source
    assert str(script.relative_to(ROOT)) in (
        ROOT / "docs" / "gallery" / "index.md"
    ).read_text() or (f"({script.stem}.md)" in (ROOT / "docs" / "gallery" / "index.md").read_text())
