"""The command line: ``python -m solvers solve FILE`` and ``python -m solvers backends``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import solvers
from solvers.cli import EXIT_CODES, main
from solvers.result import Status

UNBOUNDED_LP = """
Minimize
 obj: - x - y
Subject To
 c1: x - y <= 1
End
"""
MAX_LP = """
Maximize
 obj: 3 x + 2 y + 1.5
Subject To
 c1: x + y <= 4
Bounds
 x <= 3
End
"""


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_solve_prints_status_objective_and_time(instances_dir, manifest, capsys):
    code, out, err = run(["solve", str(instances_dir / "afiro.mps")], capsys)
    assert code == 0 and err == ""
    fields = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert fields["status"].strip() == "optimal"
    expected = manifest["instances"]["afiro.mps"]["objective"]
    assert float(fields["objective"]) == pytest.approx(expected, rel=1e-6)
    assert float(fields["solve time"].split()[0]) >= 0
    assert fields["backend"].strip() == "highs"


def test_solve_json_has_every_field(instances_dir, manifest, capsys):
    code, out, err = run(["solve", str(instances_dir / "small_mip.mps"), "--json"], capsys)
    assert code == 0 and err == ""
    record = json.loads(out)
    assert {"status", "objective", "solve_time", "backend", "message", "x"} <= set(record)
    assert record["status"] == "optimal" and record["backend"] == "highs"
    expected = manifest["instances"]["small_mip.mps"]["objective"]
    assert record["objective"] == pytest.approx(expected, rel=1e-6)
    assert len(record["x"]) == 8 and record["solve_time"] >= 0


def test_objective_is_reported_in_the_files_sense(tmp_path, capsys):
    path = tmp_path / "max.lp"
    path.write_text(textwrap.dedent(MAX_LP))
    code, out, _ = run(["solve", str(path), "--json"], capsys)
    record = json.loads(out)
    # max 3x + 2y + 1.5 with x <= 3, x + y <= 4: x = 3, y = 1 -> 12.5 (not -11).
    assert code == 0 and record["sense"] == "maximize"
    assert record["objective"] == pytest.approx(12.5)
    assert record["x"] == pytest.approx([3.0, 1.0])


def test_infeasible_and_unbounded_have_their_own_exit_codes(instances_dir, tmp_path, capsys):
    code, out, _ = run(["solve", str(instances_dir / "galenet.mps"), "--json"], capsys)
    assert code == EXIT_CODES[Status.INFEASIBLE] == 3
    assert json.loads(out)["status"] == "infeasible" and json.loads(out)["x"] is None
    path = tmp_path / "unbounded.lp"
    path.write_text(textwrap.dedent(UNBOUNDED_LP))
    code, out, _ = run(["solve", str(path)], capsys)
    assert code == EXIT_CODES[Status.UNBOUNDED] == 4
    assert "status:     unbounded" in out
    assert len(set(EXIT_CODES.values()) - {1}) == len(EXIT_CODES) - 2  # distinct codes


@pytest.mark.parametrize("name", ["garbage.mps", "garbage.lp", "nan1.mps", "does-not-exist.mps"])
def test_unreadable_file_gives_one_line_and_exit_code_2(instances_dir, name, capsys):
    path = instances_dir / name
    code, out, err = run(["solve", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err
    assert "Traceback" not in err


def test_bad_backend_and_arguments_give_exit_code_2(instances_dir, capsys):
    mip = str(instances_dir / "small_mip.mps")
    code, _, err = run(["solve", mip, "--backend", "glop"], capsys)  # LP-only backend
    assert code == 2 and err.count("\n") == 1 and "integer" in err
    code, _, err = run(["solve", mip, "--backend", "no-such-solver"], capsys)
    assert code == 2 and "unknown backend" in err
    code, _, err = run(["solve", mip, "--time-limit", "-1"], capsys)
    assert code == 2 and "time-limit" in err
    assert run([], capsys)[0] == 2


def test_other_backend_gives_the_same_optimum(instances_dir, manifest, capsys):
    code, out, _ = run(
        ["solve", str(instances_dir / "afiro.mps"), "--backend", "glop", "--json"], capsys
    )
    assert code == 0 and json.loads(out)["backend"] == "glop"
    expected = manifest["instances"]["afiro.mps"]["objective"]
    assert json.loads(out)["objective"] == pytest.approx(expected, rel=1e-6)


def test_help_documents_the_exit_codes(capsys):
    code, out, _ = run(["solve", "--help"], capsys)
    assert code == 0
    for line in ("0  optimal", "2  bad usage", "3  infeasible", "4  unbounded", "6  time limit"):
        assert line in out


def test_backends_lists_every_backend_with_flags(capsys):
    info = solvers.backend_info()
    code, out, _ = run(["backends", "--json"], capsys)
    assert code == 0 and json.loads(out) == json.loads(json.dumps(info))
    code, out, _ = run(["backends"], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split()[:6] == [
        "backend",
        "installed",
        "integer",
        "continuous",
        "duals",
        "exact",
    ]
    rows = {line.split()[0]: line.split()[1:6] for line in lines[1:]}
    assert set(rows) == set(info)
    for name, flags in rows.items():
        expected = [info[name][k] for k in ("installed", "integer", "continuous", "duals", "exact")]
        assert flags == ["yes" if f else "no" for f in expected]


def test_python_dash_m_solvers(instances_dir, manifest):
    # One real subprocess: stdout must be pure JSON (no HiGHS banner), exit code 0.
    out = subprocess.run(
        [sys.executable, "-m", "solvers", "solve", str(instances_dir / "afiro.mps"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    expected = manifest["instances"]["afiro.mps"]["objective"]
    assert record["status"] == "optimal"
    assert record["objective"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["garbage.mps"], 2),
        (["does-not-exist.mps"], 2),
        (["small_mip.mps", "--backend", "glop"], 2),
        (["small_mip.mps", "--backend", "no-such-solver"], 2),
    ],
)
def test_json_errors_are_one_json_object_on_stdout(instances_dir, argv, code, capsys):
    path = str(instances_dir / argv[0])
    got, out, err = run(["solve", path, *argv[1:], "--json"], capsys)
    assert got == code
    record = json.loads(out)  # exactly one JSON document
    assert record["status"] == "error" and record["exit_code"] == code
    assert record["file"] == path and record["objective"] is None and record["x"] is None
    assert record["message"] and "\n" not in record["message"]
    assert err.startswith("error: ")  # the human-readable line stays on stderr


def test_mps_with_inline_comments_is_read_and_solved(instances_dir, capsys):
    code, out, _ = run(["solve", str(instances_dir / "comment.mps"), "--json"], capsys)
    assert code == 0
    record = json.loads(out)
    assert record["status"] == "optimal" and record["objective"] == pytest.approx(-4.0)
