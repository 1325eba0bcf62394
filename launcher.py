"""The demo supervisor behind ``python app.py``: Redis (embedded unless ``REDIS_URL`` is set), aggregator
workers, the alarm watch, the four simulators and the dashboard, in one command; Ctrl-C stops every process it started.

Each child runs in its own process group, so stopping it stops anything it spawned: SIGTERM first,
SIGKILL after a timeout. The children's process groups are written to the state folder; a start after
a crash stops the leftovers of the crashed run before starting anew, and joins its embedded Redis.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from accounts.store import Accounts, new_password
from accounts.web import AuthOffRefused, refuse_auth_off_beyond_loopback
from data.connection import EmbeddedInProduction, connect
from settings import PROJECT_ROOT, Settings
from simulators.scenarios import SCENARIOS

log = logging.getLogger("citydeck")
STOP_TIMEOUT_S = 10.0
# How often the launcher looks whether a child has exited.
CHILD_POLL_S = 0.2


class Supervisor:
    """Starts child processes in their own process groups and stops them all."""

    def __init__(self, state_dir: Path, env: dict[str, str], redis_pid: int | None = None):
        self.state_dir = Path(state_dir)
        self.env = env
        self.redis_pid = redis_pid  # the embedded redis-server this launcher answers for, if any
        self.children: list[tuple[str, subprocess.Popen]] = []

    @property
    def record(self) -> Path:
        return self.state_dir / "launcher.json"

    def clear_leftovers(self) -> int:
        """Stop the children of a previous launcher that died without cleaning up; return how many.

        Its embedded redis-server, which this launcher has joined, becomes this launcher's to stop.
        """
        try:
            previous = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return 0
        if self.redis_pid is None and _is_ours(previous.get("redis_pid") or -1, "redis-server"):
            self.redis_pid = previous["redis_pid"]
        if _alive(previous.get("pid", -1)) and previous.get("pid") != os.getpid():
            raise SystemExit(f"another citydeck launcher (pid {previous['pid']}) is running; stop it first")
        stopped = 0
        for child in previous.get("children", []):
            if _is_ours(child["pid"], child["command"]):
                _stop_group(child["pid"], STOP_TIMEOUT_S)
                stopped += 1
        self.record.unlink(missing_ok=True)
        return stopped

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=PROJECT_ROOT, env=self.env, start_new_session=True, stdin=subprocess.DEVNULL
        )
        self.children.append((name, process))
        self._write_record()
        log.info("started %s (pid %d)", name, process.pid)
        return process

    def _write_record(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        children = [{"name": n, "pid": p.pid, "command": " ".join(p.args[1:3])} for n, p in self.children]
        self.record.write_text(json.dumps({"pid": os.getpid(), "redis_pid": self.redis_pid, "children": children}))

    def exited(self) -> list[tuple[str, int]]:
        """Children that exited, by name, with their exit codes (negative: the signal that ended them)."""
        return [(name, p.returncode) for name, p in self.children if p.poll() is not None]

    def stop_all(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every child's process group, wait, then SIGKILL what is left."""
        for _name, p in self.children:
            _signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, p in self.children:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: killing it", name, timeout)
                _signal_group(p.pid, signal.SIGKILL)
                p.wait()
        self.children.clear()
        self.record.unlink(missing_ok=True)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _stop_group(pid: int, timeout: float) -> None:
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        _signal_group(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError, OverflowError):
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _is_ours(pid: int, command: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return command in cmdline


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the dashboard could not listen on host:port, or None if it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except socket.gaierror as exc:
            return f"cannot listen on {host!r} ({exc.strerror}): pass --host with an address of this machine"
        except OSError:
            return f"port {port} on {host} is in use: stop what uses it or pass --port"
    return None


def _number(kind: type, low: float, *, inclusive: bool = True):
    """An argparse type: a number of that kind at or above ``low`` (above it if not ``inclusive``)."""
    bound = f"at least {low:g}" if inclusive else f"above {low:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {bound}")
        return value

    return parse


def _port(text: str) -> int:
    port = _number(int, 1)(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port: must be 1 to 65535")
    return port


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read and check the command line; a wrong argument ends here (exit code 2), before anything starts."""
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description="Start the citydeck demo: Redis, aggregator, simulators and dashboard.",
        epilog="If a worker or the simulators stop unexpectedly, the demo says which and stops (exit code 1).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the dashboard listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8050, help="port of the dashboard (default 8050)")
    parser.add_argument(
        "--scenario", choices=list(SCENARIOS), default="normal", help="what happens in the city (default normal)"
    )
    parser.add_argument(
        "--scale", type=_number(float, 0, inclusive=False), default=0.05, help="population scale (default 0.05)"
    )
    parser.add_argument(
        "--speed",
        type=_number(float, 0, inclusive=False),
        default=60.0,
        help="simulated seconds per real second while catching up (default 60)",
    )
    parser.add_argument(
        "--backfill", type=_number(float, 0), default=1.0, help="hours of past the simulators replay first (default 1)"
    )
    parser.add_argument("--workers", type=_number(int, 1), default=1, help="aggregator workers (default 1)")
    parser.add_argument("--no-simulators", action="store_true", help="start no simulators (feed it yourself)")
    parser.add_argument("--no-aggregator", action="store_true", help="start no aggregator workers")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class _Reason:
    """Why the demo stops, as the log says it, and whether that is a failure."""

    text: str
    error: bool


def _exit_description(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _watch(supervisor: Supervisor, stopping: threading.Event, on_exit) -> None:
    """Wait for a child to exit while the demo runs; report the first one at once."""
    while not stopping.wait(CHILD_POLL_S):
        for name, code in supervisor.exited():
            on_exit(name, code)
            return


DEMO_ADMIN, DEMO_WALL = "admin", "demo-wall"


def demo_way_in(settings: Settings, client, url: str) -> str:
    """The demo's way in, as lines to print: a new password for its admin and a new wall link, made at
    every start (the demo's only; a production deployment manages its accounts with python -m accounts)."""
    if settings.auth == "off":
        return "  sign-in is off (CITYDECK_AUTH=off): anyone who reaches this address is an operator.\n"
    accounts = Accounts.of(settings, client)
    if settings.environment != "demo":
        return "  sign in with an account made by python -m accounts add NAME --role ROLE.\n"
    password = new_password()
    if accounts.get(DEMO_ADMIN) is None:
        accounts.add(DEMO_ADMIN, "admin", password, by="demo", must_change=True)
    else:
        accounts.passwd(DEMO_ADMIN, password, by="demo", must_change=True)
        if accounts.get(DEMO_ADMIN).disabled:
            accounts.enable(DEMO_ADMIN, by="demo")
    if any(t.label == DEMO_WALL for t in accounts.wall_tokens()):
        accounts.revoke_wall_token(DEMO_WALL, by="demo")
    token = accounts.create_wall_token(DEMO_WALL, by="demo")
    return (
        f"  sign in as {DEMO_ADMIN} with the one-time password {password} (you then choose your own)\n"
        f"  the wall, signed in by its token: {url}/wall?token={token}\n"
        "  (both are made anew at each start; python -m accounts adds accounts and wall tokens)\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Start everything, serve the dashboard until Ctrl-C, SIGTERM or a child's exit, then stop everything.

    A child that exits while the demo runs (an aggregator worker, the simulators) stops the whole
    demo with exit code 1 and says which one and how it ended: a dashboard that goes on without
    its data would look alive while showing an ever older picture.
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The development server logs every request at INFO: a wall refreshing every few seconds would
    # bury what matters. Errors and refused requests still get their line.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = Settings.from_env()
    if problem := _cannot_listen(args.host, args.port):
        print(f"python app.py: error: {problem}", file=sys.stderr)
        return 2
    try:
        refuse_auth_off_beyond_loopback(settings, args.host)
        client, embedded = connect(settings, bind_host=args.host)
    except (EmbeddedInProduction, AuthOffRefused) as e:
        print(f"python app.py: error: {e}", file=sys.stderr)
        return 2
    try:
        way_in = demo_way_in(settings, client, f"http://{args.host}:{args.port}")
    finally:
        client.close()
    url = settings.redis_url or embedded.url
    if embedded is not None:
        log.info("%s the embedded redis-server at %s", "started" if embedded.owner else "joined", url)
    env = {**os.environ, "REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
    owned = embedded.process.pid if embedded is not None and embedded.owner else None
    supervisor = Supervisor(Path(settings.state_dir), env, owned)
    leftovers = supervisor.clear_leftovers()
    if leftovers:
        log.info("stopped %d leftover process(es) of a previous run", leftovers)
    stopping = threading.Event()
    why: list[_Reason] = []  # the first reason to stop is the one the log gives

    def on_signal(signum, _frame):
        if stopping.is_set():
            return  # already stopping: a second Ctrl-C does not cut the stop short
        stopping.set()
        if not why:
            why.append(_Reason(f"on {signal.Signals(signum).name}", error=False))
        raise KeyboardInterrupt

    def on_child_exit(name: str, code: int) -> None:
        log.error("%s stopped unexpectedly (%s): stopping the demo", name, _exit_description(code))
        why.append(_Reason(f"because {name} stopped ({_exit_description(code)})", error=True))
        _thread.interrupt_main()  # the main thread stops as on Ctrl-C, for the reason above

    # Explicitly: a launcher started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    watcher = threading.Thread(target=_watch, args=(supervisor, stopping, on_child_exit), daemon=True)
    try:
        if not args.no_aggregator:
            for i in range(args.workers):
                supervisor.start(f"aggregator-{i + 1}", ["-m", "data.aggregator"])
        # The alarms are raised and logged every tick even with no screen open.
        supervisor.start("alarm watch", ["-m", "callbacks.watch"])
        if not args.no_simulators:
            supervisor.start(
                "simulators",
                [
                    "-m",
                    "simulators",
                    "--scenario",
                    args.scenario,
                    "--speed",
                    str(args.speed),
                    "--scale",
                    str(args.scale),
                    "--backfill",
                    str(args.backfill),
                ],
            )
        watcher.start()
        from app import create_app

        app = create_app(Settings.from_env(env))
        print(
            f"\n  citydeck is running: http://{args.host}:{args.port}/\n{way_in}  Ctrl-C stops everything.\n",
            flush=True,
        )
        # The development server swallows the interrupt that ends it and returns: why says what it was.
        app.run(host=args.host, port=args.port, debug=False, threaded=True)
    except KeyboardInterrupt:
        pass
    finally:
        stopping.set()
        reason = why[0] if why else _Reason("after an error", error=True)
        log.info("stopping %d process(es) %s", len(supervisor.children), reason.text)
        supervisor.stop_all()
        if embedded is not None and embedded.owner:
            embedded.stop()
            log.info("stopped the embedded redis-server")
        elif supervisor.redis_pid is not None:
            _stop_group(supervisor.redis_pid, STOP_TIMEOUT_S)  # adopted from a crashed run
            log.info("stopped the embedded redis-server of the crashed run")
    return 1 if reason.error else 0


if __name__ == "__main__":
    raise SystemExit(main())
