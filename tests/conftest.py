"""Session-wide fixtures: one real SparkSession for the whole test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.common.spark import spark_session
from tasks.config import SparkConfig

SHARED_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def spark():
    session = spark_session(SparkConfig(master="local[2]", shuffle_partitions=2))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    """The team's real sample data (`../shared/corpus`); tests using it skip where it is absent."""
    if not SHARED_CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present in this checkout")
    return SHARED_CORPUS


@pytest.fixture(scope="session")
def prefect_api():
    """A real temporary Prefect server (SQLite) for the whole session; flows report to it."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
