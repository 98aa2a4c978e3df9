"""Read and write MPS and LP problem files, through HiGHS's own readers and writers.

The format comes from the file name: `.mps` or `.lp`, optionally gzipped
(`.mps.gz`, `.lp.gz`). Every HiGHS call's status is checked, its log is read
for warnings, and what HiGHS reads is checked again before it becomes a
`LinearProgram`. So a file either gives the problem it describes (up to the
HiGHS conventions listed below) or raises `ProblemFileError`, naming the file and
the fault in one line.

Conventions (what a `LinearProgram` cannot hold directly):

* **Maximisation.** A file that maximises `f @ x` is read as the minimisation of
  `c @ x` with `c = -f`, so the optimal objective of the problem that `read`
  returns is *minus* the file's optimum. `read_model` records the flip in
  `ModelFile.maximize`, and `ModelFile.file_objective` turns it back.
* **Objective constant.** A constant term in the objective (an MPS right-hand side
  on the objective row, or a constant in an LP file's objective) cannot be kept in
  a `LinearProgram`. `read` refuses such a file (dropping the constant would
  report a wrong optimum). `read_model` keeps it as `ModelFile.offset`.
* **Rows.** `a @ x <= u` goes to `A_ub`, `a @ x >= l` to `A_ub` as
  `-a @ x <= -l`, `a @ x == b` to `A_eq`, and a ranged row
  `l <= a @ x <= u` to two `A_ub` rows, upper first. Rows stay in file
  order. Free rows (both sides infinite) carry no constraint and are dropped.
* **Infinity and tiny values.** HiGHS treats bounds and right-hand sides of
  magnitude 1e20 or more as infinite, and so does this module; an infinite
  objective coefficient is an error. HiGHS drops matrix coefficients of magnitude
  1e-9 or less (its `small_matrix_value`), when reading, writing and solving
  alike, and so do `read` and `write`. Coefficients of 1e15 or more are an error.
* **Column order.** An MPS file fixes the column order. An LP file has none:
  HiGHS numbers variables in order of first appearance. `write` names column
  `j` `c{j}`, so when an LP file's variables are named exactly `c0 ... c{n-1}`
  they are put in that order. This keeps `read(write(p, "x.lp"))` equal to `p`.
* **Not supported** (each raises `ProblemFileError`): quadratic objectives,
  semi-continuous and semi-integer variables, SOS, indicator and quadratic
  constraints, NaN anywhere, a variable whose lower bound exceeds its upper bound,
  and files that HiGHS reads only with warnings (duplicate names, entries for
  undefined rows, ...). Such files are ambiguous, and a guess could be wrong.

Workarounds for HiGHS reader problems (HiGHS 1.16):

* Its free-format MPS reader takes an indented data line whose first word is
  `NAME` or `OBJSENSE` (a column called `OBJSENSE`, say) for a section
  header, and silently drops the rest of the section. `read` renames such names
  in a temporary copy first; names are not part of a `LinearProgram`.
* When the free-format reader meets what looks like a name with spaces, HiGHS
  falls back to its fixed-format reader. That reader is not safe: it can return a
  garbled model with status kOk, loops forever on an empty line or a line of
  exactly 127 characters, and crashed the interpreter in fuzzing. `read` checks
  for the fallback's triggers before HiGHS sees the file and refuses such files,
  so fixed-format MPS with spaces in names is not supported. (As a second line of
  defence the looping lines are defused in a temporary copy, and any fallback
  HiGHS reports is refused.)
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import ProblemFileError
from .problem import LinearProgram

__all__ = ["ModelFile", "read", "read_model", "write"]

PathLike = str | os.PathLike

# Suffix (lower case) -> (format, gzipped).
_FORMATS = {
    ".mps": ("mps", False),
    ".lp": ("lp", False),
    ".mps.gz": ("mps", True),
    ".lp.gz": ("lp", True),
}
_SUFFIX_HELP = ".mps, .lp, .mps.gz or .lp.gz"

# Warnings after which the model read is still what the file says. A fractional
# bound on an integer column is kept as written (HiGHS only remarks on it); matrix
# entries of magnitude <= 1e-9 are dropped, which is how HiGHS treats them in any case.
_BENIGN_WARNINGS = re.compile(
    r"No objective row found"
    r"|Bound for LI/UI/SI column .* not integer"
    r"|BOUNDS section: ignored 0 duplicate values and \d+ fractional integer bounds"
    r"|matrix contains \d+ \|value\| in \[.*\] at/below tolerance of .*: ignored"
)

# Section keywords that HiGHS's free MPS reader recognises even when indented and
# followed by more words (see HMpsFF::checkFirstWord).
_GREEDY_KEYWORDS = re.compile(
    rb"^[ \t]+(name|objsense|qcmatrix|qsection|csection)[ \t]+\S", re.IGNORECASE | re.MULTILINE
)
_ROWS_HEADER = re.compile(rb"^rows[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_GENERATED_NAME = re.compile(r"c(0|[1-9][0-9]*)")
_CONTINUATION = re.compile(r"\d+ \|")
_LOCATION = re.compile(r"-->\s*(?P<file>.*?):(?P<line>\d+):(?P<col>\d+)")


@dataclass(frozen=True, eq=False)
class ModelFile:
    """A problem file as read: the `LinearProgram` plus what it cannot hold.

    Attributes:
        problem: the problem as a minimisation (costs negated for a maximising file).
        path: the file read.
        maximize: True when the file maximises; then `problem.c` is minus the
            file's objective coefficients.
        offset: the constant term of the file's objective (0.0 when there is none).
        col_names: the file's variable names in `problem`'s column order (empty
            when HiGHS dropped them, e.g. because of duplicates).
    """

    problem: LinearProgram
    path: Path
    maximize: bool = False
    offset: float = 0.0
    col_names: tuple[str, ...] = ()

    def file_objective(self, value: float) -> float:
        """The file's objective for `value = problem.c @ x`: sign flipped back, offset added.

        Infinite values follow the sign too: an infeasible maximisation gives -inf.
        """
        value = float(value)
        return (-value if self.maximize else value) + self.offset


def read(path: PathLike) -> LinearProgram:
    """Read an MPS or LP file as a `LinearProgram` (a minimisation).

    Args:
        path: a file ending in .mps, .lp, .mps.gz or .lp.gz.

    Returns:
        The problem. A maximising file comes back with its costs negated, so its
            optimal objective is minus the file's (see `read_model` to keep the sign).

    Raises:
        ProblemFileError: naming the file, when it is missing or unreadable, is not
            a valid model of that format, holds NaN or an infinite cost, uses a
            feature a `LinearProgram` cannot represent, or has a constant objective
            term (use `read_model`, which keeps it).
    """
    model = read_model(path)
    if model.offset != 0.0:
        raise ProblemFileError(
            f"Cannot read problem file {str(model.path)!r}: its objective has a constant term "
            f"{model.offset!r}, which a LinearProgram cannot hold. Use "
            "solvers.files.read_model(path), which keeps it as `.offset`."
        )
    return model.problem


def read_model(path: PathLike) -> ModelFile:
    """Read an MPS or LP file, keeping the objective sense, constant and variable names.

    Args:
        path: a file ending in .mps, .lp, .mps.gz or .lp.gz.

    Returns:
        A `ModelFile` whose `problem` is the minimisation form; see the module
            docstring for how rows, bounds and maximisation are mapped.

    Raises:
        ProblemFileError: as for `read`, except that a constant objective term is kept.
    """
    path = _as_path(path, "path")
    fmt, gzipped = _file_format(path)

    def fail(reason: str) -> ProblemFileError:
        return ProblemFileError(f"Cannot read problem file {str(path)!r}: {reason}")

    if not path.exists():
        raise fail("no such file.")
    if not path.is_file():
        raise fail("not a regular file.")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(f"{exc.strerror or exc}.") from exc
    if not raw.strip():
        raise fail("the file is empty.")

    with tempfile.TemporaryDirectory(prefix="solvers-read-") as tmp:
        source = path
        if fmt == "mps":
            text = _decompressed(raw) if gzipped else raw
            try:
                sanitised = _sanitised_mps(text)
            except _MpsCommentError as exc:
                raise fail(f"{exc}.") from None
            trap = _fixed_format_fallback(text if sanitised is None else sanitised)
            if trap is not None:
                raise fail(
                    f"{trap}; HiGHS would fall back to its fixed-format MPS reader, which is not "
                    "safe to run (names with spaces are not supported)."
                )
            if sanitised is not None:
                source = Path(tmp) / "model.mps"
                source.write_bytes(sanitised)
        with _LoggedHighs(Path(tmp)) as logged:
            status = logged.highs.readModel(str(source))
            messages = [m.replace(str(source), str(path)) for m in logged.messages()]
            _check_read_status(status, messages, fmt, fail)
            if logged.highs.getModel().hessian_.dim_ > 0:
                raise fail("the objective is quadratic; only linear objectives are supported.")
            return _to_model_file(logged.highs.getLp(), path, fmt, fail)


def write(problem: LinearProgram, path: PathLike) -> None:
    """Write `problem` to an MPS or LP file through HiGHS's writer.

    Column `j` is named `c{j}`; rows are `r0, r1, ...`: first the `A_ub`
    rows (as `<=` rows), then the `A_eq` rows. HiGHS writes 17 significant
    digits, so `read(path)` gives back exactly `problem`, except for what
    HiGHS does not represent: matrix coefficients of magnitude 1e-9 or less are
    dropped, and bounds and right-hand sides of 1e20 or more become infinite.

    Args:
        problem: the problem to write (always written as a minimisation).
        path: a file name ending in .mps, .lp, .mps.gz or .lp.gz; it is overwritten.

    Raises:
        TypeError: `problem` is not a `LinearProgram`.
        ProblemFileError: naming the file, when it cannot be written (missing
            folder, no permission, HiGHS failure).
    """
    if not isinstance(problem, LinearProgram):
        raise TypeError(f"`problem` must be a solvers.LinearProgram; got {type(problem).__name__}.")
    path = _as_path(path, "path")
    fmt, gzipped = _file_format(path)

    def fail(reason: str) -> ProblemFileError:
        return ProblemFileError(f"Cannot write problem file {str(path)!r}: {reason}")

    if not path.parent.is_dir():
        raise fail(f"the folder {str(path.parent)!r} does not exist.")
    if path.is_dir():
        raise fail("it is a folder.")

    import highspy

    with (
        tempfile.TemporaryDirectory(prefix="solvers-write-") as tmp,
        _LoggedHighs(Path(tmp)) as logged,
    ):
        status = logged.highs.passModel(_to_highs_lp(problem))
        messages = logged.messages()
        serious = [
            m for m in messages if m.startswith("WARNING") and not _BENIGN_WARNINGS.search(m)
        ]
        if status == highspy.HighsStatus.kError or serious:
            detail = _summary(serious or messages) or "no detail given"
            raise fail(f"HiGHS rejected the model: {detail}")
        # HiGHS writes plain text whatever the name says, so gzip ourselves.
        target = Path(tmp) / f"model.{fmt}" if gzipped else path
        status = logged.highs.writeModel(str(target))
        if status != highspy.HighsStatus.kOk or not target.is_file():
            messages = [m.replace(str(target), str(path)) for m in logged.messages()]
            detail = _summary(messages) or "no detail given"
            raise fail(f"HiGHS writeModel returned {status.name}: {detail}")
        try:
            if fmt == "lp":
                _declare_unused_columns(target, problem)
            else:
                _fix_integer_markers(target, problem)
            if gzipped:
                with gzip.open(path, "wb") as out:
                    out.write(target.read_bytes())
        except OSError as exc:
            raise fail(f"{exc.strerror or exc}.") from exc


# -- helpers -------------------------------------------------------------------------


def _as_path(value: Any, name: str) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"`{name}` must be a str or os.PathLike; got {type(value).__name__}.")
    return Path(value)


def _file_format(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    for suffix in (".mps.gz", ".lp.gz", ".mps", ".lp"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return _FORMATS[suffix]
    raise ProblemFileError(
        f"Problem file {str(path)!r}: unknown format; the name must end in {_SUFFIX_HELP}."
    )


class _LoggedHighs:
    """A Highs instance that prints nothing but logs to a private file we can read.

    A log file rather than a logging callback: HiGHS echoes file contents in its
    messages, and a callback would fail on bytes that are not UTF-8.
    """

    def __init__(self, folder: Path) -> None:
        from ._backends.highs import _new_highs

        self.highs = _new_highs()  # silences the banner HiGHS prints on its first construction
        self._log = folder / "highs.log"
        self._seen = 0
        for name, value in (
            ("log_to_console", False),
            ("log_file", str(self._log)),
            ("output_flag", True),
        ):
            if self.highs.setOptionValue(name, value).name == "kError":
                raise RuntimeError(f"HiGHS rejected option {name}={value!r}")

    def __enter__(self) -> _LoggedHighs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Close the log file before its folder goes away.
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("log_file", "")

    def messages(self) -> list[str]:
        """The log records written since the last call, one string per record."""
        try:
            data = self._log.read_bytes()
        except OSError:
            return []
        new, self._seen = data[self._seen :], len(data)
        records: list[str] = []
        for line in new.decode("utf-8", errors="replace").splitlines():
            # Continuation lines of the LP parser's messages are indented or "12 | ...".
            if records and (not line[:1].strip() or _CONTINUATION.match(line)):
                records[-1] += "\n" + line
            elif line.strip():
                records.append(line)
        return records


def _decompressed(raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile):
        return raw  # HiGHS reads a plain file with a .gz name too; let it decide


_SECTION_KEYWORDS = frozenset(
    "NAME OBJSENSE ROWS COLUMNS RHS BOUNDS RANGES QSECTION QMATRIX QUADOBJ QCMATRIX CSECTION "
    "DELAYEDROWS MODELCUTS USERCUTS INDICATORS SETS SOS GENCONS PWLOBJ PWLNAM PWLCON "
    "ENDATA".split()
)
_SECTION_KEYWORD_BYTES = frozenset(k.encode() for k in _SECTION_KEYWORDS)
_MPS_SPACE = " \t\n\v\f\r"
_MPS_SPACES = re.compile(r"[ \t\n\v\f\r]+")
_KEYWORDS_WITH_ARGUMENTS = frozenset({"NAME", "OBJSENSE", "QCMATRIX", "QSECTION", "CSECTION"})


def _fixed_format_fallback(text: bytes) -> str | None:
    """Where HiGHS's free-format MPS reader might switch to its fixed-format reader.

    The fixed-format reader (HMPSIO.cpp) is not memory safe: it passes a
    `std::array` to a printf `%s` when logging and scans a MARKER line
    without bounds, and it crashed the interpreter in fuzzing. So `read` never
    lets HiGHS get there. The free-format reader (HMpsFF.cpp) falls back when a
    ROWS line has words after the row name, or a COLUMNS line's second word is
    not a row name. This mirrors its line and section handling, conservatively:
    it may refuse a file that HiGHS would only have read with warnings, which
    `read` refuses anyway.

    Returns:
        A description of the first such line, or None.
    """
    section = None
    row_names: set[str] = set()
    for number, raw_line in enumerate(text.decode("latin-1").split("\n"), start=1):
        # HiGHS's whitespace, not Python's (str.split would also split at \x1c-\x1f).
        line = raw_line.strip(_MPS_SPACE)
        if not line or raw_line.startswith("*"):
            continue
        words = _MPS_SPACES.split(line)
        head = words[0].upper()
        if (
            len(words[0]) > 1
            and head in _SECTION_KEYWORDS
            and (len(words) == 1 or head in _KEYWORDS_WITH_ARGUMENTS)
        ):
            section = head
            continue
        if section == "ROWS":
            rest = [w for w in _MPS_SPACES.split(line[1:]) if w]  # the type is line[0]
            if len(rest) > 1:
                return f"line {number}: a ROWS entry with more than a type and a name"
            row_names.update(rest)
        elif section == "COLUMNS":
            if len(words) > 1 and words[1] == "'MARKER'":
                continue
            if len(words) < 2 or words[1] not in row_names:
                what = f"row {words[1]!r} is not defined" if len(words) > 1 else "no row name"
                return f"line {number}: a COLUMNS entry whose {what}"
    return None


def _sanitised_mps(text: bytes) -> bytes | None:
    """`text` with two HiGHS reader traps defused, or None when there are none.

    1. HiGHS's fixed-format MPS reader, which its free-format reader falls back
       to (with a warning, so `read` refuses the file anyway), loops forever on
       an empty line or on a line of exactly a multiple of 127 characters: its
       `istream::get` then extracts nothing, sets failbit, and never reaches
       EOF. Such lines become a comment line `*`, or get one trailing space.
    2. Names that the free-format reader takes for section headers are renamed
       (see `_rename_keyword_names`).
    """
    uncommented = _strip_inline_comments(text)
    if uncommented is not None:
        text = uncommented
    lines = text.split(b"\n")
    # The last piece follows the final newline (or is the whole last line): no newline.
    traps = [i for i, line in enumerate(lines[:-1]) if len(line) % 127 == 0]
    for i in traps:
        lines[i] = b"*" if not lines[i] else lines[i] + b" "
    fixed = b"\n".join(lines) if traps else text
    renamed = _rename_keyword_names(fixed)
    if renamed is not None:
        return renamed
    return fixed if traps or uncommented is not None else None


_NO_VALUE_BOUNDS = frozenset({b"FR", b"MI", b"PL"})


def _comment_starts_at(section: bytes, words: list[bytes], k: int, rows: set[bytes]) -> bool:
    """Whether `words[k]` (starting with '$' or '*') can only be a trailing comment.

    Only where a complete entry ends: after a ROWS name, after a (row, value) pair, after
    a bound. A word starting with '*' is also a legal name (`*OBJ*` in Xpress files), so
    where a row name may follow it is taken for a name unless it names no row.
    """
    if section == b"ROWS":
        return k == 2
    if section in (b"COLUMNS", b"RHS", b"RANGES"):
        return k == 5 or (k == 3 and (words[k].startswith(b"$") or words[k] not in rows))
    if section == b"BOUNDS":
        return k == 4 or (k == 3 and words[0].upper() in _NO_VALUE_BOUNDS)
    return False


def _strip_inline_comments(text: bytes) -> bytes | None:
    """`text` without trailing `$...` / `*...` comments on data lines, or None if none.

    Free MPS files (HiGHS's test file `comment.mps`, CPLEX's format) may end a data
    line with a comment starting with `$`; HiGHS's own files also use `*`. A
    comment is only recognised where a complete entry ends (see `_comment_starts_at`).
    A `$` anywhere else in an entry is refused: HiGHS would silently drop the rest.
    """
    if b"$" not in text and b"*" not in text:
        return None
    lines = text.split(b"\n")
    section = None
    rows: set[bytes] = set()
    changed = False
    for i, raw_line in enumerate(lines):
        if raw_line.startswith((b"*", b"$")):
            continue
        words = raw_line.split()
        if not words:
            continue
        if not raw_line[:1].isspace() and words[0].upper() in _SECTION_KEYWORD_BYTES:
            section = words[0].upper()
            continue
        if section == b"ROWS" and len(words) > 1:
            rows.add(words[1])
        for k, word in enumerate(words[1:], start=1):
            if not word.startswith((b"$", b"*")):
                continue
            if _comment_starts_at(section, words, k, rows):
                lines[i] = b" " + b" ".join(words[:k])
                changed = True
                break
            if word.startswith(b"$") and section is not None:
                # HiGHS would take the rest of the line for a comment and silently drop
                # part of an entry.
                raise _MpsCommentError(
                    f"line {i + 1}: {word[:20].decode('latin-1')!r} starts a comment in the "
                    "middle of an entry (or is a name starting with '$'), which would "
                    "silently drop part of the entry"
                )
    return b"\n".join(lines) if changed else None


class _MpsCommentError(ValueError):
    """An in-line comment where it would cut an MPS entry short."""


def _rename_keyword_names(text: bytes) -> bytes | None:
    """Rename data-line names that HiGHS's MPS reader would take for section headers.

    Returns the rewritten text, or None when nothing needs renaming.
    """
    rows = _ROWS_HEADER.search(text)
    if rows is None:
        return None
    body = text[rows.end() :]
    words = {m.group(1) for m in _GREEDY_KEYWORDS.finditer(body)}
    if not words:
        return None
    for word in sorted(words):
        k = 0
        while True:
            new = word + b"_%d" % k
            if re.search(rb"(?<!\S)" + re.escape(new) + rb"(?!\S)", text) is None:
                break
            k += 1
        # Only whole words, only in the lines after ROWS: names there are data.
        body = re.sub(rb"(?<!\S)" + re.escape(word) + rb"(?!\S)", new, body)
    return text[: rows.end()] + body


def _summary(messages: list[str], *, kind: str | None = None) -> str:
    """HiGHS log messages squeezed into one line (first line of each, plus location)."""
    parts = []
    for message in messages:
        lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
        if not lines:
            continue
        head = lines[0]
        if kind is not None and not head.startswith(kind):
            continue
        head = re.sub(r"^(ERROR|WARNING):\s*", "", head)
        head = " ".join(head.split())
        loc = _LOCATION.search(message)
        if loc is not None:
            head += f" (line {loc['line']}, column {loc['col']})"
        parts.append(head)
    # HiGHS ends with a generic "Parser error reading FILE", after the real reason if any.
    generic = [p for p in parts if p.startswith("Parser error reading")]
    text = "; ".join(dict.fromkeys(p for p in parts if p not in generic))  # unique, in order
    if re.search(r"\bnan\b", text, re.IGNORECASE):
        text += " (the file holds a NaN)"
    if len(text) > 400:
        text = text[:397] + "..."
    return text


def _check_read_status(status, messages: list[str], fmt: str, fail) -> None:
    """Raise unless HiGHS read the file cleanly.

    The log is checked as well as the status: when HiGHS's free-format MPS reader
    falls back to its fixed-format reader, it logs warnings but can still return
    kOk, with a model that is not what the file says.
    """
    import highspy

    if status == highspy.HighsStatus.kError:
        detail = _summary(messages, kind="ERROR")
        raise fail(
            f"HiGHS could not parse it as an {fmt.upper()} file"
            + (f": {detail}" if detail else " (HiGHS gives no detail).")
        )
    if status not in (highspy.HighsStatus.kOk, highspy.HighsStatus.kWarning):
        raise fail(f"HiGHS readModel returned {status!r}.")
    warnings = [m for m in messages if m.lstrip().startswith("WARNING")]
    serious = [w for w in warnings if not _BENIGN_WARNINGS.search(w)]
    if serious or (status == highspy.HighsStatus.kWarning and not warnings):
        fixed = any("fixed format" in w for w in serious)
        raise fail(
            (
                "it is not valid free-format MPS (HiGHS falls back to its fixed-format reader, "
                "whose result cannot be trusted): "
                if fixed
                else "HiGHS read it only with warnings, so the model may not be what the file means: "
            )
            + (_summary(serious or messages) or "no detail given")
        )


def _to_model_file(lp, path: Path, fmt: str, fail) -> ModelFile:
    import highspy

    n, m = int(lp.num_col_), int(lp.num_row_)
    if n == 0:
        raise fail("the model has no variables.")
    names = _names(lp, "col_names_", n)
    row_names = _names(lp, "row_names_", m)

    def col(j: int) -> str:
        return f"variable {names[j]!r}" if names else f"variable {j}"

    def row(i: int) -> str:
        return f"row {row_names[i]!r}" if row_names else f"row {i}"

    c = np.array(lp.col_cost_, dtype=np.float64)
    lb = np.array(lp.col_lower_, dtype=np.float64)
    ub = np.array(lp.col_upper_, dtype=np.float64)
    row_lo = np.array(lp.row_lower_, dtype=np.float64)
    row_hi = np.array(lp.row_upper_, dtype=np.float64)
    if not (c.shape == lb.shape == ub.shape == (n,) and row_lo.shape == row_hi.shape == (m,)):
        raise fail("HiGHS returned arrays of inconsistent sizes.")
    offset = float(lp.offset_)

    # -- NaN and infinity: checked here, with names, before anything else sees them.
    checks = (
        (np.isnan(c), lambda j: f"the objective coefficient of {col(j)} is NaN."),
        (
            np.isinf(c),
            lambda j: f"the objective coefficient of {col(j)} is infinite (|value| >= 1e20).",
        ),
        (np.isnan(lb), lambda j: f"the lower bound of {col(j)} is NaN."),
        (np.isnan(ub), lambda j: f"the upper bound of {col(j)} is NaN."),
        ((lb == np.inf) | (ub == -np.inf), lambda j: f"{col(j)} has bounds [{lb[j]}, {ub[j]}]."),
        (
            lb > ub,
            lambda j: (
                f"{col(j)} has lower bound {lb[j]!r} above its upper bound {ub[j]!r} (the "
                "model is infeasible as written, which a LinearProgram cannot represent)."
            ),
        ),
        (np.isnan(row_lo), lambda i: f"the lower bound (right-hand side) of {row(i)} is NaN."),
        (np.isnan(row_hi), lambda i: f"the upper bound (right-hand side) of {row(i)} is NaN."),
        (
            (row_lo == np.inf) | (row_hi == -np.inf),
            lambda i: f"{row(i)} has bounds [{row_lo[i]}, {row_hi[i]}].",
        ),
    )
    for mask, reason in checks:
        if mask.any():
            raise fail(reason(int(np.argmax(mask))))
    if not np.isfinite(offset):
        raise fail(f"the objective constant is {offset!r}.")

    A = _matrix(lp.a_matrix_, m, n, fail)
    bad = ~np.isfinite(A.data)
    if bad.any():
        coo = A.tocoo()
        k = int(np.flatnonzero(~np.isfinite(coo.data))[0])
        what = "NaN" if np.isnan(coo.data[k]) else "infinite"
        raise fail(
            f"the coefficient of {col(int(coo.col[k]))} in {row(int(coo.row[k]))} is {what}."
        )

    integrality = np.zeros(n, dtype=np.int8)
    if len(lp.integrality_):
        kinds = np.array([int(k) for k in lp.integrality_], dtype=np.int64)
        if kinds.shape != (n,):
            raise fail("HiGHS returned integrality flags of the wrong length.")
        other = np.flatnonzero((kinds != 0) & (kinds != 1))
        if other.size:
            kind = highspy.HighsVarType(int(kinds[other[0]])).name.removeprefix("k")
            raise fail(
                f"{col(int(other[0]))} is {kind} ({other.size} such variable(s)); only continuous "
                "and integer variables are supported."
            )
        integrality = kinds.astype(np.int8)

    # -- Rows to A_ub / A_eq (see the module docstring).
    equal = row_lo == row_hi
    upper = np.isfinite(row_hi) & ~equal
    lower = np.isfinite(row_lo) & ~equal
    up_rows, lo_rows, eq_rows = np.flatnonzero(upper), np.flatnonzero(lower), np.flatnonzero(equal)
    keys = np.concatenate([2 * up_rows, 2 * lo_rows + 1])
    order = np.argsort(keys, kind="stable")
    ub_rows = np.concatenate([up_rows, lo_rows])[order]
    signs = np.concatenate([np.ones(up_rows.size), -np.ones(lo_rows.size)])[order]
    ub_rhs = np.concatenate([row_hi[up_rows], -row_lo[lo_rows]])[order]
    A = A.tocsr()
    A_ub = sp.diags_array(signs, format="csr") @ A[ub_rows] if ub_rows.size else None
    A_eq = A[eq_rows] if eq_rows.size else None

    # -- Column order of LP files written by `write` (see the module docstring).
    if fmt == "lp" and names and all(_GENERATED_NAME.fullmatch(s) for s in names):
        index = np.array([int(s[1:]) for s in names])
        if np.array_equal(np.sort(index), np.arange(n)):
            perm = np.argsort(index)
            c, lb, ub, integrality = c[perm], lb[perm], ub[perm], integrality[perm]
            A_ub = A_ub[:, perm] if A_ub is not None else None
            A_eq = A_eq[:, perm] if A_eq is not None else None
            names = [names[j] for j in perm]

    maximize = lp.sense_ == highspy.ObjSense.kMaximize
    if maximize:
        c = -c
    try:
        problem = LinearProgram(
            c,
            A_ub=A_ub,
            b_ub=ub_rhs if A_ub is not None else None,
            A_eq=A_eq,
            b_eq=row_hi[eq_rows] if A_eq is not None else None,
            bounds=np.column_stack([lb, ub]),
            integrality=integrality,
        )
    except ValueError as exc:  # every check above should make this unreachable
        raise fail(str(exc)) from exc
    return ModelFile(
        problem=problem, path=path, maximize=bool(maximize), offset=offset, col_names=tuple(names)
    )


def _names(lp, attribute: str, size: int) -> list[str]:
    """HiGHS's names, or [] when they are missing or not UTF-8 (then indices are used)."""
    try:
        names = [str(s) for s in getattr(lp, attribute)]
    except UnicodeDecodeError:
        return []
    return names if len(names) == size else []


def _matrix(a_matrix, m: int, n: int, fail) -> sp.csc_array:
    import highspy

    start = np.array(a_matrix.start_, dtype=np.int64)
    index = np.array(a_matrix.index_, dtype=np.int64)
    value = np.array(a_matrix.value_, dtype=np.float64)
    if value.size == 0:
        return sp.csc_array((m, n))
    rowwise = a_matrix.format_ == highspy.MatrixFormat.kRowwise
    major, minor = (m, n) if rowwise else (n, m)
    if (
        start.shape != (major + 1,)
        or start[0] != 0
        or start[-1] != value.size
        or index.shape != value.shape
        or np.any(np.diff(start) < 0)
        or np.any((index < 0) | (index >= minor))
    ):
        raise fail("HiGHS returned an inconsistent constraint matrix.")
    if rowwise:
        return sp.csr_array((value, index, start), shape=(m, n)).tocsc()
    return sp.csc_array((value, index, start), shape=(m, n))


def _to_highs_lp(problem: LinearProgram):
    import highspy

    lp = highspy.HighsLp()
    n = problem.n_vars
    A = sp.vstack([problem.A_ub, problem.A_eq], format="csc")
    m = A.shape[0]
    lp.num_col_ = n
    lp.num_row_ = m
    lp.col_cost_ = np.asarray(problem.c, dtype=np.float64)
    lp.col_lower_ = np.asarray(problem.lb, dtype=np.float64)
    lp.col_upper_ = np.asarray(problem.ub, dtype=np.float64)
    lp.row_lower_ = np.concatenate([np.full(problem.n_ub, -np.inf), problem.b_eq])
    lp.row_upper_ = np.concatenate([problem.b_ub, problem.b_eq])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = m
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    # Explicit names keep HiGHS from warning that it invents them.
    lp.col_names_ = [f"c{j}" for j in range(n)]
    lp.row_names_ = [f"r{i}" for i in range(m)]
    if problem.is_mip:
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        lp.integrality_ = [kinds[int(k)] for k in problem.integrality]
    return lp


def _declare_unused_columns(target: Path, problem: LinearProgram) -> None:
    """Declare, in a `bounds` line, each column that appears nowhere in an LP file.

    A continuous column with zero cost, no matrix entries and the default bounds
    [0, inf) is written nowhere by HiGHS, so reading the file back would lose it.
    """
    unused = (
        _empty_columns(problem)
        & (problem.c == 0)
        & (problem.lb == 0)
        & (problem.ub == np.inf)
        & (problem.integrality == 0)
    )
    if not unused.any():
        return
    declarations = "".join(f" c{j} >= 0\n" for j in np.flatnonzero(unused))
    lines = target.read_text().splitlines(keepends=True)
    keys = [ln.strip().lower() for ln in lines]
    if "bounds" in keys:
        at = keys.index("bounds") + 1
    else:
        tail = ("bin", "binary", "binaries", "gen", "general", "generals", "semi", "end")
        at = next((i for i, k in enumerate(keys) if k in tail), None)
        if at is None:
            raise OSError(f"unexpected LP file layout from HiGHS in {target}")
        declarations = "bounds\n" + declarations
    lines.insert(at, declarations)
    target.write_text("".join(lines))


def _empty_columns(problem: LinearProgram) -> np.ndarray:
    """Mask of the columns with no matrix entries."""
    used = np.zeros(problem.n_vars, dtype=bool)
    used[problem.A_ub.indices] = True
    used[problem.A_eq.indices] = True
    return ~used


def _fix_integer_markers(target: Path, problem: LinearProgram) -> None:
    """Redo the integer MARKER lines of an MPS file HiGHS wrote for `problem`.

    HiGHS writes a column with no entries and zero cost before deciding about
    markers, so such a column loses its integrality, or gains it when it sits
    between integer columns. The markers are rebuilt from `problem.integrality`,
    reading each COLUMNS line's column from its name `c{j}`.
    """
    if not problem.is_mip or not (_empty_columns(problem) & (problem.c == 0)).any():
        return
    lines = target.read_text().splitlines(keepends=True)
    try:
        start = lines.index("COLUMNS\n") + 1
    except ValueError:
        raise OSError(f"unexpected MPS file layout from HiGHS in {target}") from None
    end = next((i for i in range(start, len(lines)) if lines[i][:1].strip()), len(lines))
    columns, in_integer, markers = [], False, 0

    def marker(kind: str) -> str:
        nonlocal markers
        markers += 1
        return f"    MARK{markers - 1:04d}  'MARKER'                 '{kind}'\n"

    for line in lines[start:end]:
        if "'MARKER'" in line:
            continue
        name = line.split()[0]
        if not _GENERATED_NAME.fullmatch(name):
            raise OSError(f"unexpected column name {name!r} in {target}")
        integer = bool(problem.integrality[int(name[1:])])
        if integer != in_integer:
            columns.append(marker("INTORG" if integer else "INTEND"))
            in_integer = integer
        columns.append(line)
    if in_integer:
        columns.append(marker("INTEND"))
    target.write_text("".join(lines[:start] + columns + lines[end:]))
