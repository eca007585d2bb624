"""Extraction stage: fetched pages to document rows (main text, title, date, language).

    PCollection[FetchResult] --Extract(cfg)--> PCollection[dict (TEXT_SCHEMA row) | Drop]

:class:`Extract` runs :func:`pipeline.extraction.extract_document` in persistent child
processes (``cfg.processes`` per DoFn instance, :mod:`pipeline.sandbox`), so that a
pathological page that keeps trafilatura busy past ``cfg.timeout_s`` is killed
(``extract.timeout``) instead of hanging its worker, and a crash in C code costs one page
(``extract.crash``) instead of the job.
"""

from __future__ import annotations

import logging
import queue
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from pipeline import extraction
from pipeline.extraction import CRASH, ERROR, TIMEOUT, extract_document
from pipeline.records import Drop, FetchResult
from pipeline.sandbox import RemoteError, Sandbox, SandboxCrash, SandboxTimeout
from webtext.config import ExtractConfig

log = logging.getLogger(__name__)


class _ExtractFn(beam.DoFn):
    """Runs :func:`extract_document` in ``cfg.processes`` sandboxes at once; counts the drops.

    Why more than one: the thread that calls a sandbox only waits while its child works, so with
    one child a worker's own work (fetching, recording, Beam's) and its child's take turns; and a
    runner splits a stage's input between its workers up front, so the worker whose share runs
    longest finishes alone, on one core, unless it has more children than one. Pages go to the
    first free child; results leave as they finish, each in its input's window, and the last ones
    when the bundle ends.
    """

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self._calls: ThreadPoolExecutor | None = None
        self._sandboxes: list[Sandbox] = []
        self._free: queue.SimpleQueue[Sandbox] | None = None  # made in setup: not picklable
        self._pending: list[tuple[Future, object, object]] = []
        self._logged: set[tuple[str, str]] = set()

    def setup(self) -> None:
        module = extraction.__name__
        n = self.cfg.processes
        self._calls = ThreadPoolExecutor(n, thread_name_prefix="extract")
        self._sandboxes = [
            Sandbox(f"{module}:extract_document", warm_up=f"{module}:warm_up") for _ in range(n)
        ]
        self._free = queue.SimpleQueue()
        for sandbox in self._calls.map(_started, self._sandboxes):  # the children import at once
            self._free.put(sandbox)
        self._logged = set()

    def start_bundle(self) -> None:
        self._pending = []

    def _isolated(self, result: FetchResult) -> dict | Drop:
        """One page in the first free sandbox (runs on one of ``_calls``' threads)."""
        assert self._free is not None
        sandbox = self._free.get()
        url = result.final_url or result.candidate.url
        try:
            return sandbox.call(result, self.cfg, timeout_s=self.cfg.timeout_s)
        except SandboxTimeout:
            return Drop(TIMEOUT, where=url, detail=f"over {self.cfg.timeout_s:g} s")
        except SandboxCrash as e:
            return Drop(CRASH, where=url, detail=str(e))
        except RemoteError as e:
            return Drop(ERROR, where=url, detail=e.kind)
        finally:
            self._free.put(sandbox)

    def process(
        self, result: FetchResult, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam
    ):
        if not result.ok:  # nothing to extract: the fetch's own outcome goes on
            yield self._counted(extract_document(result, self.cfg))
            return
        assert self._calls is not None
        self._pending.append((self._calls.submit(self._isolated, result), timestamp, window))
        if len(self._pending) >= self.cfg.processes:
            wait([future for future, _, _ in self._pending], return_when=FIRST_COMPLETED)
        yield from self._finished(everything=False)

    def finish_bundle(self):
        yield from self._finished(everything=True)

    def _finished(self, everything: bool):
        """The results that are ready (all of them, waiting, when ``everything``)."""
        pending, self._pending = self._pending, []
        for future, timestamp, window in pending:
            if everything or future.done():
                yield WindowedValue(self._counted(future.result()), timestamp, [window])
            else:
                self._pending.append((future, timestamp, window))

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

    def teardown(self) -> None:
        for sandbox in self._sandboxes:
            sandbox.close()
        if self._calls is not None:
            self._calls.shutdown(wait=False, cancel_futures=True)


def _started(sandbox: Sandbox) -> Sandbox:
    sandbox.start()
    return sandbox


class Extract(beam.PTransform):
    """PCollection[FetchResult] -> PCollection[dict | Drop]: main text and metadata per page."""

    def __init__(self, cfg: ExtractConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ExtractConfig):
            raise ValueError(f"Extract needs an ExtractConfig, got {type(cfg).__name__}")
        self.cfg = cfg

    def expand(self, pages):
        return pages | "Extract" >> beam.ParDo(_ExtractFn(self.cfg))
