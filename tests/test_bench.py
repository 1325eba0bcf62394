"""The benchmarks still run end to end (at toy sizes) and end with their RESULT line: a benchmark
that breaks is found by the tests, not by the next person who needs its numbers."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def result_of(output: str) -> dict[str, str]:
    last = output.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    return dict(pair.split("=", 1) for pair in last.removeprefix("RESULT ").split())


def test_the_refresh_benchmark_times_every_view_at_every_size(redis_url, monkeypatch, capsys):
    from bench import refresh

    monkeypatch.setenv("REDIS_URL", redis_url)
    assert refresh.main(["--sizes", "300,900", "--repeat", "1"]) == 0
    result = result_of(capsys.readouterr().out)
    assert {"ms_300", "ms_900", "flatness", "flatness_view", "bytes_per_refresh", "reads_per_tick_50_clients"} <= set(
        result
    )
    assert result["flatness_view"] in refresh.VIEWS and float(result["ms_900"]) > 0


def test_the_ingest_benchmark_measures_the_ceiling_and_the_aggregator_on_the_same_events(
    redis_url, monkeypatch, capsys
):
    from bench import ingest

    monkeypatch.setenv("REDIS_URL", redis_url)
    ingest.main(["--events", "3000", "--rounds", "1"])
    result = result_of(capsys.readouterr().out)
    assert float(result["ceiling_eps"]) > 0 and float(result["aggregator_eps"]) > 0
    assert float(result["ratio"]) == pytest.approx(float(result["aggregator_eps"]) / float(result["ceiling_eps"]), 0.01)
