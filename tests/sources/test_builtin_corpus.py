import itertools
import sys
from pathlib import Path

from labeler.sources import builtin_corpus


def test_reads_sources_without_importing_them():
    before = set(sys.modules)
    documents = list(itertools.islice(builtin_corpus.iter_documents(), 3000))
    assert len(documents) == 3000
    assert not {"antigravity", "this", "tkinter", "idlelib"} & (set(sys.modules) - before)


def test_starts_with_pydoc_topics_in_name_order():
    first = next(builtin_corpus.iter_documents())
    assert first.startswith('Assert statements are a convenient way to insert debugging assertions')


def test_library_before_its_tests_in_sorted_order():
    paths = builtin_corpus.stdlib_sources()
    is_test = ["test" in p.parts or "tests" in p.parts or "idle_test" in p.parts for p in paths]
    assert is_test.index(True) > 100 and all(is_test[is_test.index(True):])
    library = [p for p, t in zip(paths, is_test) if not t]
    assert library == sorted(library, key=Path.as_posix)
    assert not any("site-packages" in p.parts for p in paths)


def test_keeps_prose_drops_code_and_repeats(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        '"""Module summary that reads like English prose.\n\n'
        '>>> import mod\n>>> mod.run()\n\n'
        '    indented_code_block(x=1)\n"""\n'
        "# A comment block that explains why the code\n# below is written this way.\n"
        "def f():\n    '''Module summary that reads like English prose.'''\n"
        "x = 1  # trailing comments are not prose blocks\n"
    )
    seen: set[str] = set()
    kept = [builtin_corpus._readable(t, seen) for t in builtin_corpus.prose_of(source)]
    assert kept == [
        "Module summary that reads like English prose.",
        "A comment block that explains why the code below is written this way.",
        "",  # the function repeats the module's paragraph, kept once
    ]
