"""A production process with no REDIS_URL stops at start-up and says why, rather than start a Redis of
its own: two machines that did would each show half the city, and neither would know."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from data.connection import EmbeddedInProduction, connect, is_loopback
from settings import Settings, SettingsError

PROJECT = Path(__file__).resolve().parents[1]


def without_redis(tmp_path: Path, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("CITYDECK_")}
    return {**clean, "CITYDECK_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(PROJECT), **env}


def test_production_with_no_redis_url_is_an_error_and_starts_nothing(tmp_path):
    settings = Settings.from_env({"CITYDECK_ENV": "production", "CITYDECK_STATE_DIR": str(tmp_path / "state")})
    with pytest.raises(EmbeddedInProduction, match="REDIS_URL is not set and CITYDECK_ENV is production"):
        connect(settings)
    assert not (tmp_path / "state" / "redis").exists()


def test_serving_beyond_loopback_with_no_redis_url_is_an_error(tmp_path):
    settings = Settings.from_env({"CITYDECK_STATE_DIR": str(tmp_path / "state")})
    for host in ("0.0.0.0", "10.1.2.3", "::", "citydeck.example.org"):
        with pytest.raises(EmbeddedInProduction, match=f"it serves {host}"):
            connect(settings, bind_host=host)
    assert not (tmp_path / "state" / "redis").exists()
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost"))


def test_an_unknown_environment_is_refused():
    with pytest.raises(SettingsError, match="CITYDECK_ENV='prod'"):
        Settings.from_env({"CITYDECK_ENV": "prod"})


@pytest.mark.parametrize(
    ("command", "env", "says"),
    [
        (["-m", "data.aggregator"], {"CITYDECK_ENV": "production"}, "python -m data.aggregator: error: REDIS_URL"),
        (["-m", "simulators"], {"CITYDECK_ENV": "production"}, "python -m simulators: error: REDIS_URL"),
        (["-m", "callbacks.watch"], {"CITYDECK_ENV": "production"}, "python -m callbacks.watch: error: REDIS_URL"),
        (
            ["app.py", "--host", "0.0.0.0", "--port", "{port}"],
            {},
            "python app.py: error: REDIS_URL is not set and it serves",
        ),
        (["-c", "import app; app.create_app()"], {"CITYDECK_ENV": "production"}, "EmbeddedInProduction: REDIS_URL"),
    ],
    ids=["aggregator", "simulators", "alarm-watch", "launcher-on-all-addresses", "gunicorn-app"],
)
def test_each_process_refuses_at_start_up_with_a_clear_message(tmp_path, command, env, says):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = subprocess.run(
        [sys.executable, *(port if arg == "{port}" else arg for arg in command)],
        cwd=PROJECT,
        env=without_redis(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and says in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "state" / "redis").exists(), "an embedded Redis was started anyway"
