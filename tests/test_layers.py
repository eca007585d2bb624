"""The packages keep their layers: every import points down, or along an allowed stage arrow.

    webtext/        the application (CLI, commands, run, plan, status, demo)
    pipeline/ dedup/ contamination/ trainer/     the stages
    foundation/     config, storage, shards, elements, run layout, errors

Read from the source with ``ast``, so imports inside functions and under TYPE_CHECKING count
too: an arrow is an arrow, whenever it is followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FOUNDATION = "foundation"
STAGES = ("pipeline", "dedup", "contamination", "trainer")
APPLICATION = "webtext"

ALLOWED: dict[str, set[str]] = {
    FOUNDATION: {FOUNDATION},
    "pipeline": {FOUNDATION, "pipeline", "dedup"},
    "dedup": {FOUNDATION, "dedup"},
    "contamination": {FOUNDATION, "contamination"},
    "trainer": {FOUNDATION, "trainer", "contamination"},
    APPLICATION: {FOUNDATION, *STAGES, APPLICATION},
}
"""Which first-party packages each package may import (itself included)."""


def imported_packages(source: str) -> set[tuple[str, int]]:
    """First-party top-level packages a module imports, with the line of each import."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(n.split(".")[0], node.lineno) for n in names if n.split(".")[0] in ALLOWED}
    return found


def violations(package: str, path: Path, source: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for target, line in sorted(imported_packages(source))
        if target not in ALLOWED[package]
    ]


def test_every_import_points_down_or_along_an_allowed_arrow() -> None:
    found = []
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            found += violations(package, path, path.read_text())
    assert found == [], "imports that break the layers:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("foundation", "from pipeline.ingest import run_ingest"),
        ("dedup", "def f():\n    import pipeline.ingest\n"),
        ("contamination", "from trainer import model"),
        ("pipeline", "import webtext.cli"),
        ("trainer", "from dedup.minhash import MinHasher"),
    ],
)
def test_an_arrow_up_or_between_unrelated_stages_is_reported(package: str, source: str) -> None:
    assert violations(package, ROOT / package / "x.py", source)


def test_every_package_is_in_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(ALLOWED)
