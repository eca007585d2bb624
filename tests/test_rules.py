"""The declared rules: every fixed rule name a stage produces is declared, and the summary lists
each declared rule, zeros included."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.rules import (
    PAGES_PHASE,
    TOTALS,
    URL_PHASE,
    fetch_failures,
    largest,
    with_zeros,
)

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = "source|submission|url|fetch|extract|quality|dedup"
PRODUCED = (
    (re.compile(rf'"((?:{PREFIXES})\.[a-z_]+)"'), "{}"),  # a rule named whole: "extract.empty"
    (re.compile(r'FetchFailure\(\s*"([a-z_]+)"'), "fetch.{}"),  # fetch.<reason>
    (re.compile(r'reason = "([a-z_]+)" if .* else "([a-z_]+)"'), "fetch.{}"),
    (re.compile(r'URLError\(\s*"([a-z_]+)"'), "url.{}"),  # url.<reason>
)


def _produced() -> dict[str, str]:
    """Every fixed rule name in the stages' sources, with the file that produces it."""
    found = {}
    for package in ("pipeline", "dedup"):
        for path in sorted((ROOT / package).glob("*.py")):
            if path.name == "rules.py":  # the declarations themselves
                continue
            text = path.read_text(encoding="utf-8")
            for pattern, template in PRODUCED:
                for match in pattern.finditer(text):
                    for reason in match.groups():
                        found[template.format(reason)] = path.name
    return found


def test_every_rule_a_stage_produces_is_declared():
    produced = _produced()
    assert {"extract.timeout", "fetch.robots", "url.not_http", "fetch.connection"} <= set(produced)
    missing = {r: f for r, f in produced.items() if r not in (*URL_PHASE, *PAGES_PHASE, *TOTALS)}
    assert missing == {}


def test_declared_rules_are_listed_with_zeros_then_the_others():
    counts = {"fetch.http_404": 2, "extract.empty": 1, "fetch.urls": 3}
    listed = with_zeros(counts, PAGES_PHASE)
    assert list(listed)[: len(PAGES_PHASE)] == list(PAGES_PHASE)
    assert listed["extract.timeout"] == 0 and listed["extract.empty"] == 1
    assert list(listed)[len(PAGES_PHASE) :] == ["fetch.http_404", "fetch.urls"]


def test_fetch_failures_count_every_failed_outcome_but_not_the_total():
    counts = {"fetch.urls": 10, "fetch.http_404": 2, "fetch.robots": 1, "extract.empty": 3}
    assert fetch_failures(counts) == 3
    assert largest(counts, "fetch.") == "fetch.http_404 2, fetch.robots 1"
    assert largest({"fetch.urls": 4}) == "no rule removed anything"
