"""Shared fixtures: the shared corpus (when present), offline settings, one torch thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """../shared/corpus, or skip: a user's fresh clone has no ../shared."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


@pytest.fixture
def one_thread():
    """One intra-op torch thread for tests of tiny models: they gain nothing from two, and on a
    shared 2-core machine OpenMP's spinning threads make them 10-20x slower. A module opts in
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hostile():
    """One HostileServer (tests/hostile_server.py) per test module that asks for it."""
    from tests.hostile_server import HostileServer

    with HostileServer() as server:
        yield server


@pytest.fixture(scope="session")
def archive_world(tmp_path_factory):
    """A real pywb on 127.0.0.1 over the WARCs of tests/archive_world.py, the same WARC files
    served by Range (Common Crawl's data server), and the live page server some of whose links
    are dead: started once per session (pywb takes seconds)."""
    from tests.archive_world import ArchiveWorld, damage, data_files, live_pages, write_warcs
    from tests.page_server import PageServer
    from tests.range_server import RangeServer
    from webtext.archive_server import PywbMissing, PywbServer, free_port, pywb_executable

    try:
        pywb_executable("wayback")
    except PywbMissing as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("archive")
    with PageServer(live_pages()) as live:
        dead = f"http://127.0.0.1:{free_port()}"
        warcs = write_warcs(root / "warcs", live.base_url, dead)
        with PywbServer(root / "pywb", {"arch": warcs}) as pywb:
            damage(root / "pywb" / "collections" / "arch")
            with RangeServer(data_files(root / "pywb" / "collections" / "arch")) as data:
                yield ArchiveWorld(pywb, live, dead, data)
