"""Run a function in persistent child processes, with a time limit on every call.

Why a process: a pathological page can keep trafilatura (Python + lxml) busy for minutes, and
Beam's SDK harness runs DoFns in non-main threads, where ``signal.alarm`` cannot interrupt them
and from where no thread can be killed. A child process can be: when a call runs over its limit
the child is killed (SIGKILL) and a fresh one takes its place on the next call.

What the limit measures: the child's own work on the call, its CPU time (user + system, read
from ``/proc``; wall-clock time from the call's start where that cannot be read). Neither the
parent's time away (Beam runs the following stages inside the caller's ``yield``) nor other
processes' share of the cores count, and a reply that has arrived is always received, however
late the parent reads it. A child that takes :data:`WALL_LIMIT_FACTOR` times its limit in
wall-clock time is ended whatever CPU it got, so one that waits without working cannot hold
its caller forever.

Why persistent: the child imports its modules and warms up once, so a call costs two pickles
and two pipe transfers (well under a millisecond for a web page, against tens of milliseconds
of extraction), and the parent thread sleeps in ``select`` while the child works, so the CPU
goes to the extraction.

Why a zygote: importing trafilatura and loading py3langid's model costs a child about 1.3 CPU
seconds. A :class:`Zygote` pays that once, then forks every child from its warmed-up self, in a
few milliseconds: the children of one worker share one import, and a child killed over a
pathological page is replaced at once instead of stalling its worker for a second. The zygote
is a fresh interpreter of its own (Beam's worker process runs gRPC threads, and forking a
threaded process is unsafe), kept single-threaded (numeric libraries' thread pools off).

Protocol: length-prefixed pickles on two dedicated pipes per child (not stdin/stdout, which
libraries may print to), and a Unix socket to the zygote, which carries the child's pipe ends
over (SCM_RIGHTS). The zygote forks, and kills and reaps, only when asked, so a child's pid
stays its own until its sandbox has ended it. A child exits when its request pipe closes and
the zygote when its socket does, so neither outlives its parent.
Zygote entry point: ``python -m pipeline.sandbox SOCKET_FD module:function [module:warm_up]``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">Q")
_REQUEST = struct.Struct(">cq")  # b"f" fork (the child's two pipe ends ride along), b"e" end pid
_FORK, _END = b"f", b"e"
_CHUNK = 1 << 16
PIPE_BYTES = 1 << 20
_SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
WALL_LIMIT_FACTOR = 4.0
"""A call is ended after this many times its limit in wall-clock time even if its child got
less CPU than the limit: on a machine this loaded, a page still gets its whole CPU time."""


class SandboxTimeout(Exception):
    """A call ran over its time limit; the child was killed."""


class SandboxCrash(Exception):
    """The child died during a call (killed, out of memory, a crash in C code)."""


class SandboxStartError(RuntimeError):
    """No child could be started or load its target: a broken environment, not a bad input."""


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


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process ``pid`` has used; None where ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # the name, in (), may hold spaces
        return (int(fields[11]) + int(fields[12])) * _CLOCK_TICK_S  # utime, stime: fields 14, 15
    except (OSError, IndexError, ValueError):
        return None


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _end_zygote(proc: subprocess.Popen, sock: socket.socket) -> None:
    sock.close()  # the zygote exits on EOF; its children on their own pipes' EOF
    if proc.poll() is None:
        proc.kill()
    proc.wait()


class Zygote:
    """A process that imports ``target`` and runs ``warm_up`` once, then forks sandbox children.

    Not thread-safe: one caller at a time (Beam gives each DoFn instance to one thread).
    """

    def __init__(
        self, target: str, warm_up: str | None = None, start_timeout_s: float = 120.0
    ) -> None:
        self.target = target
        self.warm_up = warm_up
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._finalizer: weakref.finalize | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the zygote and wait until it has imported and warmed up its target."""
        if self._proc is not None:
            return
        ours, theirs = socket.socketpair()
        cmd = [sys.executable, "-m", __name__, str(theirs.fileno()), self.target]
        if self.warm_up:
            cmd.append(self.warm_up)
        try:
            proc = subprocess.Popen(
                cmd,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env={**os.environ, **_SINGLE_THREADED},
            )
        finally:
            theirs.close()
        self._proc, self._sock = proc, ours
        self._finalizer = weakref.finalize(self, _end_zygote, proc, ours)
        self.starts += 1
        try:
            status, detail = self._reply(self.start_timeout_s)
        except (TimeoutError, EOFError, OSError) as e:
            code = self.close()
            raise SandboxStartError(f"{self.target}: did not start (exit code {code})") from e
        if status != "ready":
            self.close()
            raise SandboxStartError(f"{self.target}: failed to start: {detail}")

    def fork(self, read_fd: int, write_fd: int) -> int:
        """A new child serving the target on these pipe ends (the caller keeps its copies)."""
        try:
            return self._fork(read_fd, write_fd)
        except (TimeoutError, EOFError, OSError):
            self.close()  # it died (out of memory, say): a fresh zygote gets one more try
        try:
            return self._fork(read_fd, write_fd)
        except (TimeoutError, EOFError, OSError) as e:
            code = self.close()
            raise SandboxStartError(f"{self.target}: zygote died (exit code {code})") from e

    def _fork(self, read_fd: int, write_fd: int) -> int:
        self.start()
        assert self._sock is not None
        socket.send_fds(self._sock, [_REQUEST.pack(_FORK, 0)], [read_fd, write_fd])
        return self._reply(self.start_timeout_s)

    def end(self, pid: int) -> int | None:
        """Kill child ``pid`` if it still runs and reap it; its exit code (negative: the signal)."""
        if self._sock is None:  # the zygote is gone, and the child with it unless it was busy
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return None
        try:
            self._sock.sendall(_REQUEST.pack(_END, pid))
            return self._reply(self.start_timeout_s)
        except (TimeoutError, EOFError, OSError):
            self.close()
            return self.end(pid)

    def _reply(self, timeout_s: float) -> Any:
        assert self._sock is not None
        return pickle.loads(_read_frame(self._sock.fileno(), time.monotonic() + timeout_s))

    def close(self) -> int | None:
        """End the zygote (children keep serving until their sandboxes end them); its exit code."""
        proc, self._proc, self._sock = self._proc, None, None
        if proc is None:
            return None
        if self._finalizer is not None:
            self._finalizer()
        return proc.returncode

    def __enter__(self) -> Zygote:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _end_child(zygote: Zygote, pid: int, fds: tuple[int, int]) -> int | None:
    _close_all(fds)
    return zygote.end(pid)


class Sandbox:
    """A child process, forked from ``zygote``, that runs its target one call at a time.

    Not thread-safe: one caller at a time (Beam gives each DoFn instance to one thread).
    """

    def __init__(self, zygote: Zygote) -> None:
        self.zygote = zygote
        self._pid: int | None = None
        self._to_child = -1
        self._from_child = -1
        self._finalizer: weakref.finalize | None = None
        self._started = 0.0
        self._cpu_at_start: float | None = None
        self._timeout_s = 0.0
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        """Fork a child from the zygote (starting the zygote first if need be)."""
        if self._pid is not None:
            return
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        for fd in (req_w, res_w):  # a whole page fits: the parent's write need not wait on reads
            with contextlib.suppress(AttributeError, OSError):  # Linux only; capped by the OS
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            pid = self.zygote.fork(req_r, res_w)
        except BaseException:
            _close_all((req_w, res_r))
            raise
        finally:
            _close_all((req_r, res_w))
        os.set_blocking(req_w, False)
        self._pid, self._to_child, self._from_child = pid, req_w, res_r
        self._finalizer = weakref.finalize(self, _end_child, self.zygote, pid, (req_w, res_r))
        self.starts += 1

    def call(self, *args: Any, timeout_s: float) -> Any:
        """``target(*args)`` in the child; starts one if none is running.

        Raises SandboxTimeout (the child was killed), SandboxCrash (it died), RemoteError (the
        function raised) or SandboxStartError (no child could be started: let that fail the job).
        """
        self.send(*args, timeout_s=timeout_s)
        return self.receive()

    def send(self, *args: Any, timeout_s: float) -> None:
        """Hand ``target(*args)`` to the (idle) child and return; :meth:`receive` gets the result.

        The child starts on the call as it reads it, so its time counts from here. Split from
        :meth:`call` so that one thread can keep several sandboxes busy, waiting on them all
        with ``select`` (a sandbox has a fileno) for as long as :meth:`remaining` says.
        """
        self.start()
        assert self._pid is not None
        self._timeout_s = timeout_s
        self._started = time.monotonic()
        self._cpu_at_start = _cpu_seconds(self._pid)
        payload = pickle.dumps(args, pickle.HIGHEST_PROTOCOL)
        try:
            _write_frame(self._to_child, payload, self._started + WALL_LIMIT_FACTOR * timeout_s)
        except (TimeoutError, BrokenPipeError) as e:
            raise self._failed(e) from None

    def remaining(self) -> float:
        """Seconds (at least) before the call in progress can be over its limit; <= 0: it is.

        CPU time cannot pass faster than wall-clock time, so a caller that waits this long
        before asking again never ends a call late by more than the clock's resolution.
        """
        now = time.monotonic()
        cpu = _cpu_seconds(self._pid) if self._pid is not None else None
        used = (
            now - self._started
            if cpu is None or self._cpu_at_start is None
            else cpu - self._cpu_at_start
        )
        wall_left = self._started + WALL_LIMIT_FACTOR * self._timeout_s - now
        return min(self._timeout_s - used, wall_left)

    def receive(self) -> Any:
        """The result of the call :meth:`send` started; raises as :meth:`call` does.

        Waits while the child works within its limit; a reply that has begun to arrive is read
        whole, without a limit (the child has finished working: it is only writing).
        """
        try:
            while not select.select([self._from_child], [], [], max(0.0, self.remaining()))[0]:
                if self.remaining() <= 0:
                    raise TimeoutError
            status, payload = pickle.loads(_read_frame(self._from_child, None))
        except (TimeoutError, EOFError) as e:
            raise self._failed(e) from None
        if status == "error":
            raise RemoteError(*payload)
        return payload

    def fileno(self) -> int:
        """The pipe the result arrives on: readable once the child answers (or dies)."""
        return self._from_child

    def _failed(self, e: Exception) -> Exception:
        code = self._kill()
        if isinstance(e, TimeoutError):
            return SandboxTimeout(f"{self.zygote.target}: no result within {self._timeout_s:g} s")
        return SandboxCrash(f"{self.zygote.target}: child died (exit code {code})")

    def _kill(self) -> int | None:
        """End the child and close the pipes; its exit code (negative: the signal)."""
        if self._pid is None or self._finalizer is None:
            return None
        self._pid = None
        return self._finalizer()

    def close(self) -> None:
        """End the child; the next call forks a fresh one."""
        self._kill()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(read_fd: int, write_fd: int, function: Callable[..., Any]) -> None:
    """A child's loop: one request in, one result out, until the request pipe closes."""
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


def _request(sock: socket.socket) -> tuple[bytes, int, list[int]] | None:
    """The next request to the zygote, with the fds it carries; None when the socket closes."""
    data, fds, _, _ = socket.recv_fds(sock, _REQUEST.size, 2)
    if not data:
        return None
    if len(data) < _REQUEST.size:
        data += _read_exact(sock.fileno(), _REQUEST.size - len(data), None)
    op, pid = _REQUEST.unpack(data)
    return op, pid, fds


def _run_zygote(sock_fd: int, target: str, warm_up: str | None) -> None:
    """The zygote's loop: fork a child per request, end (kill and reap) one per request."""
    sock = socket.socket(fileno=sock_fd)

    def reply(value: object) -> None:
        _write_frame(sock.fileno(), pickle.dumps(value), None)

    try:
        function = _resolve(target)
        if warm_up:
            _resolve(warm_up)()
    except Exception as e:  # report why we cannot serve instead of dying silently
        reply(("failed", f"{type(e).__name__}: {e}"))
        return
    reply(("ready", None))
    while (request := _request(sock)) is not None:
        op, pid, fds = request
        if op == _FORK:
            child = os.fork()
            if child == 0:
                try:
                    sock.close()
                    _serve(fds[0], fds[1], function)
                finally:
                    os._exit(0)
            _close_all(fds)
            reply(child)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            try:
                reply(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            except ChildProcessError:
                reply(None)


if __name__ == "__main__":
    # Library chatter (trafilatura's per-page warnings) would flood the worker's stderr; the
    # caller reports outcomes as data.
    logging.basicConfig(level=logging.CRITICAL)
    _run_zygote(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
