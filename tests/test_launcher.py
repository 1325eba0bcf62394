"""The demo command line (``python app.py``) as an operator meets it: wrong arguments stop it before
anything starts, a child that dies stops the demo and says which, and a clean stop says so."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.redis


class Demo:
    """``python app.py`` running against the test Redis, its output collected line by line as it comes."""

    def __init__(self, settings, tmp_path: Path, *args: str):
        env = {
            **os.environ,
            "REDIS_URL": settings.redis_url,
            "CITYDECK_KEY_PREFIX": settings.key_prefix,
            "CITYDECK_STATE_DIR": str(tmp_path / "state"),
        }
        self.process = subprocess.Popen(
            [sys.executable, "app.py", *args],
            cwd=PROJECT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so the test can stop everything it started, whatever happens
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match:
        """Wait until a line of output matches; fail with the output so far if none does in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        pytest.fail(f"no line matching {pattern!r}; output:\n{self.output}")

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def demo(settings, tmp_path):
    started: list[Demo] = []

    def start(*args: str) -> Demo:
        started.append(Demo(settings, tmp_path, *args))
        return started[-1]

    yield start
    for d in started:
        d.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "storn"], "argument --scenario: invalid choice: 'storn'"),
        (["--scale", "-1"], "argument --scale: -1 is out of range"),
        (["--speed", "0"], "argument --speed: 0 is out of range"),
        (["--port", "99999"], "argument --port: 99999 is not a port"),
        (["--workers", "0"], "argument --workers: 0 is out of range"),
        (["--backfill", "soon"], "argument --backfill: 'soon' is not a number"),
    ],
)
def test_a_wrong_argument_stops_the_demo_before_anything_starts(demo, args, message):
    d = demo(*args)
    assert d.finish() == 2
    assert message in d.output
    assert "Traceback" not in d.output and "started" not in d.output


def test_a_child_that_dies_stops_the_demo_and_the_log_says_which(demo):
    d = demo("--port", str(free_port()), "--no-simulators")
    pid = int(d.wait_for(r"started aggregator-1 \(pid (\d+)\)").group(1))
    d.wait_for("citydeck is running")
    os.kill(pid, signal.SIGKILL)
    d.wait_for(r"aggregator-1 stopped unexpectedly \(killed by SIGKILL\): stopping the demo", timeout=30)
    assert d.finish() == 1
    assert "stopping 2 process(es) because aggregator-1 stopped (killed by SIGKILL)" in d.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_clean_stop_says_what_stopped_it_and_exits_0(demo, sig):
    d = demo("--port", str(free_port()), "--no-simulators")
    d.wait_for("citydeck is running")
    d.wait_for(r"citydeck.watch INFO building the status and folding the alarms every")
    d.process.send_signal(sig)
    assert d.finish() == 0, d.output
    # The aggregator and the alarm watch; each ends on its own when asked, and says so.
    assert f"stopping 2 process(es) on {sig.name}" in d.output
    assert re.search(r"citydeck.watch INFO stopped after \d+ ticks \(0 failed\)", d.output), d.output
    assert "error" not in d.output.lower() and "Traceback" not in d.output


@pytest.mark.parametrize(
    "args", [["--speed", "nan"], ["--scale", "inf"], ["--backfill", "-1"], ["--scenario", "storn"], ["--speed", "0"]]
)
def test_the_simulators_refuse_a_wrong_argument_with_exit_code_2(args):
    from simulators.__main__ import parse_options

    with pytest.raises(SystemExit) as stopped:
        parse_options(args)
    assert stopped.value.code == 2
