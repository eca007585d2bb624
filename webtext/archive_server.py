"""A local pywb archive server over WARC files, for the demo and the tests.

pywb (the server software Common Crawl's index runs on) lives in its own virtual environment,
``.venv/pywb`` (``make`` creates it): its dependency brotlipy would replace the ``brotli`` module
the fetcher decodes with. :func:`pywb_executable` finds its commands; :class:`PywbServer` builds
collections from WARC files (``wb-manager init``/``add``) and serves them on 127.0.0.1
(``wayback``), answering CDX queries at ``/COLL/cdx`` and replays at ``/COLL/<ts>id_/<url>``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from foundation.errors import WebtextError

PYWB_BIN_ENV = "WEBTEXT_PYWB_BIN"
WAYBACK_NODELAY = """
import socket, sys
from gevent.monkey import patch_all; patch_all()
from gevent import pywsgi
_init = pywsgi.WSGIHandler.__init__
def _nodelay(self, sock, *args, **kwargs):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _init(self, sock, *args, **kwargs)
pywsgi.WSGIHandler.__init__ = _nodelay
from pywb.apps.cli import wayback
wayback(sys.argv[1:])
"""
"""pywb's ``wayback`` with TCP_NODELAY on each connection. Its gevent server writes a response
in several segments; on a kept-alive connection Nagle's algorithm holds the last one until the
client's delayed ACK, about 40 ms, so each request took ~50 ms on loopback (3 ms when the
connection closes). The fetcher keeps connections alive, as it should with a public archive."""


class PywbMissing(WebtextError):
    """pywb's commands are not installed where webtext looks for them."""


def pywb_executable(name: str) -> str:
    """The path of pywb's command ``name`` (``wayback``, ``wb-manager``): in ``$WEBTEXT_PYWB_BIN``
    if set, else in ``pywb/bin`` of the virtual environment running webtext (``.venv/pywb``)."""
    folder = os.environ.get(PYWB_BIN_ENV) or str(Path(sys.prefix) / "pywb" / "bin")
    path = Path(folder) / name
    if not os.access(path, os.X_OK):
        raise PywbMissing(
            f"pywb's {name} is not at {path}: run `make` (it creates .venv/pywb with "
            f"`pip install pywb==2.10.0`) or set {PYWB_BIN_ENV} to the folder holding it"
        )
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PywbServer:
    """``collections`` ({name: [WARC files]}) served by pywb from ``root`` while in a ``with``."""

    def __init__(self, root: Path, collections: dict[str, list[Path]], start_s: float = 60.0):
        self.root, self.collections, self.start_s = Path(root), collections, start_s
        self.port = 0
        self.process: subprocess.Popen | None = None

    def cdx_url(self, collection: str) -> str:
        return f"http://127.0.0.1:{self.port}/{collection}/cdx"

    def __enter__(self) -> PywbServer:
        manager = pywb_executable("wb-manager")
        self.root.mkdir(parents=True, exist_ok=True)
        for name, warcs in self.collections.items():
            collection = self.root / "collections" / name
            if not collection.exists():
                self._run([manager, "init", name])
            new = [str(w) for w in warcs if not (collection / "archive" / Path(w).name).exists()]
            if new:  # a collection kept from an earlier start has them indexed already
                self._run([manager, "add", name, *new])
        self.port = free_port()
        with open(self.root / "wayback.log", "wb") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [
                    pywb_executable("python"),
                    "-c",
                    WAYBACK_NODELAY,
                    "-p",
                    str(self.port),
                    "-b",
                    "127.0.0.1",
                ],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")

    def _wait_until_up(self) -> None:
        collection = next(iter(self.collections))
        probe = f"{self.cdx_url(collection)}?url=http%3A%2F%2Fprobe.invalid%2F&output=json"
        give_up = time.monotonic() + self.start_s
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                tail = (self.root / "wayback.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"wayback exited with {self.process.returncode}: {tail}")
            try:
                with urllib.request.urlopen(probe, timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"wayback did not answer on port {self.port} in {self.start_s}s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
