"""Quality stage: document-level length and language rules, each counted by name.

    PCollection[dict (TEXT_SCHEMA row) | Drop] --Quality(cfg)--> PCollection[dict | Drop]

Drops from earlier stages pass through unchanged, so the stage can sit anywhere after
extraction. The rules are checked in a fixed order and the first that fails names the drop.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from foundation.config import QualityConfig
from foundation.records import Drop

TOO_SHORT = "quality.too_short"
TOO_LONG = "quality.too_long"
LANGUAGE = "quality.language"


def quality_reason(doc: dict, cfg: QualityConfig) -> str | None:
    """The rule ``doc`` fails (a reason constant above), or None when it passes them all.

    OpenWebText dropped documents under 128 tokens; ``min_words`` counts whitespace-separated
    words (``n_words``), which is cheaper than BPE and close to it for English prose.
    """
    if doc["n_words"] < cfg.min_words:
        return TOO_SHORT
    if doc["n_chars"] > cfg.max_chars:
        return TOO_LONG
    if cfg.languages and doc.get("language") not in cfg.languages:
        return LANGUAGE
    return None


def _detail(reason: str, doc: dict, cfg: QualityConfig) -> str:
    if reason == TOO_SHORT:
        return f"{doc['n_words']} words < {cfg.min_words}"
    if reason == TOO_LONG:
        return f"{doc['n_chars']} chars > {cfg.max_chars}"
    return f"language {doc.get('language')!r}"


def apply_quality(element: dict | Drop, cfg: QualityConfig) -> dict | Drop:
    """The document, or a Drop naming the failed rule; Drops pass through."""
    if isinstance(element, Drop):
        return element
    reason = quality_reason(element, cfg)
    if reason is None:
        return element
    Metrics.counter("quality", reason).inc()
    detail = _detail(reason, element, cfg)
    url = element.get("url", "")
    return Drop(reason, where=element["id"], detail=detail, id=element["id"], url=url)


class Quality(beam.PTransform):
    """PCollection[dict | Drop] -> PCollection[dict | Drop]: the quality rules of ``cfg``."""

    def __init__(self, cfg: QualityConfig) -> None:
        super().__init__()
        if not isinstance(cfg, QualityConfig):
            raise ValueError(f"Quality needs a QualityConfig, got {type(cfg).__name__}")
        self.cfg = cfg

    def expand(self, docs):
        return docs | "Rules" >> beam.Map(apply_quality, self.cfg)
