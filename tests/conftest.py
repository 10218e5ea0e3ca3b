"""Tests run on the real data in ../shared/data, used as the offline mirror."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("REALBENCH_TEST_DATA", REPO.parent / "shared" / "data")).resolve()

os.environ.setdefault("REALBENCH_MIRROR", str(SHARED_DATA))


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Downloads (there are none offline) and verification memos go to a temporary cache."""
    os.environ["REALBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture
def store(tmp_path):
    from harness.store import Store

    return Store(tmp_path / "store")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared data folder {SHARED_DATA} is missing; tests need ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module (tests/test_app_support.py says how)."""
    from test_app_support import browser_or_skip

    manager, chromium = browser_or_skip()
    yield chromium
    chromium.close()
    manager.stop()
