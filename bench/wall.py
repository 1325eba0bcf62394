"""Wall soak: the demo on a wall display for N minutes, watching the browser's memory, its page's size and
how soon each tick's update is on screen.

It starts the demo itself (``python app.py`` on a free loopback port, with a state folder, hence an
embedded Redis, of its own), opens ``/wall`` in headless Chromium signed in by the wall link the demo
prints (or with sign-in off, ``--auth off``), and samples, every ``--every`` seconds: the JavaScript heap
after a garbage collection (CDP ``HeapProfiler.collectGarbage``, ``Runtime.getHeapUsage``) and the page's
element count. A probe in the page times every refresh of the wall's views from the moment its tick sent
the request to the first frame painted after the answer changed the view (a Plotly redraw or a change of
the view's elements); a tick whose answer is empty (HTTP 204: nothing new) paints nothing and is counted
apart. The start is taken after the first 5 minutes when N ≥ 10, else after the first minute (or half the
run, when shorter), and the end at N minutes. Everything it started is stopped at the end, on Ctrl-C and
on SIGTERM.

    python -m bench.wall [--minutes 10] [--every 15] [--auth on|off]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import PAGE_TICKS, free_port, percentile
from settings import PROJECT_ROOT

CHROME = "/usr/bin/chromium"
# Headless Chromium as the browser tests run it too.
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    # The maps need WebGL; with the GPU off, SwiftShader gives a software context.
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
)
WALL_SCREEN = "--window-size=1920,1080"
WALL_LINK = re.compile(r"(http://\S+/wall\?token=\S+)")
READY = re.compile(r"citydeck is running: (http://\S+)/")
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
PAINT_TIMEOUT_MS = 60_000  # an answer with no paint by then changed nothing on screen

# Times each view's refresh from its request to the first frame painted after the answer changed the view.
PROBE = """
if (!window.__wall) {
  const ticks = arguments[0], paintTimeout = arguments[1];
  const probe = window.__wall = {done: [], pending: {}, empty: 0, failed: 0};
  const viewOfBody = (body) => {
    for (const [view, tick] of Object.entries(ticks)) {
      if (body.includes('"id":"' + tick + '","property":"n_intervals"')) { return view; }
    }
    return null;
  };
  const viewOfNode = (node) => {
    const element = node && node.nodeType === 1 ? node : node && node.parentElement;
    const slot = element ? element.closest('.wall-slot') : null;
    if (!slot) { return null; }
    try { return JSON.parse(slot.id).view; } catch (e) { return null; }
  };
  // An answer that changes a figure is on screen once Plotly has drawn it; any other, once the view's
  // elements changed. Either way, at the next frame painted.
  const painted = (view, plotted) => {
    const waiting = probe.pending[view] || [];
    const now = waiting.filter((rec) => plotted || !rec.figure);
    if (!now.length) { return; }
    probe.pending[view] = waiting.filter((rec) => !now.includes(rec));
    requestAnimationFrame(() => {
      const at = performance.now();
      for (const rec of now) { rec.painted = at; probe.done.push(rec); }
    });
  };
  const fetch0 = window.fetch;
  window.fetch = async function (input, init) {
    const url = typeof input === 'string' ? input : input.url;
    const body = init && typeof init.body === 'string' ? init.body : '';
    const view = url.includes('_dash-update-component') ? viewOfBody(body) : null;
    const sent = performance.now();
    const response = await fetch0.apply(this, arguments);
    if (view !== null) {
      if (response.status === 204) { probe.empty += 1; }
      else if (response.status !== 200) { probe.failed += 1; }
      else {
        const answer = await response.clone().json();
        const figure = Object.values(answer.response || {}).some((props) => 'figure' in props);
        const rec = {view: view, sent: sent, answered: performance.now(), painted: null, figure: figure};
        (probe.pending[view] = probe.pending[view] || []).push(rec);
        setTimeout(() => {
          const left = probe.pending[view] || [];
          if (left.includes(rec)) { probe.pending[view] = left.filter((r) => r !== rec); probe.done.push(rec); }
        }, paintTimeout);
      }
    }
    return response;
  };
  new MutationObserver((mutations) => {
    const views = new Set();
    for (const m of mutations) {
      // Dash marks a component while its callback runs, and the wall parks and shows slots: neither is an update.
      if (m.type === 'attributes' && (m.attributeName === 'data-dash-is-loading'
          || (m.target.classList && m.target.classList.contains('wall-slot')))) { continue; }
      const view = viewOfNode(m.target);
      if (view !== null) { views.add(view); }
    }
    views.forEach((view) => painted(view, false));
  }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  setInterval(() => {
    document.querySelectorAll('.wall-slot .js-plotly-plot').forEach((gd) => {
      if (!gd.__wallProbe && gd.on) {
        gd.__wallProbe = true;
        gd.on('plotly_afterplot', () => painted(viewOfNode(gd), true));
      }
    });
  }, 250);
}
return true;
"""
TAKE = """
const probe = window.__wall;
if (!probe) { return null; }
const done = probe.done; probe.done = [];
const out = {done: done, empty: probe.empty, failed: probe.failed};
probe.empty = 0; probe.failed = 0;
return out;
"""


class Demo:
    """``python app.py`` in a process group and a state folder of its own (so an embedded Redis of its own)."""

    def __init__(self, auth: str, port: int):
        self.state = Path(tempfile.mkdtemp(prefix="citydeck-wall-"))
        self.log_path = self.state / "demo.log"
        env = {
            **os.environ,
            "CITYDECK_STATE_DIR": str(self.state),
            "CITYDECK_KEY_PREFIX": f"bench-wall-{secrets.token_hex(4)}",
            "CITYDECK_SECRET_KEY": secrets.token_urlsafe(32),
            "CITYDECK_AUTH": auth,
            "PYTHONUNBUFFERED": "1",
        }
        self.log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def address(self) -> tuple[str, str | None]:
        """Wait for the demo to say it runs; return its address and its wall link (None with sign-in off)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the demo stopped (exit {self.process.returncode}); its log: {self.log_path}")
            text = self.log_path.read_text(errors="replace")
            if ready := READY.search(text):
                link = WALL_LINK.search(text)
                if link or "sign-in is off" in text:
                    return ready.group(1), link.group(1) if link else None
            time.sleep(0.2)
        raise RuntimeError(f"the demo did not start within {START_TIMEOUT_S:.0f}s; its log: {self.log_path}")

    def stop(self, keep: bool) -> None:
        """Stop the demo as Ctrl-C does (it stops its children and its Redis); kill whatever outlives that.
        Its state folder (its Redis's data, its log) is removed unless ``keep``: a failed run's log says why."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # A demo killed before it stopped its children leaves them (each a process group) and its Redis in its
        # record: stop those still running what the record says they ran.
        try:
            record = json.loads((self.state / "launcher.json").read_text())
        except (OSError, ValueError):
            record = {}
        left = [(c["pid"], c["command"], True) for c in record.get("children", [])]
        if record.get("redis_pid"):
            left.append((record["redis_pid"], "redis-server", False))
        for pid, command, group in left:
            try:
                running = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if command in running:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if group:
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)
        self.log.close()
        if keep:
            print(f"the demo's log: {self.log_path}", file=sys.stderr)
        else:
            shutil.rmtree(self.state, ignore_errors=True)


def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROME
    for flag in (*CHROME_FLAGS, WALL_SCREEN):
        options.add_argument(flag)
    return webdriver.Chrome(options=options)


def heap_mb(driver) -> float:
    """The page's JavaScript heap in use after a full garbage collection, in MB."""
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    return driver.execute_cdp_cmd("Runtime.getHeapUsage", {})["usedSize"] / 1e6


def elements(driver) -> int:
    return driver.execute_script("return document.getElementsByTagName('*').length")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes the wall is watched")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument(
        "--auth", choices=("on", "off"), default="on", help="the wall signed in by its token (on) or sign-in off"
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.every <= 0:
        parser.error("--minutes and --every take a positive number")
    warmup_s = 300.0 if args.minutes >= 10 else min(60.0, args.minutes * 30)
    total_s = args.minutes * 60

    stopped_by: list[int] = []

    def on_signal(signum, _frame):
        stopped_by.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    demo = Demo(args.auth, free_port())
    driver = None
    samples: list[tuple[float, float, int]] = []  # (seconds since the page opened, heap MB, elements)
    updates_ms: list[float] = []
    unpainted = empty = failed = 0
    finished = False
    try:
        began = time.monotonic()
        url, link = demo.address()
        print(f"the demo answered after {time.monotonic() - began:.0f} s", flush=True)
        driver = browser()
        driver.get(link or f"{url}/wall")
        if "/wall" not in driver.current_url:
            raise RuntimeError(f"the wall was not opened: the browser is at {driver.current_url}")
        driver.execute_script(PROBE, PAGE_TICKS, PAINT_TIMEOUT_MS)
        print(f"demo at {url}; the wall open in headless Chromium (sign-in {args.auth}) for {args.minutes:g} min")
        opened = time.monotonic()
        origin_ms = driver.execute_script("return performance.now()")  # the page's clock at the same moment
        start_sample = None
        due = 0.0
        while due < total_s:
            due = min(due + args.every, total_s)  # samples on a fixed schedule, however long one takes
            time.sleep(max(0.0, opened + due - time.monotonic()))
            if demo.process.poll() is not None:
                raise RuntimeError(f"the demo stopped during the run; its log: {demo.log_path}")
            taken = driver.execute_script(TAKE)
            if taken is None:  # the page was reloaded: the probe is gone
                raise RuntimeError("the wall reloaded during the run")
            elapsed = time.monotonic() - opened
            empty, failed = empty + taken["empty"], failed + taken["failed"]
            for rec in taken["done"]:
                if rec["painted"] is None:
                    unpainted += 1
                elif rec["sent"] - origin_ms >= warmup_s * 1000:
                    updates_ms.append(rec["painted"] - rec["sent"])
            sample = (elapsed, heap_mb(driver), elements(driver))
            samples.append(sample)
            if start_sample is None and elapsed >= warmup_s:
                start_sample = sample
            print(
                f"{elapsed:7.0f} s  heap {sample[1]:7.1f} MB  elements {sample[2]:6,}  updates painted "
                f"{len(updates_ms):5,}  empty answers {empty:5,}  answers with no paint {unpainted}",
                flush=True,
            )
        finished = True
    except Exception:
        # A Ctrl-C at a terminal reaches the browser too, which may fail the call in flight first.
        if not stopped_by:
            raise
        print("stopped by a signal before the end: no RESULT", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("stopped by a signal before the end: no RESULT", file=sys.stderr)
        return 130
    finally:
        # Stopping is not cut short by a second Ctrl-C, nor skipped when the browser died with the first.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if driver is not None:
                with contextlib.suppress(Exception):
                    driver.quit()
        finally:
            demo.stop(keep=not finished and not stopped_by)  # a failed run's log says why
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    start, end = start_sample or samples[0], samples[-1]
    growth = (end[1] - start[1]) / start[1] * 100
    p95 = percentile(updates_ms, 0.95)
    print(
        f"\nfrom {start[0]:.0f} s to {end[0]:.0f} s: heap {start[1]:.1f} -> {end[1]:.1f} MB ({growth:+.1f} %), "
        f"elements {start[2]:,} -> {end[2]:,}; {len(updates_ms):,} updates painted after the start, p50 "
        f"{percentile(updates_ms, 0.5):.0f} ms, p95 {p95:.0f} ms, max {max(updates_ms, default=0):.0f} ms; "
        f"{empty:,} empty answers (nothing new), {unpainted} answers that changed nothing on screen, {failed} failed;"
        f" this machine's load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"RESULT minutes={args.minutes:g} heap_start_mb={start[1]:.1f} heap_end_mb={end[1]:.1f} "
        f"heap_growth_pct={growth:.1f} dom_start={start[2]} dom_end={end[2]} update_p95_ms={p95:.0f} "
        f"updates={len(updates_ms)} empty_answers={empty} unpainted={unpainted} failed={failed} "
        f"start_s={start[0]:.0f} end_s={end[0]:.0f} loadavg_5m={os.getloadavg()[1]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
