"""Shared fixtures: the real PostgreSQL and Redis servers, the shared Binance recordings.

Tests that need a server use it for real. When the server is absent they are skipped with the reason,
except under CI=true, where absence is a failure (CI provides both servers).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kestrel.config.paths import shared_data_dir

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_URL = os.environ.get("KESTREL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KESTREL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _unavailable(what: str) -> None:
    message = f"{what} is not reachable"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it")
    pytest.skip(f"{message}; start it to run this test (see README, 'Services')")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data/binance (real recorded Binance data)."""
    path = shared_data_dir()
    if path is None:
        _unavailable("the shared recordings folder (../shared/data/binance)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A libpq URL of the real PostgreSQL test database."""
    if not _reachable("127.0.0.1", 5432):
        _unavailable("PostgreSQL on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A URL of a real Redis database (db 15), flushed before and after the test."""
    if not _reachable("127.0.0.1", 6379):
        _unavailable("Redis on 127.0.0.1:6379")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()
