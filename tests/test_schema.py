"""The schema: every event type round-trips, and every kind of bad entry is named, not raised."""

from __future__ import annotations

import math

import pytest

from data import schema
from tests.events import raw_event

NOW = 1_800_000_000_000


def as_entry(fields: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in fields.items()}


@pytest.mark.parametrize("event_type", [t.name for t in schema.EVENT_TYPES])
def test_every_event_type_round_trips_through_encode_and_decode(event_type):
    t = schema.event_type(event_type)
    decoded = schema.decode(t.source, as_entry(raw_event(event_type, seq=5, ts=NOW - 1000)), now_ms=NOW)
    assert decoded["type"] == event_type
    assert decoded["seq"] == 5 and decoded["ts"] == NOW - 1000 and decoded["src"] == "test"
    for f in t.fields:
        assert f.name in decoded


def test_fields_are_flat_readable_strings():
    fields = raw_event("reading", seq=1, ts=NOW)
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["lon"] == "114.057900" and fields["people"] == "120" and fields["v"] == str(schema.SCHEMA_VERSION)


def test_encode_refuses_a_missing_required_field_and_an_unknown_one():
    with pytest.raises(schema.SchemaError, match="missing_field:sensor_kind"):
        schema.encode("reading", src="s", seq=1, ts=NOW, sensor_id="S")
    with pytest.raises(schema.SchemaError, match="unknown field"):
        raw_event("checkin", seq=1, ts=NOW, colour="blue")


def _reject(source: str, entry: dict[bytes, bytes], max_text_length: int = 2000) -> str:
    decoded, rejected = schema.decode_batch(
        source, [entry], now_ms=NOW, future_tolerance_ms=300_000, max_text_length=max_text_length
    )
    assert not decoded and len(rejected) == 1
    return rejected[0].reason


def _with(type_name: str, **changes) -> dict[bytes, bytes]:
    entry = as_entry(raw_event(type_name, seq=1, ts=NOW))
    for k, v in changes.items():
        if v is None:
            entry.pop(k.encode())
        else:
            entry[k.encode()] = v.encode()
    return entry


@pytest.mark.parametrize(
    ("source", "entry", "reason"),
    [
        ("foot", _with("reading", people=None), "missing_field:people"),
        ("foot", _with("reading", sensor_id=""), "missing_field:sensor_id"),
        ("foot", _with("reading", people="many"), "bad_type:people"),
        ("foot", _with("reading", people="-3"), "out_of_range:people"),
        ("foot", _with("reading", lat="nan"), "bad_coordinates"),
        ("foot", _with("reading", lon="200"), "bad_coordinates"),
        ("foot", _with("reading", lon=None), "bad_coordinates"),
        ("foot", _with("reading", sensor_kind="radar"), "unknown_enum:sensor_kind"),
        ("foot", _with("reading", v="99"), "unknown_version:reading"),
        ("foot", _with("reading", type="teleport"), "unknown_type:teleport"),
        ("foot", _with("reading", ts=str(NOW + 3_600_000)), "future_time"),
        ("services", _with("application", automatic="maybe"), "bad_type:automatic"),
        ("services", _with("application", processing_s="inf"), "bad_type:processing_s"),
        ("complaints", _with("complaint", text="x" * 50), "text_too_long:text"),
    ],
)
def test_each_kind_of_bad_entry_is_rejected_with_its_reason(source, entry, reason):
    assert _reject(source, entry, max_text_length=40) == reason


@pytest.mark.parametrize(
    "value", [b"\xff", b"caf\xe9", b"\xed\xa0\x80", b"\xc0\x80", b"a\x00b", b"V|1", b"V\x1f1", b"\xc2\x85", b"\x7f"]
)
def test_an_id_that_is_not_printable_utf8_without_separators_is_rejected(value):
    entry = _with("checkin")
    entry[b"person_id"] = value
    assert _reject("cases", entry) == "bad_type:person_id"


def test_ids_in_any_script_are_accepted():
    ids = ["井盖-7", "Zürich", "\U0001f600", "\\xff"]
    decoded, rejected = schema.decode_batch(
        "cases", [_with("checkin", person_id=i) for i in ids], now_ms=NOW, future_tolerance_ms=0, max_text_length=10
    )
    assert not rejected and decoded[0].texts("person_id") == ids


@pytest.mark.parametrize("seq", [" 12", "12 ", "1_000", "+7", "007", "-0", "1e3", "0x1f", "١٢"])
def test_a_number_in_any_but_canonical_decimal_is_rejected(seq):
    assert _reject("foot", _with("reading", seq=seq)) == "bad_type:seq"
    assert _reject("foot", _with("reading", people=seq)) == "bad_type:people"


def test_an_entry_with_too_many_fields_or_bytes_is_refused_unread():
    good = as_entry(raw_event("reading", seq=1, ts=NOW))
    wide = good | {f"x{i}".encode(): b"1" for i in range(60)}
    big = good | {b"x": b"y" * 5000}
    size = sum(len(k) + len(v) for k, v in big.items())
    expected = [(0, f"too_large:{len(wide)} fields"), (2, f"too_large:{size} bytes")]
    # As mappings (a claim's reply) and as the flat lists a stream read returns.
    for batch in ([wide, good, big], [[x for kv in e.items() for x in kv] for e in (wide, good, big)]):
        decoded, rejected = schema.decode_batch(
            "foot", batch, now_ms=NOW, future_tolerance_ms=0, max_text_length=10, max_fields=64, max_bytes=4096
        )
        assert [(r.row, r.reason) for r in rejected] == expected
        assert [d.rows.tolist() for d in decoded] == [[1]]


def test_a_bad_entry_does_not_spoil_the_good_ones_in_its_batch():
    good = as_entry(raw_event("reading", seq=1, ts=NOW))
    bad = _with("reading", people="lots")
    decoded, rejected = schema.decode_batch(
        "foot", [good, bad, good], now_ms=NOW, future_tolerance_ms=0, max_text_length=10
    )
    assert [r.row for r in rejected] == [1]
    assert decoded[0].rows.tolist() == [0, 2]
    assert decoded[0].columns["people"].tolist() == [120, 120]


def test_absent_optional_fields_decode_as_missing_values():
    entry = as_entry(schema.encode("reading", src="s", seq=1, ts=NOW, sensor_id="S", sensor_kind="counter",
                                   place_id="P", place_kind="mall", interval_s=60, people=4, lon=114.0, lat=22.5))  # fmt: skip
    decoded = schema.decode("foot", entry, now_ms=NOW)
    assert decoded["fever"] == -1 and decoded["capacity"] == -1
    decl = schema.decode("cases", _with("declaration", temperature_c=None), now_ms=NOW)
    assert math.isnan(decl["temperature_c"])


def test_every_field_has_a_unit_and_help():
    for t in schema.EVENT_TYPES:
        for f in schema.ENVELOPE + t.fields:
            assert f.unit and f.help, f"{t.name}.{f.name} is undocumented"


DEMO_BOX = (113.748, 22.446, 114.624, 22.865)  # the demo city's bounds


@pytest.mark.parametrize(
    ("lon", "lat", "reason"),
    [
        (0, 0, "null_island"),
        (-73.92, 40.63, "outside_city"),  # New York, in a deployment for Shenzhen
        (113.26, 23.13, "outside_city"),  # Guangzhou: about 30 km beyond the box, more than the margin
        (114.0579, 22.5431, None),  # Futian
        (114.70, 22.50, None),  # beyond the box, within the margin: folded as outside any area, not refused
    ],
)
def test_points_at_null_island_or_beyond_the_city_margin_are_refused_with_their_own_reasons(lon, lat, reason):
    entry = as_entry(raw_event("complaint", seq=1, ts=NOW, lon=lon, lat=lat))
    bounds = schema.city_bounds(DEMO_BOX, margin_km=20)
    decoded, rejected = schema.decode_batch(
        "complaints", [entry], now_ms=NOW, future_tolerance_ms=0, max_text_length=100, bounds=bounds
    )
    assert [r.kind for r in rejected] == ([reason] if reason else [])
    assert reason in schema.REJECT_REASONS or reason is None
    # Without the city's bounds the schema knows only the globe, and that (0, 0) stands for no place.
    _, unbounded = schema.decode_batch("complaints", [entry], now_ms=NOW, future_tolerance_ms=0, max_text_length=100)
    assert [r.kind for r in unbounded] == (["null_island"] if reason == "null_island" else [])


def test_the_city_margin_widens_the_box_by_that_distance_on_every_side():
    bounds = schema.city_bounds(DEMO_BOX, margin_km=20)
    assert bounds.min_lat == pytest.approx(DEMO_BOX[1] - 20 / 111.32)
    assert bounds.max_lat == pytest.approx(DEMO_BOX[3] + 20 / 111.32)
    # A degree of longitude is shorter than a degree of latitude away from the equator: more degrees for 20 km.
    assert DEMO_BOX[0] - bounds.min_lon > 20 / 111.32
    assert bounds.max_lon - DEMO_BOX[2] == pytest.approx(DEMO_BOX[0] - bounds.min_lon)
