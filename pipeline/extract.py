"""Extraction stage: fetched pages to document rows (main text, title, date, language).

    PCollection[list[FetchResult]] --Extract(cfg)--> PCollection[dict (TEXT_SCHEMA row) | Drop]

:class:`Extract` runs :func:`pipeline.extraction.extract_document` in persistent child
processes (``cfg.processes`` per DoFn instance, forked from one warmed-up zygote:
:mod:`pipeline.sandbox`), so that a pathological page that keeps trafilatura busy past
``cfg.timeout_s`` is killed (``extract.timeout``) instead of hanging its worker, and a crash in
C code costs one page (``extract.crash``) instead of the job. Pages come in lists (a fetch
unit's, :data:`pipeline.fetch.PAGE_BATCH` at a time): a list's pages are extracted in parallel
and all leave within its own call.
"""

from __future__ import annotations

import logging
import select

import apache_beam as beam
from apache_beam.metrics import Metrics

from foundation.config import ExtractConfig
from foundation.records import Drop, FetchResult
from pipeline import extraction
from pipeline.extraction import CRASH, ERROR, TIMEOUT, extract_document
from pipeline.sandbox import RemoteError, Sandbox, SandboxCrash, SandboxTimeout, Zygote

log = logging.getLogger(__name__)


class _ExtractFn(beam.DoFn):
    """Runs :func:`extract_document` on a list of pages in ``cfg.processes`` sandboxes at once;
    counts the drops.

    Why more than one: a worker only waits while its child works, so with one child the
    worker's own work (fetching, recording, Beam's) and its child's take turns; and a runner
    splits a stage's input between its workers up front, so the worker whose share runs longest
    finishes alone, on one core, unless it has more children than one. Pages go to a free
    child; the worker thread waits on all busy ones at once (``select``, no threads), and results
    leave as they finish. Every page of a list leaves before its ``process`` call returns:
    nothing is held over to ``finish_bundle``, whose output some runners lose (Dask's), so every
    runner extracts with the same parallelism.
    """

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self._zygote: Zygote | None = None
        self._idle: list[Sandbox] = []
        self._busy: dict[Sandbox, FetchResult] = {}
        self._logged: set[tuple[str, str]] = set()

    def setup(self) -> None:
        self._zygote, self._idle, self._busy = None, [], {}
        self._logged = set()

    def _start(self) -> None:
        """The zygote and ``cfg.processes`` children, on a bundle's first page to extract."""
        if self._zygote is not None:
            return
        module = extraction.__name__
        self._zygote = Zygote(f"{module}:extract_document", warm_up=f"{module}:warm_up")
        self._idle = [Sandbox(self._zygote) for _ in range(self.cfg.processes)]
        for sandbox in self._idle:
            sandbox.start()

    def _close(self) -> None:
        for sandbox in [*self._idle, *self._busy]:
            sandbox.close()
        self._idle, self._busy = [], {}
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None

    def process(self, pages: list[FetchResult]):
        try:
            for result in pages:
                if not result.ok:  # nothing to extract: the fetch's own outcome goes on
                    yield self._counted(extract_document(result, self.cfg))
                    continue
                self._start()
                while not self._idle:  # every child busy: wait for one
                    yield from self._finished(wait=True)
                sandbox = self._idle.pop()
                try:
                    sandbox.send(result, self.cfg, timeout_s=self.cfg.timeout_s)
                except (SandboxTimeout, SandboxCrash) as e:
                    self._idle.append(sandbox)
                    yield self._counted(_dropped(e, result, self.cfg.timeout_s))
                else:
                    self._busy[sandbox] = result
                yield from self._finished(wait=False)
            while self._busy:
                yield from self._finished(wait=True)
        finally:  # a failed call leaves no child busy with a page of it
            for sandbox in list(self._busy):
                del self._busy[sandbox]
                sandbox.close()
                self._idle.append(sandbox)

    def _finished(self, wait: bool):
        """The results that are ready (a ready one is never a timeout, however late it is read).
        With ``wait``, first waits until one is, or until a child's time on its page may have
        run out (then that page's drop); none, if a loaded machine gave that child less CPU."""
        timeout = max(0.0, min(s.remaining() for s in self._busy)) if wait else 0
        ready, _, _ = select.select(list(self._busy), [], [], timeout)
        expired = [s for s in self._busy if s not in ready and s.remaining() <= 0] if wait else []
        for sandbox in [*ready, *expired]:
            result = self._busy.pop(sandbox)
            try:
                out = sandbox.receive()
            except (SandboxTimeout, SandboxCrash, RemoteError) as e:
                out = _dropped(e, result, self.cfg.timeout_s)
            self._idle.append(sandbox)
            yield self._counted(out)

    def _counted(self, out: dict | Drop) -> dict | Drop:
        if isinstance(out, Drop):
            Metrics.counter("extract", out.reason).inc()
            if out.reason in (ERROR, TIMEOUT, CRASH):
                kind = (out.reason, out.detail)
                if kind not in self._logged:
                    self._logged.add(kind)
                    log.warning("%s (%s) at %s; further ones are only counted", *kind, out.where)
        else:
            Metrics.counter("extract", "documents").inc()
        return out

    def finish_bundle(self) -> None:
        """End the children and the zygote (~0.4 GB per worker): Beam keeps a DoFn until its
        worker exits, and the stages after extraction (dedup, the shard writer) would otherwise
        run beside them idle. A later bundle starts a fresh zygote (about a second)."""
        self._close()

    def teardown(self) -> None:
        self._close()


def _dropped(error: Exception, result: FetchResult, timeout_s: float) -> Drop:
    """The Drop for a page whose sandbox call failed."""
    url = result.final_url or result.candidate.url
    if isinstance(error, SandboxTimeout):
        drop = Drop(TIMEOUT, where=url, detail=f"over {timeout_s:g} s")
    elif isinstance(error, SandboxCrash):
        drop = Drop(CRASH, where=url, detail=str(error))
    else:
        assert isinstance(error, RemoteError)
        drop = Drop(ERROR, where=url, detail=error.kind)
    return extraction.identified(drop, result)


class Extract(beam.PTransform):
    """PCollection[list[FetchResult]] -> PCollection[dict | Drop]: main text and metadata per
    page."""

    def __init__(self, cfg: ExtractConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ExtractConfig):
            raise ValueError(f"Extract needs an ExtractConfig, got {type(cfg).__name__}")
        self.cfg = cfg

    def expand(self, pages):
        return pages | "Extract" >> beam.ParDo(_ExtractFn(self.cfg))
