"""Shared fixtures: run the real CLI in a subprocess with private data and cache folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEED_ARTICLE = REPO.parent / "shared" / "seed" / "training-your-lower-back.txt"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Property-based (fuzz) tests are slow tests: `scripts/test --quick` leaves them out."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def coach_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose Coach data and cache live in the test's temp folder."""
    env = dict(os.environ)
    env["COACH_DATA_DIR"] = str(tmp_path / "data")
    env["COACH_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("COACH_TRACEBACK", None)
    return env


@pytest.fixture
def run_coach(coach_env: dict[str, str], tmp_path: Path):
    """Run `python -m coach ARGS...` and return the CompletedProcess (text mode)."""

    def run(*args: str, input: str | None = None, timeout: float = 120, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coach", *args],
            capture_output=True, text=True, input=input, timeout=timeout,
            cwd=cwd or tmp_path, env=env or coach_env,
        )

    return run


@pytest.fixture
def seed_article() -> Path:
    if not SEED_ARTICLE.is_file():
        pytest.skip("the seed article (../shared/seed/) is not beside this checkout")
    return SEED_ARTICLE
