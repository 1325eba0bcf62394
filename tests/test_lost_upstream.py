"""Events a producer numbered but that never reached Redis (acknowledged, then lost with the last second of
an append-only file in a power cut) are found by the gaps in each producer's sequence numbers and shown on
the health view as events lost upstream, per source; repeats, disorder, refused events and producers
restarted under a new id or resumed under their own leave no false gap."""

from __future__ import annotations

import random
import time

import pytest

from data.aggregator import Aggregator
from data.keys import Keys
from data.read import CityReader
from layouts import render
from tests.events import raw_event
from tests.ledger import assert_settled, digest
from views import snapshots

pytestmark = [pytest.mark.redis]


def producers_sends(now_ms: int) -> list[tuple[str, dict[str, str]]]:
    """What the producers sent, in stream order: with events lost upstream, repeats and disorder."""
    sent: list[tuple[str, dict[str, str]]] = []

    def send(source: str, type_name: str, src: str, seqs, **overrides) -> None:
        for q in seqs:
            sent.append((source, raw_event(type_name, seq=q, ts=now_ms - 600_000 + q * 1000, src=src, **overrides)))

    # A foot sensor gateway loses ten events and then one more; it is resumed under its own id.
    send("foot", "reading", "sim-foot-A", [q for q in range(200) if not 50 <= q < 60 and q != 120 and q != 130])
    send("foot", "reading", "sim-foot-A", [130], lat="NaN")  # refused, but it reached Redis: not lost
    send("foot", "reading", "sim-foot-A", [10, 11, 12])  # a retried batch: repeats
    send("foot", "reading", "sim-foot-A", range(200, 250))  # resumed, numbering on
    # Restarted under a new id, a producer numbers from 0 again.
    send("foot", "reading", "sim-foot-B", range(100))
    # A hotline whose first events this city never saw (numbers from 1000), three lost among them.
    send("complaints", "complaint", "hotline-1", [q for q in range(1000, 1100) if not 1050 <= q < 1053])
    # Disorder: events come a little out of order, as concurrent producers' batches do.
    rng = random.Random(5)
    for i in range(0, len(sent) - 8, 8):
        window = sent[i : i + 8]
        rng.shuffle(window)
        sent[i : i + 8] = window
    return sent


def expected_gaps(sent) -> dict[str, dict[str, int]]:
    """Per source and producer: numbers between the first and last sent that were never sent."""
    seen: dict[tuple[str, str], set[int]] = {}
    for source, fields in sent:
        seen.setdefault((source, fields["src"]), set()).add(int(fields["seq"]))
    out: dict[str, dict[str, int]] = {}
    for (source, src), seqs in seen.items():
        if missing := max(seqs) - min(seqs) + 1 - len(seqs):
            out.setdefault(source, {})[src] = missing
    return out


def run(client, settings, city_map, sent, batch_size: int, workers: int, now_ms: int) -> Keys:
    s = type(settings)(**{**settings.__dict__, "batch_size": batch_size})
    keys = Keys(s.key_prefix)
    pipe = client.pipeline(transaction=False)
    for source, fields in sent:
        pipe.xadd(keys.stream(source), fields)
    pipe.execute()
    crew = [Aggregator(client, s, city_map, name=f"w{i}", clock=lambda: now_ms / 1000) for i in range(workers)]
    for w in crew:
        w.ensure_groups()
    while sum([w.step(block_ms=None) for w in crew]):
        pass
    crew[0].publish()  # as the next tick does: the hotspots of everything folded, however the work was split
    for w in crew:
        w.close()
    return keys


def test_gaps_in_a_producers_sequence_numbers_show_as_events_lost_upstream(client, settings, city_map):
    now_ms = int(time.time() * 1000)
    sent = producers_sends(now_ms)
    expected = expected_gaps(sent)
    assert expected == {"foot": {"sim-foot-A": 11}, "complaints": {"hotline-1": 3}}

    keys = run(client, settings, city_map, sent, batch_size=15, workers=2, now_ms=now_ms)
    assert_settled(client, keys)
    assert CityReader(client, settings).dead_letter_counts()["foot"] == {"bad_coordinates": 1, "duplicate": 3}
    health = {s["source"]: s for s in snapshots.health_snapshot(CityReader(client, settings), now_ms / 1000)["sources"]}
    shown = {s: h["upstream"]["producers"] for s, h in health.items() if h["upstream"]["events"]}
    assert shown == expected
    assert {s: h["upstream"]["events"] for s, h in health.items()} == {
        "cases": 0, "foot": 11, "services": 0, "complaints": 3
    }  # fmt: skip
    page = str(render.health(snapshots.health_snapshot(CityReader(client, settings), now_ms / 1000)))
    assert "events lost upstream" in page and "11 from 1 producer" in page

    # One worker in large batches finds the same: marks do not depend on how the work was split.
    alone = type(settings)(**{**settings.__dict__, "key_prefix": settings.key_prefix + "-alone"})
    run(client, alone, city_map, sent, batch_size=2000, workers=1, now_ms=now_ms)
    assert digest(client, keys) == digest(client, Keys(alone.key_prefix))
