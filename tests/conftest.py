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
