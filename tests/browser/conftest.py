"""Browser tests: headless Chromium through dash testing, against a real city (embedded Redis, aggregator
and simulators as subprocesses), started once per test module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from selenium import webdriver

from data.connection import EmbeddedRedis, client_from_url
from data.read import CityReader
from settings import PROJECT_ROOT, Settings

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    # MapLibre needs WebGL; with the GPU off, SwiftShader gives a software context.
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--window-size=1600,1000",
)


def pytest_setup_options():
    options = webdriver.ChromeOptions()
    if Path("/usr/bin/chromium").exists():
        options.binary_location = "/usr/bin/chromium"
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    return options


def _start(args, env):
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A live simulated city: its own embedded Redis, one aggregator, the four simulators at high speed."""
    redis_dir = tmp_path_factory.mktemp("redis")
    embedded = EmbeddedRedis(redis_dir)
    embedded.start()
    settings = Settings.from_env(
        {},
        redis_url=embedded.url,
        key_prefix=f"b{uuid.uuid4().hex[:8]}",
        state_dir=tmp_path_factory.mktemp("state"),
        refresh_ms=1000,
        stale_after_s=60.0,
        # Only the alarms a test raises on purpose.
        crowding_share=5.0,  # crowded only at five times capacity: no simulated place is
        alarm_cluster_cases=10_000,
        alarm_urgent_complaints=10_000,
        alarm_wait_target_s=1e9,
    )
    env = {**os.environ, "REDIS_URL": embedded.url, "CITYDECK_KEY_PREFIX": settings.key_prefix}
    children = [
        _start(["-m", "data.aggregator"], env),
        _start(
            ["-m", "simulators", "--speed", "900", "--scale", "0.05", "--backfill", "0.5", "--log-every", "600"], env
        ),
    ]
    client = client_from_url(embedded.url)
    reader = CityReader(client, settings)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        fresh = reader.freshness()
        if all(f["events"] > 0 for f in fresh.values()):
            break
        time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    yield settings, embedded, client
    client.close()
    for child in children:
        os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
    embedded.stop()
