"""Integration tests of the simulators against a real redis-server: the command line, a clean stop
on SIGTERM, and a producer that rides out a Redis crash without leaving a gap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from data.connection import EmbeddedRedis, client_from_url
from data.keys import SOURCES, Keys
from settings import Settings
from simulators.generate import generate
from simulators.producer import StreamProducer, producer_client
from simulators.world import World

PROJECT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.redis


def simulators_process(settings: Settings, tmp_path: Path, *args: str) -> subprocess.Popen:
    """Start ``python -m simulators`` against the test Redis."""
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "CITYDECK_KEY_PREFIX": settings.key_prefix,
        "CITYDECK_STATE_DIR": str(tmp_path / "state"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "simulators", *args],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_command_line_run_fills_all_four_streams_and_exits_0(settings, tmp_path):
    # A backfill of three simulated hours holds complaints whatever the hour (five minutes of a night may
    # hold none); the run is stopped as soon as every stream has entries, however busy the machine.
    process = simulators_process(settings, tmp_path, "--speed", "600", "--backfill", "3", "--scale", "0.2")
    client = client_from_url(settings.redis_url)
    keys = Keys(settings.key_prefix)

    def lengths() -> dict[str, int]:
        return {source: client.xlen(keys.stream(source)) for source in SOURCES}

    deadline = time.monotonic() + 120
    while not all(lengths().values()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert all(lengths().values()), lengths()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    final = [line for line in stderr.splitlines() if "stopped after" in line]
    assert final and "reading=" in final[0] and "complaint=" in final[0], stderr


def test_sigterm_stops_promptly_with_exit_0_and_a_count_of_what_was_produced(settings, tmp_path):
    process = simulators_process(settings, tmp_path, "foot", "complaints", "--speed", "60", "--scale", "0.1")
    client = client_from_url(settings.redis_url)
    stream = Keys(settings.key_prefix).stream("foot")
    deadline = time.monotonic() + 30
    while client.xlen(stream) == 0 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert client.xlen(stream) > 0
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert time.monotonic() - signalled < 5
    assert "SIGTERM received" in stderr
    final = [line for line in stderr.splitlines() if "stopped after" in line]
    assert final and "foot: reading=" in final[0] and "complaints:" in final[0]


def test_producer_survives_a_redis_restart_without_a_gap(tmp_path, city_world, redis_binary):
    server = EmbeddedRedis(tmp_path / "redis", binary=redis_binary)
    server.start()
    stream = Keys("restart").stream("foot")
    start = 1_715_000_000_000
    events = generate("foot", city_world, start_ms=start, end_ms=start + 4 * 60_000, seed=1)
    producer = StreamProducer(
        lambda: producer_client(server.url),
        stream,
        source="foot",
        maxlen=1_000_000,
        batch_size=100,
        backoff_first_s=0.05,
        backoff_cap_s=0.5,
    )
    sent_some = threading.Event()
    crashed = threading.Event()

    def feed() -> None:
        for i, event in enumerate(events):
            producer.add(event)
            if i == len(events) // 3:
                producer.flush()
                sent_some.set()
                # Redis dies here, between batches; everything after must wait for it and get through.
                crashed.wait(30)
            if i % 100 == 0:
                time.sleep(0.01)  # a live source trickles
        producer.flush()

    feeder = threading.Thread(target=feed)
    feeder.start()
    assert sent_some.wait(30)
    # appendfsync everysec: what Redis acknowledged more than a second ago is on disk and survives SIGKILL.
    time.sleep(1.5)
    server.kill()
    crashed.set()
    time.sleep(0.5)
    server.start()
    feeder.join(60)
    assert not feeder.is_alive()
    try:
        entries = server.client().xrange(stream)
        seqs = {int(fields[b"seq"]) for _, fields in entries}
        assert seqs == set(range(len(events)))
        assert {fields[b"src"] for _, fields in entries} == {producer.src.encode()}
        assert producer.reconnects > 0
    finally:
        server.stop()


@pytest.fixture(scope="module")
def city_world():
    from geo.demo import demo_city

    return World(demo_city(7), scale=0.01, seed=1)
