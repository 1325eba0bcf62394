"""Aggregator workers as production runs them, for the tests that race or kill them: several at once in
threads of one process, or each in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from data.aggregator import Aggregator
from data.connection import client_from_url

ROOT = Path(__file__).resolve().parents[1]


def worker_process(settings, batch_size: int) -> subprocess.Popen:
    """A worker process under a consumer name of its own that claims a dead worker's entries quickly."""
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "CITYDECK_KEY_PREFIX": settings.key_prefix,
        "CITYDECK_CLAIM_IDLE_MS": "300",
        "CITYDECK_BATCH_SIZE": str(batch_size),
        "CITYDECK_BLOCK_MS": "100",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "data.aggregator", "--max-idle", "3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def drain_at_once(settings, city_map, workers: int, now_ms: int) -> None:
    """Drain every stream with ``workers`` workers started together, each on its own connection, their
    clocks standing at ``now_ms``; every entry is handled when this returns."""
    start = threading.Barrier(workers)
    failures: list[BaseException] = []

    def work(i: int) -> None:
        client = client_from_url(settings.redis_url)
        try:
            worker = Aggregator(client, settings, city_map, name=f"w{i}", clock=lambda: now_ms / 1000)
            worker.ensure_groups()
            start.wait(timeout=30)
            while worker.step(block_ms=None):
                pass
            worker.close()
        except BaseException as e:  # noqa: BLE001  (reported by the test, not lost in the thread)
            failures.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures
    assert not any(t.is_alive() for t in threads)
