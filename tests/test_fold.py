"""Folding is pure: a decoded batch becomes counters without Redis."""

from __future__ import annotations

import time

from data.fold import Folded, fold
from data.read.windows import rollup
from data.schema import decode_batch
from tests.events import raw_event


def test_applications_per_district_are_the_sums_of_their_communities(city_map, demo_city):
    now = int(time.time() * 1000)
    places = demo_city.places.sample(40, random_state=3)
    channels, decisions = ("app", "web", "kiosk", "counter"), ("approved", "rejected", "pending")
    events = [
        raw_event(
            "application", seq=i, ts=now - i * 1000, lon=lon, lat=lat, application_id=f"a-{i}",
            channel=channels[i % 4], decision=decisions[i % 3], automatic=bool(i % 2), processing_s=0.5 * i,
        )
        for i, (lon, lat) in enumerate(zip(places["lon"], places["lat"]))
    ]  # fmt: skip
    entries = [{k.encode(): str(v).encode() for k, v in e.items()} for e in events]
    decoded, rejected = decode_batch("services", entries, now_ms=now, future_tolerance_ms=0, max_text_length=2000)
    assert not rejected
    folded = Folded()
    for d in decoded:
        fold(d, city_map.locate(d.columns["lon"], d.columns["lat"]), 60, folded)
    district_of = dict(zip(demo_city.communities["community_id"], demo_city.communities["district_id"]))
    for name in ("channel", "decision_mode", "processing"):
        by_community: dict[str, int] = {}
        by_district: dict[str, int] = {}
        for (facet, _), fields in folded.counters.items():
            into = {f"applications.community_{name}": by_community, f"applications.district_{name}": by_district}
            for key, n in fields.items():
                if facet in into:
                    into[facet][key] = into[facet].get(key, 0) + n
        assert by_district and rollup(by_community, district_of) == by_district
        # Only decisions time the process.
        timed = sum(decisions[i % 3] != "pending" for i in range(len(events)))
        assert sum(by_district.values()) == (timed if name == "processing" else len(events))
