"""The test tree's own rules, which pytest only reports as a collection error in some orders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename():
    """tests/ has no packages: modules are imported by basename, and a second one of a name fails to collect."""
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py" and ".venv" not in p.parts)
    assert [name for name, n in names.items() if n > 1] == []


def test_nothing_imports_from_conftest():
    """Which conftest.py `import conftest` finds depends on the folders collected first: import helper modules
    (clusters.py, databases.py, waiting.py) instead."""
    patterns = ("from " + "conftest import", "\nimport " + "conftest")  # spelled apart so this file is no offender
    offenders = [str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py")
                 if any(pattern in p.read_text() for pattern in patterns)]
    assert offenders == []
