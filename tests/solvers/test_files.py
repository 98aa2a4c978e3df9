"""solvers.files: MPS/LP reading and writing through HiGHS, checked against known optima,
hand-built files, round trips, and mutated files."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solvers
from solvers import LinearProgram, ProblemFileError, Status
from solvers.files import ModelFile, read, read_model, write

from .conftest import read_manifest

MANIFEST = read_manifest()


def _manifest_params(section: str) -> list:
    return sorted(MANIFEST[section])


def assert_same_problem(p: LinearProgram, q: LinearProgram) -> None:
    """Exact equality of two problems (LinearProgram compares by identity)."""
    np.testing.assert_array_equal(q.c, p.c)
    np.testing.assert_array_equal(q.bounds, p.bounds)
    np.testing.assert_array_equal(q.integrality, p.integrality)
    for name in ("A_ub", "A_eq"):
        a, b = getattr(p, name), getattr(q, name)
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(b.toarray(), a.toarray(), err_msg=name)
    np.testing.assert_array_equal(q.b_ub, p.b_ub)
    np.testing.assert_array_equal(q.b_eq, p.b_eq)


def assert_clear_error(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert str(path) in message, message
    assert "\n" not in message, message
    return message


def write_text(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# -- the vendored instances ---------------------------------------------------------------


@pytest.mark.parametrize("name", _manifest_params("instances"))
def test_instance_reads_and_solves_to_the_published_optimum(name, instances_dir, manifest):
    spec = manifest["instances"][name]
    tol = manifest["tolerance"]
    problem = read(instances_dir / name)
    assert problem.is_mip == (spec["kind"] == "mip")
    sol = solvers.solve(problem, "highs")
    if spec["status"] == "optimal":
        assert sol.status is Status.OPTIMAL, sol.message
        expected = spec["objective"]
        assert abs(sol.objective - expected) <= tol["absolute"] + tol["relative"] * abs(expected)
        assert problem.residuals(sol.x) <= 1e-6 * (1 + np.abs(problem.b_ub).max(initial=1))
    else:
        assert spec["status"] == "infeasible"
        assert sol.status is Status.INFEASIBLE, sol.message


@pytest.mark.parametrize("name", _manifest_params("bad_input"))
def test_bad_input_is_rejected_clearly_or_read_correctly(name, instances_dir):
    path = instances_dir / name
    if name == "comment.mps":
        # Either read correctly (optimum -4) or fail clearly: never a wrong answer.
        try:
            problem = read(path)
        except ProblemFileError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        else:
            sol = solvers.solve(problem)
            assert sol.status is Status.OPTIMAL and sol.objective == pytest.approx(-4.0)
        return
    with pytest.raises(ProblemFileError) as excinfo:
        read(path)
    message = assert_clear_error(excinfo, path)
    if name.startswith("nan"):
        assert "nan" in message.lower()


def test_names_that_look_like_section_keywords_are_kept(instances_dir):
    # silly-names.mps has columns called OBJSENSE, RANGES and RHS. HiGHS's own reader
    # drops every column from the OBJSENSE line on; `read` must keep all five.
    problem = read(instances_dir / "silly-names.mps")
    assert problem.n_vars == 5
    np.testing.assert_array_equal(problem.c, -np.ones(5))
    np.testing.assert_array_equal(problem.A_ub.toarray(), np.ones((1, 5)))


def test_gzipped_instance_reads_like_the_plain_file(instances_dir, tmp_path):
    plain = instances_dir / "afiro.mps"
    packed = tmp_path / "afiro.mps.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert_same_problem(read(plain), read(packed))


# -- hand-built files: every row and bound kind, sense, offset, names --------------------------

RANGES_MPS = """
NAME          RANGES
ROWS
 N  COST
 L  LIM1
 G  LIM2
 E  MYEQN
 L  RNG
 N  FREE
COLUMNS
    X1        COST         1.0   LIM1         1.0
    X1        LIM2         1.0   FREE         9.0
    X2        COST         2.0   LIM1         1.0
    X2        MYEQN       -1.0   RNG          3.0
    X3        COST        -1.0   MYEQN        1.0
RHS
    RHS       LIM1         4.0   LIM2         1.0
    RHS       MYEQN        7.0   RNG          6.0
RANGES
    RNG       RNG          2.5
BOUNDS
 UP BND       X1           4.0
 MI BND       X2
 UP BND       X2           1.0
 LO BND       X3          -2.0
 UP BND       X3           8.0
ENDATA
"""


def test_rows_and_bounds_map_to_the_standard_form(tmp_path):
    problem = read(write_text(tmp_path, "ranges.mps", RANGES_MPS))
    # LIM1: x1 + x2 <= 4; LIM2: x1 >= 1 -> -x1 <= -1; RNG (L, range 2.5): 3.5 <= 3 x2 <= 6
    # -> 3 x2 <= 6 then -3 x2 <= -3.5; MYEQN: -x2 + x3 == 7; the free row FREE is dropped.
    np.testing.assert_array_equal(
        problem.A_ub.toarray(), [[1, 1, 0], [-1, 0, 0], [0, 3, 0], [0, -3, 0]]
    )
    np.testing.assert_array_equal(problem.b_ub, [4, -1, 6, -3.5])
    np.testing.assert_array_equal(problem.A_eq.toarray(), [[0, -1, 1]])
    np.testing.assert_array_equal(problem.b_eq, [7])
    np.testing.assert_array_equal(problem.c, [1, 2, -1])
    np.testing.assert_array_equal(problem.bounds, [[0, 4], [-np.inf, 1], [-2, 8]])
    assert not problem.is_mip
    # min x1 + 2 x2 - x3 with x3 = 7 + x2, x2 in [3.5/3, 1] is empty -> infeasible.
    assert solvers.solve(problem).status is Status.INFEASIBLE


MAX_LP = """
\\ a maximisation with a constant term
Maximize
 obj: 3 x + 2 y + 1.5
Subject To
 c1: x + y <= 4
 c2: x + 3 y <= 6
 c3: x - y >= -10
Bounds
 x <= 3
General
 y
End
"""


def test_maximisation_is_negated_and_the_offset_kept(tmp_path):
    path = write_text(tmp_path, "max.lp", MAX_LP)
    model = read_model(path)
    assert isinstance(model, ModelFile) and model.path == path
    assert model.maximize and model.offset == 1.5
    assert model.col_names == ("x", "y")
    np.testing.assert_array_equal(model.problem.c, [-3, -2])
    np.testing.assert_array_equal(model.problem.integrality, [0, 1])
    sol = solvers.solve(model.problem)
    # max 3x + 2y + 1.5 on x <= 3, x + y <= 4, y integer: x = 3, y = 1 -> 12.5.
    np.testing.assert_allclose(sol.x, [3, 1], atol=1e-9)
    assert sol.objective == pytest.approx(-11.0)
    assert model.file_objective(sol.objective) == pytest.approx(12.5)
    assert model.file_objective(np.inf) == -np.inf  # an infeasible maximisation
    # `read` cannot represent the constant, so it refuses instead of dropping it.
    with pytest.raises(ProblemFileError, match="constant term") as excinfo:
        read(path)
    assert_clear_error(excinfo, path)


def test_maximisation_without_offset_reads_with_negated_costs(tmp_path):
    path = write_text(tmp_path, "max.lp", MAX_LP.replace(" + 1.5", ""))
    problem = read(path)
    np.testing.assert_array_equal(problem.c, [-3, -2])
    assert solvers.solve(problem).objective == pytest.approx(-11.0)


@pytest.mark.parametrize(
    ("text", "name", "reason"),
    [
        (
            RANGES_MPS.replace(" UP BND       X1           4.0", " SC BND       X1           4.0"),
            "sc.mps",
            "SemiContinuous",
        ),
        (MAX_LP.replace("General\n y\n", "Semi-continuous\n x\n"), "sc.lp", "SemiContinuous"),
        (MAX_LP.replace("3 x + 2 y + 1.5", "3 x + 2 y + [ x^2 ] / 2"), "q.lp", "quadratic"),
        (
            RANGES_MPS.replace("ENDATA", "QUADOBJ\n    X1        X1           1.0\nENDATA"),
            "q.mps",
            "quadratic",
        ),
        (MAX_LP.replace("General\n y\n", "SOS\n s1: S1:: x:1 y:2\n"), "sos.lp", "SOS"),
        (
            RANGES_MPS.replace("X3        COST        -1.0", "X3        COST        1e30"),
            "infcost.mps",
            "infinite",
        ),
        (
            RANGES_MPS.replace("LO BND       X3          -2.0", "LO BND       X3           9.0"),
            "lbub.mps",
            "above its upper bound",
        ),
        (
            RANGES_MPS.replace("X1        LIM2         1.0", "X1        LIM2        -nan"),
            "nan.mps",
            "NaN",
        ),
        (
            RANGES_MPS.replace("LO BND       X3          -2.0", "LO BND       X3          nan"),
            "nanbound.mps",
            "NaN",
        ),
        (
            RANGES_MPS.replace("    X3        COST", "    X 3       COST"),
            "spaces.mps",
            "fixed-format",
        ),
        (
            RANGES_MPS.replace("X2        MYEQN       -1.0", "X2        NOROW       -1.0"),
            "norow.mps",
            "not defined",
        ),
        ("Minimize\n obj: x\nSubject To\n c1: x >= 1\n", "noend.lp", ""),
        ("NAME\nROWS\n N obj\nENDATA\n", "novars.mps", "no variables"),
    ],
)
def test_unsupported_or_invalid_content_is_rejected(tmp_path, text, name, reason):
    path = write_text(tmp_path, name, text)
    try:
        problem = read(path)
    except ProblemFileError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message, message
        assert reason in message, message
    else:  # only the LP file without "End" may be fine; then it must be the right problem
        assert name == "noend.lp", problem
        assert solvers.solve(problem).objective == pytest.approx(1.0)


def test_path_problems_name_the_file(tmp_path):
    for path, reason in [
        (tmp_path / "missing.mps", "no such file"),
        (tmp_path / "model.txt", "unknown format"),
        (tmp_path / "folder.mps", "not a regular file"),
        (tmp_path / "empty.lp", "empty"),
    ]:
        if path.name == "folder.mps":
            path.mkdir()
        if path.name in ("empty.lp", "model.txt"):
            path.write_text("  \n")
        with pytest.raises(ProblemFileError, match=reason) as excinfo:
            read(path)
        assert_clear_error(excinfo, path)
    with pytest.raises(TypeError, match="path"):
        read(3)


CRASHED_HIGHS = (  # a fuzzed file on which HiGHS's fixed-format fallback crashed Python
    "NAME          FUZZ\nROWS\n N  COST\n L  LIM1\n G  LIM2\n E  MYEQN\n L  R4\nCOLUMNS\n"
    "    X1        COST         1.0   LIM1         1.0\n    X1        LIM2         1.0\n"
    "    MARKER                 'MARKER'                 'INTORG'\n    X2         \n"
    " COST         2.0   LIM1         1.0\n    X2        MYEQN       -1.0\n"
    "    MARKER                 'MARKER'                 'INTEND'\n"
    "    X3        COST        -1.0   MYEQN        1.0\n"
    "    X4        COST         0.5   R4           1.0\n    X4        LIM2         2.0\nRHS\n"
    "    RHS       COST        -1.5\n    RHS       LIM1         4.0   LIM2         1.-nan\n"
    "    RHS       MYEQN        7.0   R4           3.0\nRANGES\n    RNG       LIM1         2.5   R4   "
)


def test_highs_reader_traps_neither_hang_nor_crash(tmp_path):
    # HiGHS's fixed-format MPS reader (the free-format reader's fallback) loops forever on
    # an empty line or a line of exactly 127 characters, and is not memory safe. Checked
    # in a child process so that a regression fails the test instead of hanging or
    # killing the suite.
    (tmp_path / "crashed.mps").write_text(CRASHED_HIGHS)
    code = textwrap.dedent(
        """
        import sys, tempfile, pathlib
        from solvers import ProblemFileError
        from solvers.files import read
        folder = pathlib.Path(sys.argv[1])
        texts = {  # text: number of variables, or None for "must be rejected"
            (folder / "crashed.mps").read_text(): None,
            "\\nCOLUMNS\\nA": None,
            "NAME T\\nROWS\\n N obj\\n\\nCOLUMNS\\n x obj 1\\n MA\\n": None,
            " " * 127 + "\\nNAME T\\nROWS\\n N obj\\nCOLUMNS\\n x obj 1\\n x y z\\n": None,
            "NAME T\\nROWS\\n N obj\\nCOLUMNS\\n x obj 1\\nRHS\\n\\nENDATA\\n": 1,
        }
        for k, (text, expected) in enumerate(texts.items()):
            path = folder / f"trap{k}.mps"
            path.write_text(text)
            try:
                got = read(path).n_vars
            except ProblemFileError:
                got = None
            if got != expected:
                sys.exit(f"trap {k}: expected {expected} variables, got {got}")
        print("done")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr


def test_fixed_format_triggers_and_reader_traps_are_found():
    from solvers.files import _fixed_format_fallback, _sanitised_mps

    ok = b"NAME T\nROWS\n N obj\n L r\nCOLUMNS\n x obj 1 r 2\n M 'MARKER' 'INTORG'\nENDATA\n"
    assert _fixed_format_fallback(ok) is None and _sanitised_mps(ok) is None
    assert "line 3" in _fixed_format_fallback(ok.replace(b" N obj", b" N obj extra"))
    assert "line 6" in _fixed_format_fallback(ok.replace(b"x obj 1 r 2", b"x y 1"))
    assert "line 6" in _fixed_format_fallback(ok.replace(b"x obj 1 r 2", b"MA"))
    # Empty lines and lines of 127 characters (they hang the fixed-format reader) defused:
    trapped = ok.replace(b"ROWS\n", b"ROWS\n\n" + b" " * 127 + b"\n")
    assert _sanitised_mps(trapped) == ok.replace(b"ROWS\n", b"ROWS\n*\n" + b" " * 128 + b"\n")


# -- writing ------------------------------------------------------------------------------


@st.composite
def linear_programs(draw) -> LinearProgram:
    n = draw(st.integers(1, 6))
    m_ub, m_eq = draw(st.integers(0, 4)), draw(st.integers(0, 3))
    # HiGHS drops matrix entries of magnitude <= 1e-9, so the round trip is exact above that.
    floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).filter(
        lambda v: v == 0 or abs(v) > 1e-9
    )
    sparse = st.one_of(st.just(0.0), st.just(0.0), floats)

    def vector(k, elements=floats):
        return np.array(draw(st.lists(elements, min_size=k, max_size=k)), dtype=float)

    c = vector(n, sparse)
    A_ub = vector(m_ub * n, sparse).reshape(m_ub, n)
    A_eq = vector(m_eq * n, sparse).reshape(m_eq, n)
    kinds = draw(
        st.lists(
            st.sampled_from(["default", "free", "box", "fixed", "upper", "lower"]),
            min_size=n,
            max_size=n,
        )
    )
    lo, hi = vector(n), vector(n)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    bounds = []
    for k, a, b in zip(kinds, lo, hi):
        bounds.append(
            {
                "default": (0, None),
                "free": (None, None),
                "box": (a, b),
                "fixed": (a, a),
                "upper": (None, b),
                "lower": (a, None),
            }[k]
        )
    integrality = draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))
    return LinearProgram(
        c,
        A_ub=A_ub if m_ub else None,
        b_ub=vector(m_ub) if m_ub else None,
        A_eq=A_eq if m_eq else None,
        b_eq=vector(m_eq) if m_eq else None,
        bounds=bounds,
        integrality=integrality,
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(problem=linear_programs(), suffix=st.sampled_from([".mps", ".lp", ".mps.gz", ".lp.gz"]))
def test_write_then_read_gives_back_the_same_problem(tmp_path, problem, suffix):
    path = tmp_path / f"model{suffix}"
    write(problem, path)
    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # really gzipped
    assert_same_problem(problem, read(path))


@pytest.mark.parametrize("suffix", [".mps", ".lp"])
def test_round_trip_survives_highs_writer_quirks(tmp_path, suffix):
    # Column 1: no entries, zero cost, continuous, between two integer columns (HiGHS's MPS
    # writer would put it inside the integer markers). Column 3: the same but integer
    # (it would lose its markers). Column 4: unused, continuous, default bounds (HiGHS's LP
    # writer would leave it out). Column 2 has no cost: LP files order columns by first
    # appearance, and it appears after column 0 only in the constraints.
    problem = LinearProgram(
        [1.0, 0.0, 0.0, 0.0, 0.0, -2.0],
        A_ub=sp.csr_array([[1.0, 0, 2.0, 0, 0, 1.0]]),
        b_ub=[3.0],
        bounds=[(0, 5), (None, None), (0, 2), (0.5, 0.7), (0, None), (-1, 1)],
        integrality=[1, 0, 1, 1, 0, 1],
    )
    path = tmp_path / f"quirks{suffix}"
    write(problem, path)
    again = read(path)
    assert_same_problem(problem, again)
    # x3 in [0.5, 0.7] and integer: infeasible, in both copies.
    assert solvers.solve(again).status is Status.INFEASIBLE


def test_written_instance_solves_like_the_original(instances_dir, tmp_path):
    original = read(instances_dir / "small_mip.mps")
    for suffix in (".mps", ".lp"):
        path = tmp_path / f"copy{suffix}"
        write(original, path)
        assert solvers.solve(read(path)).objective == pytest.approx(3.236842105, rel=1e-8)


def test_write_errors_name_the_file(tmp_path):
    problem = LinearProgram([1.0], A_ub=[[1.0]], b_ub=[1.0])
    target = tmp_path / "no" / "such" / "folder.mps"
    with pytest.raises(ProblemFileError, match="does not exist") as excinfo:
        write(problem, target)
    assert_clear_error(excinfo, target)
    with pytest.raises(ProblemFileError, match="unknown format"):
        write(problem, tmp_path / "model.json")
    with pytest.raises(TypeError, match="LinearProgram"):
        write({"c": [1.0]}, tmp_path / "model.mps")


# -- mutated files: a valid problem or a ProblemFileError, never a crash or a wrong "optimal" --

SMALL_MPS = RANGES_MPS.replace("LO BND       X3          -2.0", "LO BND       X3           6.0")
SMALL_LP = MAX_LP.replace(" + 1.5", "")
TOKENS = [
    b"nan",
    b"-nan",
    b"1e999",
    b"-1e999",
    b"inf",
    b"1e30",
    b"0x1p3",
    b"garbage",
    b"OBJSENSE",
    b"MAX",
    b"RANGES",
    b"RHS",
    b"BOUNDS",
    b"ENDATA",
    b"'MARKER'",
    b"SC",
    b"FR",
    b"MI",
    b"$",
    b"*",
    b"\\",
    b"<=",
    b">=",
    b"=",
    b"[",
    b"^",
    b":",
    b"End",
    b"\n",
    b"\n\n",
    b" " * 127,
    b"\x00",
    b"\xff",
    b"A B",
    b"x",
    b"X1",
    b"LIM1",
]
mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "insert", "delete"]),
        st.floats(0, 1),
        st.integers(0, 255),
        st.sampled_from(TOKENS),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(data: bytes, steps) -> bytes:
    out = bytearray(data)
    for kind, where, byte, token in steps:
        pos = int(where * len(out))
        if kind == "flip" and out:
            out[min(pos, len(out) - 1)] = byte
        elif kind == "truncate":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = b" " + token + b" " if byte % 2 else token
        elif kind == "delete":
            del out[pos : pos + 1 + byte % 16]
    return bytes(out)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=mutations, fmt=st.sampled_from(["mps", "lp"]))
def test_mutated_files_give_a_problem_or_a_clear_error(tmp_path, steps, fmt):
    base = (SMALL_MPS if fmt == "mps" else SMALL_LP).lstrip("\n").encode()
    path = tmp_path / f"mutant.{fmt}"
    path.write_bytes(_mutate(base, steps))
    try:
        model = read_model(path)
    except ProblemFileError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    problem = model.problem
    assert isinstance(problem, LinearProgram)
    for array in (problem.c, problem.b_ub, problem.b_eq, problem.A_ub.data, problem.A_eq.data):
        assert np.isfinite(array).all()
    assert not np.isnan(problem.bounds).any() and np.isfinite(model.offset)
    sol = solvers.solve(problem, time_limit=20)
    if sol.status is Status.OPTIMAL:  # solve re-checks; check again, independently
        scale = 1 + max(np.abs(problem.b_ub).max(initial=0), np.abs(problem.b_eq).max(initial=0))
        assert problem.residuals(sol.x) <= 1e-6 * scale
        assert sol.objective == pytest.approx(float(problem.c @ sol.x), rel=1e-6, abs=1e-6)


def test_tiny_coefficients_are_dropped_as_highs_does(tmp_path):
    # HiGHS ignores |a| <= 1e-9 (small_matrix_value) when solving; the files follow suit.
    problem = LinearProgram([1.0, 1.0], A_ub=[[1e-12, 1.0]], b_ub=[2.0])
    path = tmp_path / "tiny.mps"
    write(problem, path)
    np.testing.assert_array_equal(read(path).A_ub.toarray(), [[0.0, 1.0]])


def test_inline_comments_are_stripped_only_after_complete_entries(tmp_path, instances_dir):
    problem = read(instances_dir / "comment.mps")  # "$..." and "*..." after entries
    assert problem.n_vars == 2 and problem.n_ub == 4  # R0 is ranged: two rows
    sol = solvers.solve(problem)
    assert sol.status is Status.OPTIMAL and sol.objective == pytest.approx(-4.0)
    # A '$' inside an entry (here where the value belongs) is not a comment: refused or
    # read as written, never silently shortened.
    path = write_text(
        tmp_path,
        "inside.mps",
        """
        NAME          INSIDE
        ROWS
         N  COST
         L  R0
        COLUMNS
            X         COST      -1.0       R0   $1
        RHS
            RHS       R0        1.0
        ENDATA
        """,
    )
    with pytest.raises(ProblemFileError):
        read(path)
