"""Poison entries never stop the flow: whatever bytes an entry holds, in however many fields, it is
folded or dead-lettered with a reason, its batch commits whole, and the workers go on.

Each test drains with the real aggregator into the test Redis and ends by asking the ledger where
every entry went; where the poison can be left out, the aggregates equal those of a clean run.
"""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from data.aggregator import Aggregator
from data.keys import SOURCES, Keys
from data.read import CityReader
from data.schema import EVENT_TYPES
from tests.events import raw_event
from tests.ledger import assert_settled, digest

pytestmark = pytest.mark.redis

TYPES_OF = [(t.source, t.name) for t in EVENT_TYPES]
ID_FIELDS = {
    "foot": ("sensor_id", "place_id"),
    "cases": ("case_id", "person_id", "venue_id"),
    "services": ("application_id", "service_code", "appointment_id", "center_id"),
    "complaints": ("complaint_id", "text", "department", "note"),
}
# Bytes that broke workers or keys: a lone 0xFF, a lone surrogate's UTF-8 form, an overlong NUL, a NUL,
# the separators keepers join ids with, and numbers Python's int() is lenient about.
POISON = (
    b"\xff", b"caf\xe9", b"\xed\xa0\x80", b"\xc0\x80", b"\x00", b"a\x00b", b"|", b"V-1\x1f9", b"\\xff",
    b" 12", b"1_000", b"+7", b"007", b"-0", b"", b"\xf0\x9f\x98\x80",
)  # fmt: skip

# A refused event that still names its producer and number reached Redis: its producer's sequence counts
# it received, so the dead letters and the producers' bookkeeping differ from a clean run's by design.
# Each drain ends by publishing the complaint hotspots at its own moment (by the real clock): their window and
# time differ from run to run, whatever was folded.
REFUSED_DIFFER = (":dead", ":producers", ":state:complaints:hotspots")


def now_ms() -> int:
    return int(time.time() * 1000)


def prefixed(settings, **changes):
    return type(settings)(**{**settings.__dict__, "key_prefix": f"t{uuid.uuid4().hex[:10]}", **changes})


def write(client, keys: Keys, entries) -> list[tuple[str, bytes]]:
    pipe = client.pipeline(transaction=False)
    for source, fields in entries:
        pipe.xadd(keys.stream(source), fields)
    return [(source, entry_id) for (source, _), entry_id in zip(entries, pipe.execute())]


def drain(client, settings, city_map) -> None:
    worker = Aggregator(client, settings, city_map, name="poisoned")
    worker.ensure_groups()
    worker.drain()
    worker.close()


def drain_written(client, settings, city_map, entries) -> list[tuple[str, bytes]]:
    written = write(client, Keys(settings.key_prefix), entries)
    drain(client, settings, city_map)
    return written


def forget(client, keys: Keys) -> None:
    for key in client.scan_iter(match=f"*{keys.prefix}*", count=1000):
        client.delete(key)


def valid_mix(t: int, n: int = 12) -> list[tuple[str, dict]]:
    """Valid events of every type, one producer, distinct sequence numbers."""
    return [(source, raw_event(name, seq=i, ts=t - i)) for i in range(n) for source, name in [TYPES_OF[i % 9]]]


# ---------------------------------------------------------------------------- any bytes in any field


@st.composite
def poisoned_entry(draw, t: int):
    source, name = draw(st.sampled_from(TYPES_OF))
    fields = {k.encode(): v.encode() for k, v in raw_event(name, seq=draw(st.integers(0, 50)), ts=t, src="odd").items()}
    names = [*fields, *(n.encode() for n in ID_FIELDS[source]), b"type", b"src", b"seq", b"v", b"x"]
    for _ in range(draw(st.integers(1, 3))):
        name_bytes = draw(st.sampled_from(names) | st.binary(min_size=1, max_size=8))
        value = draw(st.sampled_from(POISON) | st.binary(max_size=24) | st.text(max_size=12).map(str.encode))
        fields[name_bytes] = value
    return source, fields


@pytest.mark.slow
def test_any_bytes_in_any_field_are_folded_or_dead_lettered_and_the_valid_events_counted(client, settings, city_map):
    t = now_ms()
    clean = prefixed(settings)
    drain_written(client, clean, city_map, valid_mix(t))
    clean_digest = digest(client, Keys(clean.key_prefix), leave_out=REFUSED_DIFFER)

    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(poisoned_entry(t), min_size=1, max_size=8), st.randoms(use_true_random=False))
    def check(poisoned, rng):
        run = prefixed(settings)
        keys = Keys(run.key_prefix)
        valid = valid_mix(t)
        mixed = valid + poisoned
        rng.shuffle(mixed)
        written = write(client, keys, mixed)
        try:
            drain(client, run, city_map)
            found = assert_settled(client, keys)
            folded = {(source, entry_id) for source, s in found.items() for entry_id in s.folded}
            assert {w for w, entry in zip(written, mixed) if entry in valid} <= folded
            events = CityReader(client, run).freshness()
            assert sum(events[s]["events"] for s in SOURCES) == len(folded)
            assert all(v["pending"] == 0 for v in CityReader(client, run).consumer_lag().values())
            if len(folded) == len(valid):  # every poisoned entry refused: the aggregates are the clean run's
                assert digest(client, keys, leave_out=REFUSED_DIFFER) == clean_digest
        finally:
            forget(client, keys)

    check()


def test_two_reports_of_one_case_at_one_instant_one_without_onset_are_both_folded(client, settings, city_map):
    t = now_ms()
    run = prefixed(settings)
    reports = [raw_event("case_report", seq=1, ts=t, onset_ts=None), raw_event("case_report", seq=2, ts=t)]
    drain_written(client, run, city_map, [("cases", r) for r in reports])
    found = assert_settled(client, Keys(run.key_prefix), ["cases"])
    assert len(found["cases"].folded) == 2


# ---------------------------------------------------------------------------- commits of any size


def test_an_entry_with_five_thousand_fields_is_dead_lettered_and_its_batch_commits_whole(client, settings, city_map):
    t = now_ms()
    clean, poisoned = prefixed(settings), prefixed(settings)
    valid = valid_mix(t)
    drain_written(client, clean, city_map, valid)
    wide = [
        ("foot", {f"x{i}": "1" for i in range(5000)}),  # no type: refused, and its letter broke the commit
        ("foot", raw_event("reading", seq=99, ts=t, src="wide") | {f"x{i}": "1" for i in range(4990)}),
    ]
    drain_written(client, poisoned, city_map, [*valid[:6], *wide, *valid[6:]])

    keys = Keys(poisoned.key_prefix)
    assert_settled(client, keys)
    assert digest(client, keys, leave_out=REFUSED_DIFFER) == digest(
        client, Keys(clean.key_prefix), leave_out=REFUSED_DIFFER
    )
    reader = CityReader(client, poisoned)
    assert reader.dead_letter_counts()["foot"] == {"too_large": 2}
    assert all(v["pending"] == 0 for v in reader.consumer_lag().values())


def test_a_batch_of_events_in_thousands_of_minutes_commits_whole(client, settings, city_map):
    t = now_ms() // 60_000 * 60_000
    run = prefixed(settings, batch_size=5000, retention_hours=96.0)
    minutes = 4500  # more buckets stamped in one commit than Lua can unpack at once
    entries = [("foot", raw_event("reading", seq=i, ts=t - i * 60_000)) for i in range(minutes)]
    drain_written(client, run, city_map, entries)
    keys = Keys(run.key_prefix)
    found = assert_settled(client, keys, ["foot"])
    assert len(found["foot"].folded) == minutes
    assert CityReader(client, run).freshness()["foot"]["events"] == minutes


# ---------------------------------------------------------------------------- dead letters stay small


def test_a_dead_letter_keeps_a_bounded_excerpt_of_oversized_fields_and_says_so(client, settings, city_map):
    t = now_ms()
    run = prefixed(settings)
    huge_text = raw_event("complaint", seq=1, ts=t) | {"text": "noise " * 900_000}  # about 5 MB
    long_text = raw_event("complaint", seq=2, ts=t) | {"text": "noise " * 5_000, "dead_reason": "forged"}
    many_fields = {f"x{i}": "y" * 2000 for i in range(5000)}
    entries = [("complaints", e) for e in (huge_text, long_text, many_fields)]
    ids = [entry_id for _, entry_id in drain_written(client, run, city_map, entries)]
    assert_settled(client, Keys(run.key_prefix), ["complaints"])

    letters = {d["dead_entry_id"].encode(): d for d in CityReader(client, run).dead_letters("complaints")}
    huge, long, wide = (letters[i] for i in ids)
    assert huge["dead_reason"] == f"too_large:{sum(len(k) + len(v.encode()) for k, v in huge_text.items())} bytes"
    assert long["dead_reason"] == "text_too_long:text" and long["original_dead_reason"] == "forged"
    assert wide["dead_reason"] == "too_large:5000 fields"
    limit, kept = run.dead_letter_field_bytes, run.max_event_fields
    for letter in (huge, long, wide):
        assert len(letter) <= kept + 5
        assert all(len(k.encode()) <= limit and len(v.encode()) <= limit for k, v in letter.items())
    for letter in (huge, long):
        assert letter["text"] == "noise " * (limit // 6) + "noise "[: limit % 6]
        assert letter["complaint_id"] == huge_text["complaint_id"] and letter["channel"] == "hotline"
        assert letter["dead_cut"] == f"cut to {limit} bytes: text"
    assert wide["dead_cut"] == (
        f"{kept} of 5000 fields kept; cut to {limit} bytes: " + ", ".join(f"x{i}" for i in range(kept))
    )


# ---------------------------------------------------------------------------- idempotency keys


def test_two_producers_whose_ids_differ_only_in_encoding_never_share_an_idempotency_key(client, settings, city_map):
    t = now_ms()
    run = prefixed(settings)
    raw_byte = {k.encode(): v.encode() for k, v in raw_event("reading", seq=1, ts=t).items()} | {b"src": b"\xff"}
    escaped = raw_event("reading", seq=1, ts=t, src="\\xff")
    written = drain_written(client, run, city_map, [("foot", raw_byte), ("foot", escaped)])
    found = assert_settled(client, Keys(run.key_prefix), ["foot"])
    assert found["foot"].folded == {written[1][1]}
    assert CityReader(client, run).dead_letter_counts()["foot"] == {"bad_type": 1}
    (letter,) = CityReader(client, run).dead_letters("foot")
    assert letter["dead_reason"] == "bad_type:src"


def test_sequence_numbers_are_read_in_canonical_decimal_only(client, settings, city_map):
    t = now_ms()
    run = prefixed(settings)
    lenient = [" 12", "12 ", "1_000", "+7", "007", "-0", "٣"]
    entries = [("foot", raw_event("reading", seq=1, ts=t) | {"seq": seq}) for seq in lenient]
    canonical = [("foot", raw_event("reading", seq=seq, ts=t)) for seq in (0, 7, 12, 1000)]
    drain_written(client, run, city_map, entries + canonical)
    assert_settled(client, Keys(run.key_prefix), ["foot"])
    reader = CityReader(client, run)
    assert reader.dead_letter_counts()["foot"] == {"bad_type": len(lenient)}
    assert reader.freshness()["foot"]["events"] == len(canonical)
