"""An English corpus every Python 3.11+ has with nothing installed: pydoc topics, stdlib prose.

Why: the demo and the tests must run offline on a new machine. `pydoc_data.topics` (the language
reference behind `help()`, ~50k tokens once code samples are dropped) comes first, then the docstrings
and comment blocks of the standard library's own .py sources in sorted path order, its test suite
last (~1M MiniLM tokens in all on CPython 3.11). Sources are parsed with `ast` and never imported:
importing arbitrary stdlib modules has side effects (`antigravity` opens a browser, `this` prints).
Code samples, doctest lines and reST underlines are dropped, each paragraph is kept once; every topic,
docstring or comment block is one document. The text differs between Python versions, which the
dataset's content hash records.
"""

from __future__ import annotations

import ast
import re
import sysconfig
import warnings
from pathlib import Path
from typing import Iterator

BUILTIN_NAME = "builtin:python-docs"
BUILTIN_ALIASES = ("builtin", BUILTIN_NAME)

# Installed packages are not the standard library; test folders are read last (terser prose).
_SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
_TEST_DIRS = frozenset({"test", "tests", "idle_test"})
_MIN_WORDS = 4
_MIN_PROSE_RATIO = 0.8  # share of letters, spaces and plain punctuation in a kept paragraph
_PROSE_CHARS = re.compile(r"[A-Za-z\s.,;:'\"()\-]")
_UNDERLINE = re.compile(r"^\s*([=*\-~^#+`])\1{2,}\s*$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def iter_documents() -> Iterator[str]:
    """Documents in a fixed order: pydoc topics by name, then stdlib docstrings by path."""
    seen: set[str] = set()
    for text in _pydoc_topics():
        document = _readable(text, seen)
        if document:
            yield document
    for path in stdlib_sources():
        for text in prose_of(path):
            document = _readable(text, seen)
            if document:
                yield document


def _pydoc_topics() -> Iterator[str]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield topics[name]


def stdlib_sources() -> list[Path]:
    """Standard library .py files: library code by sorted path, then its tests by sorted path."""
    root = Path(sysconfig.get_paths()["stdlib"])

    def folders(path: Path) -> set[str]:
        return set(path.relative_to(root).parts[:-1])

    paths = [p for p in root.rglob("*.py") if not _SKIPPED_DIRS & folders(p) and p.is_file()]
    return sorted(paths, key=lambda p: (bool(_TEST_DIRS & folders(p)), p.as_posix()))


def prose_of(path: Path) -> list[str]:
    """Docstrings and full-line comment blocks of one source file, in source order."""
    source = path.read_bytes()
    found = docstrings_of(source, path) + comment_blocks_of(source.decode("utf-8", errors="replace"))
    return [text for _, text in sorted(found, key=lambda item: item[0])]


def docstrings_of(source: bytes, path: Path) -> list[tuple[int, str]]:
    """(line, docstring) of the module and every class and function.

    A file that does not parse (e.g. Python 2 fixtures in lib2to3's tests) contributes only its
    comments: the corpus is a best-effort collection of prose, and its content hash records exactly
    what it held.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for old escape sequences in stdlib sources
            tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError):
        return []
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    found = []
    for node in nodes:
        doc = ast.get_docstring(node, clean=True)
        if doc:
            found.append((getattr(node, "lineno", 0), doc))
    return found


def comment_blocks_of(source: str) -> list[tuple[int, str]]:
    """(first line, text) of each run of consecutive full-line `#` comments."""
    blocks: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("#!"):
            if not current:
                start = number
            current.append(stripped.lstrip("#").strip())
        elif current:
            blocks.append((start, " ".join(c for c in current if c)))
            current = []
    if current:
        blocks.append((start, " ".join(c for c in current if c)))
    return blocks


def _readable(text: str, seen: set[str]) -> str:
    """Keep prose paragraphs (each once across the corpus); drop code, doctests and rules."""
    kept = []
    for block in _PARAGRAPH_BREAK.split(text):
        lines = [ln for ln in block.split("\n") if ln.strip() and not _UNDERLINE.match(ln)]
        if not lines or lines[0][:1].isspace() or any(ln.lstrip().startswith((">>>", "...", "$ ")) for ln in lines):
            continue
        paragraph = " ".join(" ".join(lines).split())
        if len(paragraph.split()) < _MIN_WORDS or paragraph in seen:
            continue
        if len(_PROSE_CHARS.findall(paragraph)) < _MIN_PROSE_RATIO * len(paragraph):
            continue
        seen.add(paragraph)
        kept.append(paragraph)
    return "\n\n".join(kept)
