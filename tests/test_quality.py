"""Quality rules: each rule by name, in a fixed order; the PTransform counts as data."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from foundation.config import ConfigError, QualityConfig
from foundation.records import Drop
from pipeline.quality import LANGUAGE, TOO_LONG, TOO_SHORT, Quality, apply_quality, quality_reason


def doc(
    n_words: int = 200, n_chars: int = 1200, language: str | None = "en", id: str = "d"
) -> dict:
    return {"id": id, "n_words": n_words, "n_chars": n_chars, "language": language}


@pytest.mark.parametrize(
    ("document", "cfg", "reason"),
    [
        (doc(), QualityConfig(), None),
        (doc(n_words=128), QualityConfig(), None),  # the minimum itself passes
        (doc(n_words=127), QualityConfig(), TOO_SHORT),
        (doc(n_words=0, n_chars=0), QualityConfig(), TOO_SHORT),
        (doc(n_words=3), QualityConfig(min_words=0), None),
        (doc(n_chars=1_000_000), QualityConfig(), None),
        (doc(n_chars=1_000_001), QualityConfig(), TOO_LONG),
        (doc(n_chars=5000), QualityConfig(max_chars=4999), TOO_LONG),
        (doc(n_words=5, n_chars=5000), QualityConfig(max_chars=100), TOO_SHORT),  # first rule wins
        (doc(language="de"), QualityConfig(languages=("en",)), LANGUAGE),
        (doc(language="de"), QualityConfig(languages=("en", "de")), None),
        (doc(language=None), QualityConfig(languages=("en",)), LANGUAGE),  # unknown is not "en"
        (doc(language=None), QualityConfig(), None),  # no language filter: unknown passes
    ],
)
def test_quality_reason(document, cfg, reason):
    assert quality_reason(document, cfg) == reason


def test_drop_names_the_document_and_the_numbers():
    document = doc(n_words=12, id="abc")
    out = apply_quality(document, QualityConfig())
    url = document.get("url", "")
    assert out == Drop(TOO_SHORT, where="abc", detail="12 words < 128", id="abc", url=url)
    earlier = Drop("extract.empty", where="https://x.example/")
    assert apply_quality(earlier, QualityConfig()) is earlier


@pytest.mark.parametrize(("field", "value"), [("min_words", -1), ("max_chars", 0)])
def test_bad_settings_name_field_and_value(field, value):
    with pytest.raises(ConfigError, match=f"quality.{field}={value}"):
        QualityConfig(**{field: value})


def _label(element: dict | Drop) -> str:
    return element.reason if isinstance(element, Drop) else element["id"]


def test_quality_transform():
    cfg = QualityConfig(min_words=50, max_chars=10_000, languages=("en", "fr"))
    inputs = [
        doc(id="ok"),
        doc(n_words=49, id="short"),
        doc(n_chars=10_001, id="long"),
        doc(language="pl", id="polish"),
        doc(language="fr", id="french"),
        Drop("extract.timeout", where="https://slow.example/"),
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(inputs) | Quality(cfg) | beam.Map(_label)
        assert_that(
            out, equal_to(["ok", TOO_SHORT, TOO_LONG, LANGUAGE, "french", "extract.timeout"])
        )


def test_quality_needs_its_config():
    with pytest.raises(ValueError, match="QualityConfig"):
        Quality(None)
