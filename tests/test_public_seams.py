"""Tests use the library's public names only (ruff's SLF001 catches `obj._private`; this catches imports)."""

from __future__ import annotations

import re

from conftest import REPO

# Known uses (none left): an entry goes when the name turns public, so the list only ever shrinks.
KNOWN: set[tuple[str, str, str]] = set()


def private_imports() -> set[tuple[str, str, str]]:
    """(test file, module, name) for each private name a test imports or patches by its dotted path; the
    text is searched rather than parsed, so scripts a test writes out for a subprocess count too."""
    found = set()
    for path in sorted((REPO / "tests").rglob("*.py")):
        text = path.read_text()
        for module, grouped, names in re.findall(r"from ((?:ingest|attribution)[\w.]*) import (?:\(([^)]*)\)|([\w, ]+))", text):
            names = grouped or names
            found |= {(path.name, module, n.strip()) for n in names.split(",") if n.strip().startswith("_")}
        for module, name in re.findall(r"[\"']((?:ingest|attribution)[\w.]*)\.(_[a-z]\w*)[\"']", text):
            found.add((path.name, module, name))  # monkeypatch.setattr("pkg.mod._name", …)
    return found


def test_tests_import_no_private_library_names() -> None:
    assert private_imports() - KNOWN == set()


def test_the_known_private_uses_are_still_there() -> None:
    """A known use that is gone must leave the list too (so the list only ever shrinks to nothing)."""
    assert KNOWN - private_imports() == set()
