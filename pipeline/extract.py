"""Extraction stage: fetched pages to document rows (main text, title, date, language).

    PCollection[FetchResult] --Extract(cfg)--> PCollection[dict (TEXT_SCHEMA row) | Drop]

:class:`Extract` runs :func:`pipeline.extraction.extract_document` in a persistent child
process per DoFn instance (:mod:`pipeline.sandbox`), so that a pathological page that keeps
trafilatura busy past ``cfg.timeout_s`` is killed (``extract.timeout``) instead of hanging its
worker, and a crash in C code costs one page (``extract.crash``) instead of the job.
"""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline import extraction
from pipeline.extraction import CRASH, ERROR, TIMEOUT, extract_document
from pipeline.records import Drop, FetchResult
from pipeline.sandbox import RemoteError, Sandbox, SandboxCrash, SandboxTimeout
from webtext.config import ExtractConfig

log = logging.getLogger(__name__)


class _ExtractFn(beam.DoFn):
    """Runs :func:`extract_document` in this instance's sandbox; counts and logs the drops."""

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self._sandbox: Sandbox | None = None
        self._logged: set[tuple[str, str]] = set()

    def setup(self) -> None:
        module = extraction.__name__
        self._sandbox = Sandbox(f"{module}:extract_document", warm_up=f"{module}:warm_up")
        self._sandbox.start()
        self._logged = set()

    def _isolated(self, result: FetchResult) -> dict | Drop:
        assert self._sandbox is not None
        url = result.final_url or result.candidate.url
        try:
            return self._sandbox.call(result, self.cfg, timeout_s=self.cfg.timeout_s)
        except SandboxTimeout:
            return Drop(TIMEOUT, where=url, detail=f"over {self.cfg.timeout_s:g} s")
        except SandboxCrash as e:
            return Drop(CRASH, where=url, detail=str(e))
        except RemoteError as e:
            return Drop(ERROR, where=url, detail=e.kind)

    def process(self, result: FetchResult):
        out = self._isolated(result) if result.ok else extract_document(result, self.cfg)
        if isinstance(out, Drop):
            Metrics.counter("extract", out.reason).inc()
            if out.reason in (ERROR, TIMEOUT, CRASH):
                kind = (out.reason, out.detail)
                if kind not in self._logged:
                    self._logged.add(kind)
                    log.warning("%s (%s) at %s; further ones are only counted", *kind, out.where)
        else:
            Metrics.counter("extract", "documents").inc()
        yield out

    def teardown(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()


class Extract(beam.PTransform):
    """PCollection[FetchResult] -> PCollection[dict | Drop]: main text and metadata per page."""

    def __init__(self, cfg: ExtractConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ExtractConfig):
            raise ValueError(f"Extract needs an ExtractConfig, got {type(cfg).__name__}")
        self.cfg = cfg

    def expand(self, pages):
        return pages | "Extract" >> beam.ParDo(_ExtractFn(self.cfg))
