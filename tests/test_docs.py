"""The documentation: every code block runs, the API reference is complete and renders.

- Every ```python block in README.md and docs/**/*.md, and in the docstrings of both packages,
  runs as copied, in a fresh interpreter in an empty folder (a block that only includes a
  gallery script with `--8<--` is run by tests/test_gallery.py instead). A block may be left out only with
  an HTML comment on the line before it that gives the reason: `<!-- skip: needs torchrun -->`.
  `<!-- slow: about 30 s -->` marks a slow block (it still runs).
- Docstrings use Markdown: no reStructuredText roles or directives, no `>>>` examples.
- Every public name (the `__all__` of `combgrad`, `solvers` and their public subpackages) is
  rendered by a `::: public.path` line on a page under docs/api/.
- The built site (mkdocs --strict) has no raw roles and an anchor for every public name.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"
PACKAGES = ("combgrad", "solvers")
# Subpackages whose `__all__` is public although the package's `__all__` does not list them.
EXTRA_NAMESPACES = ("solvers.combinatorial", "solvers.oracles")
BLOCK_TIMEOUT_S = 300
MAX_SKIPPED_BLOCKS = 3

RAW_ROLE_RE = re.compile(r":(math|func|class|meth|attr|mod|data|exc|obj|ref):`")
RAW_DIRECTIVE_RE = re.compile(r"^\s*\.\. [a-z-]+::", re.M)


# --------------------------------------------------------------------------- code blocks
@dataclass(frozen=True)
class Block:
    where: str  # "docs/losses.md:12"
    code: str
    skip: str | None  # reason
    slow: bool


_FENCE_RE = re.compile(r"^(?P<ind>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*$")
_MARK_RE = re.compile(r"^\s*<!--\s*(?P<kind>skip|slow)\s*:\s*(?P<reason>.*?)\s*-->\s*$")


def fenced_blocks(text: str, where: str, first_line: int = 1) -> list[Block]:
    """The ```python blocks of a Markdown text, with the skip/slow marks before them."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        ind, lang, start = m.group("ind"), m.group("lang"), i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if lang in ("python", "py"):
            body = [
                ln[len(ind) :] if ln.startswith(ind) else ln.lstrip() for ln in lines[i + 1 : j]
            ]
            k = start - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            mark = _MARK_RE.match(lines[k]) if k >= 0 else None
            skip = mark.group("reason") if mark and mark.group("kind") == "skip" else None
            slow = bool(mark and mark.group("kind") == "slow")
            if mark and not mark.group("reason"):
                raise AssertionError(f"{where}:{first_line + k}: a skip/slow mark needs a reason")
            blocks.append(
                Block(f"{where}:{first_line + start}", "\n".join(body) + "\n", skip, slow)
            )
        i = j + 1
    return blocks


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def markdown_blocks() -> list[Block]:
    out = []
    for path in markdown_files():
        out += fenced_blocks(path.read_text(), str(path.relative_to(ROOT)))
    return out


def source_files() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def docstrings() -> list[tuple[str, int, str]]:
    """(file, line, docstring) for every module, class and function docstring of both packages."""
    out = []
    for path in source_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(
                node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            ) and (doc := ast.get_docstring(node, clean=True)):
                line = node.body[0].lineno if node.body else 1
                out.append((str(path.relative_to(ROOT)), line, doc))
    return out


def docstring_blocks() -> list[Block]:
    out = []
    for file, line, doc in docstrings():
        out += fenced_blocks(doc, file, line)
    return out


def is_include(block: Block) -> bool:
    """A block that only includes a file (`--8<-- "examples/gallery/x.py"`): tested elsewhere."""
    lines = [ln for ln in block.code.splitlines() if ln.strip()]
    return bool(lines) and all(ln.strip().startswith("--8<--") for ln in lines)


def _params(blocks: list[Block]) -> list:
    params = []
    for b in blocks:
        if b.skip is not None or is_include(b):
            continue
        marks = [pytest.mark.slow] if b.slow else []
        params.append(pytest.param(b, id=b.where, marks=marks))
    return params


def run_block(block: Block, tmp_path: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", block.code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"the code block at {block.where} fails as copied:\n{block.code}\n"
        f"--- stderr (tail) ---\n{proc.stderr[-3000:]}"
    )


@pytest.mark.parametrize("block", _params(markdown_blocks()))
def test_markdown_block_runs(block: Block, tmp_path: Path) -> None:
    run_block(block, tmp_path)


@pytest.mark.parametrize("block", _params(docstring_blocks()))
def test_docstring_example_runs(block: Block, tmp_path: Path) -> None:
    run_block(block, tmp_path)


def test_skipped_blocks_are_rare_and_explained() -> None:
    skipped = [b for b in markdown_blocks() + docstring_blocks() if b.skip is not None]
    assert all(b.skip.strip() for b in skipped)
    assert len(skipped) <= MAX_SKIPPED_BLOCKS, [f"{b.where}: {b.skip}" for b in skipped]


def test_fenced_blocks_parser() -> None:
    text = "a\n\n<!-- skip: needs torchrun -->\n```python\nx = 1\n```\n\n    ```python\n    y = 2\n    ```\n"
    blocks = fenced_blocks(text, "t.md")
    assert [(b.code, b.skip, b.where) for b in blocks] == [
        ("x = 1\n", "needs torchrun", "t.md:4"),
        ("y = 2\n", None, "t.md:8"),
    ]


# --------------------------------------------------------------------------- docstring style
def test_docstrings_are_markdown() -> None:
    problems = []
    for file, line, doc in docstrings():
        for pattern, what in (
            (RAW_ROLE_RE, "reStructuredText role"),
            (RAW_DIRECTIVE_RE, "reStructuredText directive"),
            (re.compile(r"^\s*>>>", re.M), "`>>>` example (use a fenced python block)"),
        ):
            if m := pattern.search(doc):
                problems.append(f"{file}:{line + doc[: m.start()].count(chr(10))}: {what}")
    assert not problems, "docstrings must be Markdown (see STYLE):\n" + "\n".join(problems)


# --------------------------------------------------------------------------- public names
def public_names() -> dict[str, list[str]]:
    """Public object key -> its public paths (shortest first). Constants are keyed by path."""
    paths: dict[object, list[str]] = {}

    def visit(modname: str, depth: int = 0) -> None:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType):
                if depth < 2 and obj.__name__ == f"{modname}.{name}":
                    visit(obj.__name__, depth + 1)
                continue
            path = f"{modname}.{name}"
            key = id(obj) if callable(obj) else path
            paths.setdefault(key, []).append(path)

    for pkg in PACKAGES:
        visit(pkg)
    for ns in EXTRA_NAMESPACES:
        visit(ns, 1)
    out = {}
    for group in paths.values():
        group = sorted(set(group), key=lambda p: (p.count("."), p))
        out[group[0]] = group
    return out


def api_directives() -> dict[str, str]:
    """`::: path` lines on the API pages -> the page they are on."""
    found = {}
    for page in sorted(API.glob("*.md")):
        for m in re.finditer(r"^::: (\S+)", page.read_text(), re.M):
            found[m.group(1)] = str(page.relative_to(ROOT))
    return found


def test_every_public_name_is_in_the_api_reference() -> None:
    rendered = api_directives()
    missing = []
    for shortest, group in public_names().items():
        if not any(p in rendered for p in group):
            page = f"docs/api/{shortest.rsplit('.', 1)[0]}.md"
            missing.append(f"add `::: {shortest}` to {page}")
    assert not missing, "public names missing from the API reference:\n" + "\n".join(missing)


def test_api_reference_uses_public_paths() -> None:
    public = {p for group in public_names().values() for p in group}
    public |= {*PACKAGES, *EXTRA_NAMESPACES}  # a namespace's own page may render its docstring
    wrong = [f"{page}: ::: {path}" for path, page in api_directives().items() if path not in public]
    assert not wrong, "API pages must render names under a public path:\n" + "\n".join(wrong)


# --------------------------------------------------------------------------- built site
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-5000:]}"
    return out


@pytest.mark.slow
def test_built_site_has_no_raw_roles(site: Path) -> None:
    bad = []
    for page in sorted(site.rglob("*.html")):
        text = page.read_text()
        for pattern in (RAW_ROLE_RE, re.compile(r"\.\. [a-z-]+::"), re.compile("&gt;&gt;&gt; ")):
            if m := pattern.search(text):
                bad.append(
                    f"{page.relative_to(site)}: {text[max(0, m.start() - 60) : m.end() + 60]!r}"
                )
    assert not bad, "raw reStructuredText in the built site:\n" + "\n".join(bad)


@pytest.mark.slow
def test_built_site_has_every_public_name(site: Path) -> None:
    html = "\n".join(p.read_text() for p in (site / "api").rglob("*.html"))
    missing = [
        path
        for path, group in public_names().items()
        if not any(f'id="{p}"' in html for p in group)
    ]
    assert not missing, f"public names without an anchor in the built API reference: {missing}"


@pytest.mark.slow
def test_built_site_renders_math_offline(site: Path) -> None:
    index = (site / "index.html").read_text()
    assert "assets/katex/katex.min.js" in index
    assert not re.search(r"<script[^>]+src=\"https?://", index), "math must not need a CDN"
    assert (site / "assets" / "katex" / "fonts").is_dir()
