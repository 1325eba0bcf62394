"""Load benchmark: the dashboard under gunicorn, fed live, with many browsers refreshing at once.

It starts, on loopback only, the dashboard under gunicorn (``-w 4`` by default, as the README runs
it), an aggregator worker and the simulators, all against one Redis (``REDIS_URL`` when set, else an
embedded one) under a key prefix of their own. Then N simulated browsers, each on one page, do what
the page does on every tick of its interval (``CITYDECK_REFRESH_MS``): post the status callback and the
page's refresh callback, with the very bodies the page builds from ``/_dash-dependencies``, the
``rendered`` state carried from one answer to the next. A browser waits for its answers before its
next tick, as the page does; a tick it misses that way is counted as late. After a warm-up, for a set
time, it measures requests per second, latency from the tick that was due (p50, p95, p99), errors,
Redis commands per tick (``INFO commandstats``) and snapshot builds per tick (the snapshot cache's
``SETEX``), and stops everything it started.

Goal: 200 browsers at one refresh per 2 s, p99 under 500 ms, about one snapshot build per view and tick.

    python -m bench.load [--browsers 200] [--seconds 60] [--workers 4] [--auth on|off]   (uses REDIS_URL when set)
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gzip
import http.cookiejar
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dash._utils import split_callback_id

from accounts.roles import may
from accounts.store import Accounts, new_password
from bench import redis_for
from callbacks.access import needs
from data.connection import client_from_url
from layouts import ids
from settings import PROJECT_ROOT, Settings

ROUTE = "/_dash-update-component"
BENCH_ACCOUNT = "bench-viewer"
MAX_BROWSERS = 2000  # loopback only, and a bound on what one machine is asked to bear
# The tick that drives each page's refresh callback, by page.
PAGE_TICKS = {
    "overview": ids.OVERVIEW_TICK,
    "cases": ids.CASES_TICK,
    "foot-traffic": ids.FOOT_TICK,
    "services": ids.SERVICES_TICK,
    "complaints": ids.COMPLAINTS_TICK,
    "health": ids.HEALTH_TICK,
}
REQUEST_TIMEOUT_S = 30.0
# The controls a freshly opened page holds (window, district, neighbourhood): the city, last hour.
CONTROL_VALUES = {(ids.WINDOW, "value"): "1h", (ids.DISTRICT, "value"): None, (ids.NEIGHBOURHOOD, "data"): None}


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of values (0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(share * len(ordered))) - 1))]


@dataclass
class Callback:
    """One callback as the page knows it from ``/_dash-dependencies``."""

    output: str
    inputs: list[dict]
    state: list[dict]

    def body(self, n_intervals: int, states: dict[tuple[str, str], object]) -> dict:
        """The body the page posts when its interval fires for the n-th time."""

        def item(dependency: dict, value) -> dict:
            return {"id": dependency["id"], "property": dependency["property"], "value": value}

        spec = split_callback_id(self.output)
        # The dependencies give a pattern's id as its JSON text; the page sends it as the object.
        outputs = [
            {"id": json.loads(s["id"]) if s["id"].startswith("{") else s["id"], "property": s["property"]}
            for s in (spec if isinstance(spec, list) else [spec])
        ]
        tick = self.inputs[0]
        return {
            "output": self.output,
            "outputs": outputs if isinstance(spec, list) else outputs[0],
            # Other inputs as a page (not a wall) holds them: the wall's screen size is nothing here.
            "inputs": [
                item(tick, n_intervals),
                *(item(i, states.get((i["id"], i["property"]))) for i in self.inputs[1:]),
            ],
            "state": [item(s, states.get((s["id"], s["property"]))) for s in self.state],
            "changedPropIds": [f"{tick['id']}.{tick['property']}"],
        }


def page_callbacks(dependencies: list[dict], role: str = "viewer") -> dict[str, list[Callback]]:
    """The callbacks each interval drives on the server for a manager, by the interval's id: the status bar's
    and the moment's on the status tick, each page's refresh on its own. A refresh only a higher role is
    answered (the precise case view, on the cases page's tick) is left out, as the page leaves it out."""
    out: dict[str, list[Callback]] = {}
    for dependency in dependencies:
        inputs = dependency["inputs"]
        # Driven by an interval: the interval first, then at most the wall's screen size and the moment.
        driven = inputs and inputs[0]["property"] == "n_intervals" and all(i["property"] == "data" for i in inputs[1:])
        served = not dependency.get("clientside_function")
        if driven and served and may(role, needs({"output": dependency["output"]})):
            out.setdefault(inputs[0]["id"], []).append(Callback(dependency["output"], inputs, dependency["state"]))
    return out


@dataclass
class Tally:
    """What the browsers saw during the measured time."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    late_ticks: int = 0
    measuring: bool = False
    cookie: str = ""  # the signed-in session every browser's requests carry

    def error(self, what: str) -> None:
        if self.measuring:
            self.errors[what] = self.errors.get(what, 0) + 1


async def post(host: str, port: int, body: dict, cookie: str) -> tuple[int, bytes]:
    """POST a callback body over a fresh connection (gunicorn's sync workers close each one), accepting
    gzip as a browser does, so the server packs its answers as it would for one; the answer unpacked."""
    data = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"POST {ROUTE} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept-Encoding: gzip\r\nCookie: {cookie}\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if b"\r\ncontent-encoding: gzip" in head.lower():
        payload = gzip.decompress(payload)
    return status, payload


def patched(value, update):
    """A property's value after an answer, as the page applies it: the value sent, or the value with a
    ``Patch``'s assignments applied (the only operation the dashboard's patches use)."""
    if not (isinstance(update, dict) and update.get("__dash_patch_update")):
        return update
    value = copy.deepcopy(value)
    for op in update["operations"]:
        if op["operation"] != "Assign":
            raise ValueError(f"a patch operation the page holds no copy of: {op['operation']}")
        *path, last = op["location"]
        target = value
        for step in path:
            target = target[step]
        target[last] = op["params"]["value"]
    return value


def take_answer(states: dict[tuple[str, str], object], answer: dict) -> None:
    """Keep the properties a callback's answer sets, as the page does."""
    for component, props in answer.get("response", {}).items():
        for prop, value in props.items():
            states[(component, prop)] = patched(states.get((component, prop)), value)


async def ask(host, port, callback: Callback, n: int, states: dict, due: float, tally: Tally) -> None:
    """One callback of one tick: post it, keep the states it returns, and count its latency from ``due``."""
    try:
        status, payload = await asyncio.wait_for(
            post(host, port, callback.body(n, states), tally.cookie), timeout=REQUEST_TIMEOUT_S
        )
    except (TimeoutError, OSError) as e:
        tally.error(type(e).__name__)
        return
    if tally.measuring:
        tally.latencies_ms.append((time.monotonic() - due) * 1000)
    if status == 200:
        take_answer(states, json.loads(payload))
    elif status != 204:  # 204: nothing to update this tick
        tally.error(f"http_{status}")


async def browser(host, port, page: str, callbacks: dict[str, list[Callback]], refresh_s, start, stop, tally) -> None:
    """One open page: on each tick, the status, the moment and the page's refresh, together; the next tick after
    all of them."""
    states: dict[tuple[str, str], object] = dict(CONTROL_VALUES)
    asking = [*callbacks[ids.STATUS_TICK], *callbacks[PAGE_TICKS[page]]]
    due, n = start, 0
    while due < stop:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        n += 1
        await asyncio.gather(*(ask(host, port, c, n, states, due, tally) for c in asking))
        due += refresh_s
        now = time.monotonic()
        while due < now:  # the answers came after the next tick was due: the page skips it
            if tally.measuring:
                tally.late_ticks += 1
            due += refresh_s


class SnapshotBuilds:
    """Counts each write of a snapshot to the shared cache, from Redis keyspace notifications: every build
    writes its snapshot once, so two workers building the same view in one tick count twice."""

    def __init__(self, client, prefix: str):
        self.client = client
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pattern = f"__keyspace@*__:{prefix}:dash:snap:*"
        self.counting = False
        self.builds = 0
        self.snapshots: set[bytes] = set()
        self.failure: BaseException | None = None  # counts stop when the subscription is lost; say so
        self._was = None

    def __enter__(self):
        self._was = self.client.config_get("notify-keyspace-events").get("notify-keyspace-events", "")
        flags = set(self._was) | set("K$")
        self.client.config_set("notify-keyspace-events", "".join(sorted(flags)))
        self.pubsub.psubscribe(**{self.pattern: self.handle})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.2, daemon=True, exception_handler=self._lost)
        return self

    def _lost(self, error, pubsub, thread):
        self.failure = error
        thread.stop()

    def __exit__(self, *_exc):
        self.thread.stop()
        self.thread.join(timeout=5)
        self.pubsub.close()
        self.client.config_set("notify-keyspace-events", self._was or "")
        self.client.close()

    def handle(self, message) -> None:
        if self.counting and message["data"] == b"set":
            self.builds += 1
            self.snapshots.add(message["channel"])


def command_calls(client) -> dict[str, int]:
    """Calls of every command so far, from INFO commandstats."""
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """The processes this benchmark starts, each in its own process group, stopped together."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115  (closed with the process)
        process = subprocess.Popen(
            [sys.executable, *args], cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.started.append((name, process))
        return process

    def exited(self) -> list[str]:
        return [f"{name} (exit {p.returncode})" for name, p in self.started if p.poll() is not None]

    def stop_all(self, timeout: float = 10.0) -> None:
        for _name, process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _name, process in self.started:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_until_served(host: str, port: int, processes: Processes, timeout: float) -> None:
    """Wait for the dashboard to answer (its sign-in page)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone := processes.exited():
            raise RuntimeError(f"stopped before the dashboard answered: {gone}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/login", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the dashboard did not answer within {timeout:.0f}s")


def signed_in(host: str, port: int, name: str, password: str, sign_in: bool = True) -> tuple[str, list[dict]]:
    """Sign in as a browser does; return the session cookie and the callback dependencies a page loads."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    if not sign_in:
        with opener.open(f"http://{host}:{port}/_dash-dependencies", timeout=30) as r:
            return "", json.loads(r.read())
    with opener.open(f"http://{host}:{port}/login", timeout=30) as r:
        csrf = re.search(r'name="csrf" value="([^"]+)"', r.read().decode()).group(1)
    form = urllib.parse.urlencode({"csrf": csrf, "name": name, "password": password, "next": "/"}).encode()
    with opener.open(f"http://{host}:{port}/login", data=form, timeout=30):
        pass
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    with opener.open(f"http://{host}:{port}/_dash-dependencies", timeout=30) as r:
        return cookie, json.loads(r.read())


async def drive(host, port, callbacks, pages, browsers: int, refresh_s, warmup_s, seconds, client, tally, builds):
    """Run the browsers through the warm-up and the measured time; return Redis command calls before and
    after the measured time, and the measured time's length."""
    now = time.monotonic()
    stop = now + warmup_s + seconds
    # Browsers opened at random moments of one interval, as pages opened by people are.
    tasks = [
        asyncio.create_task(
            browser(
                host, port, pages[i % len(pages)], callbacks, refresh_s, now + random.uniform(0, refresh_s), stop, tally
            )
        )  # fmt: skip
        for i in range(browsers)
    ]
    await asyncio.sleep(warmup_s)
    before = await asyncio.to_thread(command_calls, client)
    tally.measuring = builds.counting = True
    began = time.monotonic()
    await asyncio.sleep(max(0.0, stop - time.monotonic()))
    after = await asyncio.to_thread(command_calls, client)
    measured = time.monotonic() - began
    tally.measuring = builds.counting = False
    await asyncio.gather(*tasks)
    return before, after, measured


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--browsers", type=int, default=200, help=f"open pages (at most {MAX_BROWSERS})")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time, after the warm-up")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument(
        "--pages", default="overview,cases,foot-traffic,services,complaints", help="pages the browsers have open"
    )
    parser.add_argument("--scale", type=float, default=0.2, help="the simulated city's population scale")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--auth", choices=("on", "off"), default="on", help="browsers signed in as managers (on) or sign-in off"
    )
    args = parser.parse_args(argv)
    pages = args.pages.split(",")
    if not 1 <= args.browsers <= MAX_BROWSERS:
        parser.error(f"--browsers takes 1 to {MAX_BROWSERS}")
    if unknown := set(pages) - set(PAGE_TICKS):
        parser.error(f"no such page: {sorted(unknown)}; pages: {', '.join(PAGE_TICKS)}")
    random.seed(args.seed)

    env_settings = Settings.from_env()
    url, server = redis_for(env_settings.redis_url, "load")
    prefix = f"bench-load-{uuid.uuid4().hex[:8]}"
    refresh_s = env_settings.refresh_ms / 1000
    host, port = "127.0.0.1", free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="citydeck-load-logs-"))
    env = {
        **os.environ,
        "REDIS_URL": url,
        "CITYDECK_KEY_PREFIX": prefix,
        "CITYDECK_SECRET_KEY": secrets.token_urlsafe(32),
        "CITYDECK_AUTH": args.auth,
        "PYTHONUNBUFFERED": "1",
    }
    processes = Processes(env, log_dir)
    client = client_from_url(url)
    # Every browser is a signed-in manager: each request passes the door, as in production.
    password = new_password()
    Accounts.of(Settings.from_env(env), client).add(BENCH_ACCOUNT, "viewer", password, by="bench")
    tally = Tally()
    try:
        processes.start("aggregator", ["-m", "data.aggregator"])
        processes.start(
            "simulators",
            ["-m", "simulators", "--seed", str(args.seed), "--scale", str(args.scale), "--backfill", "0.5"],
        )
        processes.start(
            "gunicorn",
            ["-m", "gunicorn", "-w", str(args.workers), "-b", f"{host}:{port}", "--timeout", "60", "app:server"],
        )
        wait_until_served(host, port, processes, timeout=180)
        tally.cookie, dependencies = signed_in(host, port, BENCH_ACCOUNT, password, args.auth == "on")
        callbacks = page_callbacks(dependencies)
        print(
            f"dashboard on http://{host}:{port} ({args.workers} gunicorn workers), {args.browsers} browsers on "
            f"{', '.join(pages)}, a refresh every {refresh_s:g}s; {args.warmup:g}s warm-up, {args.seconds:g}s measured"
        )
        with SnapshotBuilds(client_from_url(url), prefix) as builds:
            before, after, measured = asyncio.run(
                drive(
                    host, port, callbacks, pages, args.browsers, refresh_s, args.warmup, args.seconds, client, tally,
                    builds,
                )
            )  # fmt: skip
        if builds.failure is not None:
            raise RuntimeError(f"snapshot builds were not all counted: {builds.failure!r}")
        if gone := processes.exited():
            raise RuntimeError(f"stopped during the run: {gone}; logs in {log_dir}")
    finally:
        processes.stop_all()
        for key in client.scan_iter(match=f"*{prefix}*", count=5000):
            client.unlink(key)
        client.close()
        if server is not None:
            server.stop()

    calls = {name: n - before.get(name, 0) for name, n in after.items() if n - before.get(name, 0) > 0}
    ticks = measured / refresh_s
    requests = len(tally.latencies_ms) + sum(tally.errors.values())
    errors = sum(tally.errors.values())
    views = len(set(pages)) + 1  # each page's view and the status every page shows
    snapshots = len(builds.snapshots)
    builds = builds.builds
    latencies = tally.latencies_ms
    p50, p95, p99 = (percentile(latencies, q) for q in (0.50, 0.95, 0.99))
    print(f"requests {requests:,} in {measured:.1f}s ({requests / measured:,.1f}/s), errors {errors} {tally.errors}")
    print(
        f"latency from the tick due: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, max {max(latencies, default=0):.0f} ms"
    )
    print(f"ticks skipped by a browser still waiting for the last one: {tally.late_ticks}")
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
    print(f"Redis commands per tick (everything: feed, aggregator, dashboard): {sum(calls.values()) / ticks:,.0f}; "
          + ", ".join(f"{name} {n / ticks:,.1f}" for name, n in top))  # fmt: skip
    print(
        f"snapshot builds per tick: {builds / ticks:.2f} for {views} views ({builds / ticks / views:.2f} per view); "
        f"{snapshots} distinct snapshots, so {builds - snapshots} built twice or more"
    )
    print(
        f"RESULT auth={args.auth} browsers={args.browsers} seconds={measured:.1f} workers={args.workers} views={views} "
        f"requests={requests} rps={requests / measured:.1f} p50_ms={p50:.0f} p95_ms={p95:.0f} p99_ms={p99:.0f} "
        f"errors={errors} late_ticks={tally.late_ticks} ticks={ticks:.3f} "
        f"redis_cmds_per_tick={sum(calls.values()) / ticks:.0f} builds_per_tick={builds / ticks:.2f} "
        f"builds_per_view_tick={builds / ticks / views:.2f} builds={builds} snapshots={snapshots} mean_ms={statistics.fmean(latencies) if latencies else 0:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
