"""The near-dedup report: JSON for machines, Markdown for people judging the threshold by eye.

Built from small aggregates (counts, the cluster-size histogram, a few removed pairs), never
from every cluster, so it costs the same for a thousand documents as for a billion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SNIPPET_CHARS = 300


@dataclass(frozen=True)
class RemovedPair:
    """A removed document and the one it duplicates (the survivor, or an indexed document)."""

    removed: str
    kept: str
    jaccard: float  # true Jaccard of their shingle sets
    reason: str  # dedup.near | dedup.near_existing
    removed_text: str = ""
    kept_text: str = ""  # empty when the kept document is in the index (its text is not)


def snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def build_report(
    counts: dict[str, int],
    sizes: dict[int, int],
    examples: list[RemovedPair],
    params: dict[str, Any],
    index: dict[str, Any] | None = None,
) -> dict[str, Any]:
    exact = counts.get("dedup.exact", 0)
    near = counts.get("dedup.near", 0)
    existing = counts.get("dedup.near_existing", 0)
    docs_in = counts.get("documents_in", 0) + exact
    report = {
        "documents_in": docs_in,
        "documents_out": docs_in - exact - near - existing,
        "removed": {
            "exact": exact,
            "near": near,
            "near_existing": existing,
            "identical_shingles": counts.get("identical", 0),
        },
        "documents_without_tokens": counts.get("documents_in", 0)
        - counts.get("documents_sketched", 0),
        "candidate_pairs": counts.get("candidate_pairs", 0),
        "duplicate_pairs": counts.get("duplicate_pairs", 0),
        "clusters": sum(sizes.values()),
        "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())},
        "params": params,
        "examples": [asdict(e) for e in examples],
    }
    if index is not None:
        report["index"] = index
    return report


def to_markdown(report: dict[str, Any]) -> str:
    p = report["params"]
    r = report["removed"]
    lines = [
        "# Near-duplicate removal",
        "",
        f"MinHash-LSH: {p['num_perm']} permutations (seed {p['seed']}), word {p['ngram']}-grams, "
        f"{p['bands']} bands x {p['rows']} rows, Jaccard threshold {p['threshold']}, "
        f"verification: {p['verify']}.",
        "",
        "| | documents |",
        "| --- | ---: |",
        f"| in | {report['documents_in']} |",
        f"| out | {report['documents_out']} |",
        f"| removed: exact duplicates | {r['exact']} |",
        f"| removed: near duplicates | {r['near']} |",
        f"| removed: near duplicates of indexed documents | {r['near_existing']} |",
        f"| of the near duplicates, identical shingle sets | {r['identical_shingles']} |",
        f"| without any token (never near duplicates) | {report['documents_without_tokens']} |",
        "",
        f"Candidate pairs from LSH: {report['candidate_pairs']}; "
        f"duplicate pairs after verification: {report['duplicate_pairs']}; "
        f"clusters: {report['clusters']}.",
        "",
        "## Cluster sizes",
        "",
        "| size | clusters |",
        "| ---: | ---: |",
        *[f"| {k} | {v} |" for k, v in report["cluster_sizes"].items()],
        "",
        "## Removed pairs",
        "",
        "The least similar removed pairs first (the ones that show whether the threshold is "
        "right), then a sample of the rest.",
    ]
    for e in report["examples"]:
        lines += [
            "",
            f"### {e['removed']} ~ {e['kept']}: Jaccard {e['jaccard']:.3f} ({e['reason']})",
            "",
            f"> removed: {e['removed_text']}",
            ">",
            f"> kept: {e['kept_text'] or '(in the index; text not stored)'}",
        ]
    if "index" in report:
        idx = report["index"]
        lines += ["", f"Index {idx['path']}: {idx['documents']} documents in {idx['files']} files."]
    return "\n".join(lines) + "\n"
