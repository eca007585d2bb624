"""Run a function in a persistent child process, with a time limit on every call.

Why a process: a pathological page can keep trafilatura (Python + lxml) busy for minutes, and
Beam's SDK harness runs DoFns in non-main threads, where ``signal.alarm`` cannot interrupt them
and from where no thread can be killed. A child process can be: when a call runs over its limit
the child is killed (SIGKILL) and a fresh one starts on the next call.

Why persistent: the child imports its modules and warms up once, so a call costs two pickles
and two pipe transfers (well under a millisecond for a web page, against tens of milliseconds
of extraction), and the parent thread sleeps in ``select`` while the child works, so the CPU
goes to the extraction.

Protocol: length-prefixed pickles on two dedicated pipes (not stdin/stdout, which libraries may
print to). The child also exits when its request pipe closes, so it never outlives its parent.
Child entry point: ``python -m pipeline.sandbox READ_FD WRITE_FD module:function [module:warm_up]``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">Q")
_CHUNK = 1 << 16
PIPE_BYTES = 1 << 20


class SandboxTimeout(Exception):
    """A call ran over its time limit; the child was killed."""


class SandboxCrash(Exception):
    """The child died during a call (killed, out of memory, a crash in C code)."""


class SandboxStartError(RuntimeError):
    """The child could not start or load its target: a broken environment, not a bad input."""


class RemoteError(Exception):
    """The function raised in the child; ``kind`` is the exception's type name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    if not name:
        raise ValueError(f"sandbox target {target!r}: expected 'module:function'")
    return getattr(importlib.import_module(module), name)


def _write_frame(fd: int, payload: bytes, deadline: float | None) -> None:
    """Write one frame; TimeoutError past ``deadline`` (None: wait as long as it takes)."""
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, writable, _ = select.select([], [fd], [], remaining)
            if not writable:
                continue
        try:
            sent = os.write(fd, data[:_CHUNK])
        except BlockingIOError:
            continue
        data = data[sent:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    """``n`` bytes from ``fd``; EOFError when it closes first, TimeoutError past ``deadline``."""
    parts, got = [], 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_frame(fd: int, deadline: float | None) -> bytes:
    (n,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    return _read_exact(fd, n, deadline)


def _reap(proc: subprocess.Popen, fds: tuple[int, ...]) -> None:
    """Close the parent's pipe ends and end the child (between calls it holds no state)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


class Sandbox:
    """A child process that runs ``target`` (``"module:function"``) one call at a time.

    Not thread-safe: one caller at a time (Beam gives each DoFn instance to one thread).
    """

    def __init__(
        self, target: str, warm_up: str | None = None, start_timeout_s: float = 120.0
    ) -> None:
        self.target = target
        self.warm_up = warm_up
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._to_child = -1
        self._from_child = -1
        self._finalizer: weakref.finalize | None = None
        self._deadline = 0.0
        self._timeout_s = 0.0
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child and wait until it has imported and warmed up its target."""
        if self._proc is not None:
            return
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        for fd in (req_w, res_w):  # a whole page fits: the parent's write need not wait on reads
            with contextlib.suppress(AttributeError, OSError):  # Linux only; capped by the OS
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        cmd = [sys.executable, "-m", __name__, str(req_r), str(res_w), self.target]
        if self.warm_up:
            cmd.append(self.warm_up)
        try:
            proc = subprocess.Popen(
                cmd, pass_fds=(req_r, res_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
            )
        finally:
            os.close(req_r)
            os.close(res_w)
        os.set_blocking(req_w, False)
        self._proc, self._to_child, self._from_child = proc, req_w, res_r
        self._finalizer = weakref.finalize(self, _reap, proc, (req_w, res_r))
        self.starts += 1
        try:
            status, detail = pickle.loads(
                _read_frame(res_r, time.monotonic() + self.start_timeout_s)
            )
        except (TimeoutError, EOFError) as e:
            code = self._kill()
            raise SandboxStartError(f"{self.target}: child did not start (exit code {code})") from e
        if status != "ready":
            self._kill()
            raise SandboxStartError(f"{self.target}: child failed to start: {detail}")

    def call(self, *args: Any, timeout_s: float) -> Any:
        """``target(*args)`` in the child; starts one if none is running.

        Raises SandboxTimeout (the child was killed), SandboxCrash (it died), RemoteError (the
        function raised) or SandboxStartError (no child could be started: let that fail the job).
        """
        self.send(*args, timeout_s=timeout_s)
        return self.receive()

    def send(self, *args: Any, timeout_s: float) -> None:
        """Hand ``target(*args)`` to the child and return; :meth:`receive` gets the result.

        The time limit counts from here. Split from :meth:`call` so that one thread can keep
        several sandboxes busy, waiting on them all with ``select`` (a sandbox has a fileno).
        """
        self.start()
        self._timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        payload = pickle.dumps(args, pickle.HIGHEST_PROTOCOL)
        try:
            _write_frame(self._to_child, payload, self._deadline)
        except (TimeoutError, BrokenPipeError) as e:
            raise self._failed(e) from None

    def receive(self) -> Any:
        """The result of the call :meth:`send` started; raises as :meth:`call` does."""
        try:
            status, payload = pickle.loads(_read_frame(self._from_child, self._deadline))
        except (TimeoutError, EOFError) as e:
            raise self._failed(e) from None
        if status == "error":
            raise RemoteError(*payload)
        return payload

    @property
    def deadline(self) -> float:
        """When the call in progress runs out of time (monotonic clock)."""
        return self._deadline

    def fileno(self) -> int:
        """The pipe the result arrives on: readable once the child answers (or dies)."""
        return self._from_child

    def _failed(self, e: Exception) -> Exception:
        code = self._kill()
        if isinstance(e, TimeoutError):
            return SandboxTimeout(f"{self.target}: no result within {self._timeout_s:g} s")
        return SandboxCrash(f"{self.target}: child died (exit code {code})")

    def _kill(self) -> int | None:
        """End the child and close the pipes; its exit code (negative: the signal)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if self._finalizer is not None:
            self._finalizer()
        return proc.returncode

    def close(self) -> None:
        """End the child; the next call would start a fresh one."""
        self._kill()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(read_fd: int, write_fd: int, target: str, warm_up: str | None) -> None:
    """The child's loop: one request in, one result out, until the request pipe closes."""
    try:
        function = _resolve(target)
        if warm_up:
            _resolve(warm_up)()
    except Exception as e:  # report why we cannot serve instead of dying silently
        _write_frame(write_fd, pickle.dumps(("failed", f"{type(e).__name__}: {e}")), None)
        return
    _write_frame(write_fd, pickle.dumps(("ready", None)), None)
    while True:
        try:
            args = pickle.loads(_read_frame(read_fd, None))
        except EOFError:
            return
        try:
            reply = ("ok", function(*args))
        except Exception as e:  # returned to the caller as data, the child keeps serving
            reply = ("error", (type(e).__name__, str(e)))
        _write_frame(write_fd, pickle.dumps(reply, pickle.HIGHEST_PROTOCOL), None)


if __name__ == "__main__":
    # Library chatter (trafilatura's per-page warnings) would flood the worker's stderr; the
    # caller reports outcomes as data.
    logging.basicConfig(level=logging.CRITICAL)
    _serve(
        int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None
    )
