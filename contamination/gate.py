"""The trainer's gate: refuse shards whose contamination report is missing, stale or too high.

The report for shards in ``RUN/shards`` is ``RUN/contamination/report.json`` by default (what
``webtext contamination check --train RUN/shards`` writes). It records the shard manifest's
checksum; a report whose checksum differs from ``Manifest.load(shards_dir).checksum`` was made
for other shards and is stale.

    result = check_gate("runs/x/shards", max_overlap_pct=cfg.contamination.max_overlap_pct)

raises :class:`ContaminationGateError` unless the report is present, current and every test
set's overlap is at most ``max_overlap_pct``; with ``allow=True`` it returns a
:class:`GateResult` with ``ok=False`` and the reason instead. Trainers record the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from foundation import shards, storage
from foundation.config import ContaminationConfig
from foundation.errors import WebtextError
from foundation.layout import RunLayout

DEFAULT_MAX_OVERLAP_PCT = ContaminationConfig().max_overlap_pct


class ContaminationGateError(WebtextError, RuntimeError):
    """The shards have no current contamination report, or it is over the threshold."""


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str
    report_path: str
    report_checksum: str | None
    """sha256 of the report file (None when it is missing)."""
    manifest_checksum: str
    worst_test_set: str | None
    worst_overlap_pct: float | None
    max_overlap_pct: float
    allowed: bool = False
    """True when the gate failed and ``allow`` let training go ahead."""


def default_report_path(shards_dir: str) -> str:
    """``RUN/contamination/report.json`` for ``RUN/shards``: the report of the run they are in."""
    return RunLayout.at(storage.parent(shards_dir)).contamination_report


def check_gate(
    shards_dir: str,
    report_path: str | None = None,
    max_overlap_pct: float = DEFAULT_MAX_OVERLAP_PCT,
    allow: bool = False,
) -> GateResult:
    """Decide whether the shards may be trained on (see the module docstring)."""
    manifest_checksum = shards.Manifest.load(shards_dir).checksum
    path = report_path or default_report_path(shards_dir)
    fix = (
        f"run `webtext contamination check --train {shards_dir} --test NAME=PATH ... "
        f"--out {path.rsplit('/', 1)[0]}`, or allow it explicitly"
    )

    def result(ok: bool, reason: str, digest: str | None = None, worst=(None, None)) -> GateResult:
        res = GateResult(
            ok, reason, path, digest, manifest_checksum, worst[0], worst[1], max_overlap_pct,
            allowed=not ok and allow,
        )  # fmt: skip
        if not ok and not allow:
            raise ContaminationGateError(reason)
        return res

    if not storage.exists(path):
        return result(False, f"{path}: no contamination report for {shards_dir}; {fix}")
    digest = storage.sha256_file(path)
    try:
        data = json.loads(storage.read_text(path))
        recorded = data.get("manifest_checksum")
        sets = {k: float(v["overlap_pct"]) for k, v in data["test_sets"].items()}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        return result(False, f"{path}: not a contamination report ({e!r}); {fix}", digest)
    if recorded != manifest_checksum:
        return result(
            False,
            f"{path}: stale report: made for shards with manifest checksum {str(recorded)[:12]}, "
            f"{shards_dir} has {manifest_checksum[:12]}; {fix}",
            digest,
        )
    if not sets:
        return result(False, f"{path}: the report checks no test sets; {fix}", digest)
    worst = max(sets, key=lambda k: sets[k])
    if sets[worst] > max_overlap_pct:
        return result(
            False,
            f"{path}: test set {worst!r} overlaps the shards by {sets[worst]:.2f}% > "
            f"max_overlap_pct={max_overlap_pct}; decontaminate (`webtext contamination "
            "decontaminate`), raise the threshold, or allow it explicitly",
            digest,
            (worst, sets[worst]),
        )
    return result(
        True,
        f"{worst!r} overlap {sets[worst]:.2f}% <= {max_overlap_pct}",
        digest,
        (worst, sets[worst]),
    )
