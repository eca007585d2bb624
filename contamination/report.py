"""Write a contamination :class:`Report` for machines and for people.

Output files in one directory: ``report.json`` (everything, for the trainer's gate and for
tools), ``report.md`` (the table and per-set detail) and ``report.html`` (self-contained: inline
CSS and SVG charts, no scripts or external assets: a bar chart of overlap per test set and a
histogram of per-document overlap for each set).
"""

from __future__ import annotations

import html
import json
from typing import Any

from contamination.check import Report
from foundation import storage

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def table_rows(report: Report) -> list[list[str]]:
    rows = [["test set", "docs", f"{report.n}-grams", "found", "overlap %", "expected FP"]]
    for r in report.test_sets.values():
        rows.append(
            [
                r.name,
                str(r.docs),
                str(r.ngrams),
                str(r.hits),
                f"{r.overlap_pct:.2f}",
                f"{r.expected_false_positives:.2g}",
            ]
        )
    return rows


def format_table(report: Report) -> str:
    """The plain-text table the CLI prints."""
    rows = table_rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    f = report.filter
    lines.append(
        f"filter: {f['bytes'] / 1e6:.1f} MB, ~{f.get('items', 0)} distinct {report.n}-grams, "
        f"estimated false-positive rate {f['estimated_fp_rate']:.2g} "
        f"(target {f.get('target_fp_rate', 0):.2g})"
    )
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    rows = table_rows(report)
    out = [f"# Contamination report ({report.n}-grams)", ""]
    out.append("| " + " | ".join(rows[0]) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|")
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    f, t = report.filter, report.train
    out += [
        "",
        f"Training side: {t.get('kind', '?')} {', '.join(t.get('paths', []))} "
        f"(checksum `{t.get('checksum', '')[:16]}`), {f.get('docs', 0)} documents, "
        f"{f.get('ngrams', 0)} n-grams, ~{f.get('items', 0)} distinct.",
        f"Filter: {f['bytes']} bytes ({f['memory_ratio']:.2f}x a standard Bloom filter at the "
        f"same rate), fill {f['fill_ratio']:.3f}, estimated false-positive rate "
        f"{f['estimated_fp_rate']:.3g} (target {f.get('target_fp_rate', 0):.3g}).",
    ]
    for r in report.test_sets.values():
        d = r.per_document
        above = ", ".join(f"> {k}%: {v:.1%}" for k, v in d["above_pct_share"].items())
        out += [
            "",
            f"## {r.name}",
            "",
            f"`{r.path}`: {r.docs} documents ({r.docs_with_ngrams} with at least one n-gram), "
            f"{r.ngrams} n-grams, {r.hits} found: **{r.overlap_pct:.2f}%**; expected false "
            f"positives {r.expected_false_positives:.2g}.",
            "",
            f"Per document: median {d['median_pct']:.2f}%, mean {d['mean_pct']:.2f}%, "
            f"no overlap {d['zero_overlap_share']:.1%}; {above}.",
        ]
        if r.top_documents:
            out += [
                "",
                "| document | n-grams | found | overlap % | text |",
                "|---|---:|---:|---:|---|",
            ]
            for doc in r.top_documents:
                preview = doc.preview[:80].replace("|", "\\|")
                cells = [
                    doc.doc_id,
                    str(doc.ngrams),
                    str(doc.hits),
                    f"{doc.overlap_pct:.1f}",
                    preview,
                ]
                out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _svg_bars(labels: list[str], values: list[float], title: str, unit: str) -> str:
    """A vertical bar chart as a standalone SVG string (no scripts, no external assets)."""
    w, h, left, bottom, top = 560, 240, 48, 60, 28
    n = max(len(values), 1)
    vmax = max([*values, 1e-9])
    slot = (w - left - 10) / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - 10}" y2="{h - bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#333"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="10">'
        f"{vmax:.3g}{unit}</text>",
        f'<text x="{left - 4}" y="{h - bottom}" text-anchor="end" font-size="10">0</text>',
    ]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        bh = (h - bottom - top) * (v / vmax)
        x = left + i * slot + slot * 0.15
        y = h - bottom - bh
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bh:.1f}" '
            f'fill="#4c72b0"><title>{html.escape(label)}: {v:.4g}{unit}</title></rect>'
        )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{h - bottom + 14}" text-anchor="middle" '
            f'font-size="10">{html.escape(label[:14])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: Report) -> str:
    names = list(report.test_sets)
    overlaps = [report.test_sets[k].overlap_pct for k in names]
    header = "".join(f"<th>{html.escape(c)}</th>" for c in table_rows(report)[0])
    body = [
        f"<h1>Contamination report ({report.n}-grams)</h1>",
        _svg_bars(names, overlaps, "n-gram overlap per test set", "%"),
        f"<table><tr>{header}</tr>",
    ]
    for row in table_rows(report)[1:]:
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    body.append("</table>")
    f = report.filter
    body.append(
        f"<p>Filter: {f['bytes']} bytes, {f['memory_ratio']:.2f}x a standard Bloom filter; "
        f"estimated false-positive rate {f['estimated_fp_rate']:.3g}.</p>"
    )
    for r in report.test_sets.values():
        hist = r.per_document["histogram"]
        edges = hist["edges_pct"]
        labels = ["0"] + [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)]
        counts = [hist["zero"], hist["counts"][0] - hist["zero"], *hist["counts"][1:]]
        body += [
            f"<h2>{html.escape(r.name)}: {r.overlap_pct:.2f}%</h2>",
            _svg_bars(labels, [float(c) for c in counts], "documents by overlap %", ""),
        ]
        if r.top_documents:
            body.append("<table><tr><th>document</th><th>overlap %</th><th>text</th></tr>")
            for d in r.top_documents:
                body.append(
                    f"<tr><td>{html.escape(d.doc_id)}</td><td>{d.overlap_pct:.1f}</td>"
                    f"<td>{html.escape(d.preview)}</td></tr>"
                )
            body.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Contamination report</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_reports(report: Report, out_dir: str) -> dict[str, str]:
    """Write report.json, report.md and report.html into ``out_dir``; returns their paths."""
    data: dict[str, Any] = report.to_dict()
    paths = {
        "json": storage.join(out_dir, REPORT_JSON),
        "md": storage.join(out_dir, REPORT_MD),
        "html": storage.join(out_dir, REPORT_HTML),
    }
    storage.write_text(paths["json"], json.dumps(data, indent=2, sort_keys=True) + "\n")
    storage.write_text(paths["md"], to_markdown(report))
    storage.write_text(paths["html"], to_html(report))
    return paths
