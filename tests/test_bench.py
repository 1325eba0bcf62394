"""The benchmarks still run end to end (at toy sizes) and end with their RESULT line: a benchmark
that breaks is found by the tests, not by the next person who needs its numbers."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def result_of(output: str) -> dict[str, str]:
    last = output.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    return dict(pair.split("=", 1) for pair in last.removeprefix("RESULT ").split())


def test_the_refresh_benchmark_times_every_view_at_every_size_and_through_a_live_run(redis_url, monkeypatch, capsys):
    from bench import refresh

    monkeypatch.setenv("REDIS_URL", redis_url)
    assert refresh.main(["--sizes", "300,900", "--repeat", "1", "--ticks", "4", "--quiet-every", "2"]) == 0
    out = capsys.readouterr().out
    result = result_of(out)
    assert {"ms_300", "ms_900", "flatness", "flatness_view", "bytes_per_refresh", "reads_per_tick_50_clients"} <= set(
        result
    )
    assert result["flatness_view"] in refresh.VIEWS and float(result["ms_900"]) > 0
    # The live run: every view's answers, bytes and times, and the worst of them named.
    assert {result["bytes_max_view"], result["max_view"], result["p95_view"]} <= set(refresh.VIEWS)
    assert int(result["live_ticks"]) == 4
    bytes_max, per_tick = int(result["bytes_max"]), int(result["bytes_per_refresh"])
    unchanged, figures_unchanged = int(result["bytes_unchanged"]), int(result["figure_bytes_unchanged"])
    assert 0 < per_tick <= bytes_max and 0 <= unchanged <= bytes_max and figures_unchanged >= 0
    # Bytes are counted as sent, gzipped as the browser accepts; an answer's JSON is larger once unpacked.
    assert int(result["json_bytes_max"]) > bytes_max
    assert 0 < float(result["p95_ms_max"]) <= float(result["max_ms"])
    # The table has a line per view, and its worst figures are the RESULT's.
    rows = {r[0]: r[1:] for r in (line.split() for line in out.splitlines()) if len(r) == 11 and r[0] in refresh.VIEWS}
    assert set(rows) == set(refresh.VIEWS)
    assert max(float(r[7]) for r in rows.values()) == pytest.approx(float(result["max_ms"]), abs=0.05)
    assert int(rows[result["bytes_max_view"]][0].replace(",", "")) <= bytes_max


def test_the_ingest_benchmark_measures_the_ceiling_and_one_backlog_drained_by_several_workers(
    redis_url, monkeypatch, capsys
):
    from bench import ingest

    monkeypatch.setenv("REDIS_URL", redis_url)
    ingest.main(["--events", "3000", "--rounds", "1", "--workers", "1,2"])
    result = result_of(capsys.readouterr().out)
    assert float(result["ceiling_eps"]) > 0 and float(result["aggregator_eps"]) > 0
    assert float(result["ratio"]) == pytest.approx(float(result["aggregator_eps"]) / float(result["ceiling_eps"]), 0.01)
    # One backlog drained by one worker and by two at once: both rates, their ratio, the same aggregates.
    assert result["workers"] == "1,2"
    one, two = float(result["eps_w1"]), float(result["eps_w2"])
    assert one > 0 and two > 0
    assert float(result["scaling_w2"]) == pytest.approx(two / one, abs=0.01)
    assert result["identical"] == "yes" and result["keys_differing"] == "0"
    assert int(result["keys_compared"]) > 100


def test_the_load_benchmark_serves_browsers_under_gunicorn_and_counts_what_they_cost(redis_url, monkeypatch, capsys):
    from bench import load

    monkeypatch.setenv("REDIS_URL", redis_url)
    argv = ["--browsers", "3", "--seconds", "6", "--warmup", "2", "--workers", "2", "--pages", "overview,health"]
    assert load.main([*argv, "--scale", "0.05"]) == 0
    result = result_of(capsys.readouterr().out)
    seconds, requests = float(result["seconds"]), int(result["requests"])
    assert result["browsers"] == "3" and result["workers"] == "2" and result["views"] == "3"
    assert requests > 0 and int(result["errors"]) == 0
    assert float(result["rps"]) == pytest.approx(requests / seconds, abs=0.1)
    assert float(result["ticks"]) == pytest.approx(seconds / 2.0, abs=0.1)  # the default refresh of 2 s
    assert 0 < float(result["p50_ms"]) <= float(result["p95_ms"]) <= float(result["p99_ms"])
    builds, snapshots, ticks = int(result["builds"]), int(result["snapshots"]), float(result["ticks"])
    assert builds >= snapshots > 0
    assert float(result["builds_per_tick"]) == pytest.approx(builds / ticks, abs=0.01)
    assert float(result["builds_per_view_tick"]) == pytest.approx(builds / ticks / 3, abs=0.01)
    assert int(result["redis_cmds_per_tick"]) > 0


def test_the_benchmarks_post_what_a_managers_page_posts_on_each_tick(settings):
    """The status tick drives the status bar and the moment, each page's tick its refresh; the precise case
    view refreshes on the cases tick too, but only for a health officer, so a manager's page does not ask."""
    import json

    from app import create_app
    from bench.load import PAGE_TICKS, page_callbacks
    from layouts import ids

    dependencies = json.loads(create_app(settings).server.test_client().get("/_dash-dependencies").get_data())
    manager = page_callbacks(dependencies)
    status = manager[ids.STATUS_TICK]
    assert len(status) == 2 and {ids.FRESHNESS, ids.MOMENT_NOW} <= {o["id"] for c in status for o in _outputs(c)}
    for page, tick in PAGE_TICKS.items():
        assert len(manager[tick]) == 1, page
        assert ids.PRECISE_STATUS not in manager[tick][0].output, page
    officer = page_callbacks(dependencies, role="health")
    assert [ids.PRECISE_STATUS in c.output for c in officer[ids.CASES_TICK]].count(True) == 1
    # Computed in the browser, never posted: the wall's clock-side callback is not among them.
    assert all(c.output in {d["output"] for d in dependencies if not d.get("clientside_function")}
               for cs in officer.values() for c in cs)  # fmt: skip


def _outputs(callback) -> list[dict]:
    from dash._utils import split_callback_id

    spec = split_callback_id(callback.output)
    return spec if isinstance(spec, list) else [spec]
