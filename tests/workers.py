"""Aggregator workers in processes of their own, as production runs them, for the fault tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
