"""Hand-built valid events of every type, for tests that need one of each."""

from __future__ import annotations

from data import schema

LON, LAT = 114.0579, 22.5431  # Futian, in the demo city


def valid_fields(type_name: str) -> dict[str, object]:
    """Return a complete, valid set of fields of one event type (envelope excluded)."""
    common = {"lon": LON, "lat": LAT}
    by_type: dict[str, dict[str, object]] = {
        "case_report": {"case_id": "c-1", "status": "confirmed", "onset_ts": 1_700_000_000_000},
        "case_visit": {"case_id": "c-1", "venue_id": "V-1", "arrive_ts": 1_700_000_000_000, "leave_ts": 1_700_000_900_000},
        "checkin": {"person_id": "p-1", "venue_id": "V-1", "stay_s": 1200},
        "declaration": {"person_id": "p-1", "health_code": "green", "symptom": "none", "temperature_c": 36.6},
        "reading": {
            "sensor_id": "S-1", "sensor_kind": "infrared", "place_id": "P-1", "place_kind": "metro_station",
            "interval_s": 60, "people": 120, "fever": 2, "occupancy": 300, "capacity": 1000,
        },
        "application": {
            "application_id": "a-1", "service_code": "hukou", "channel": "app", "decision": "approved",
            "automatic": True, "processing_s": 0.8,
        },
        "appointment": {
            "appointment_id": "ap-1", "center_id": "SC-1", "service_code": "id_card", "action": "served",
            "slot_ts": 1_700_000_000_000, "wait_s": 420.0,
        },
        "complaint": {"complaint_id": "k-1", "channel": "hotline", "text": "井盖 missing on the road", "category": "manhole"},
        "complaint_update": {"complaint_id": "k-1", "action": "escalated", "level": "district"},
    }  # fmt: skip
    fields = by_type[type_name]
    return fields if type_name == "complaint_update" else {**fields, **common}


def raw_event(type_name: str, *, seq: int, ts: int, src: str = "test", **overrides) -> dict[str, str]:
    """Encode a valid event of a type, with some fields replaced."""
    return schema.encode(type_name, src=src, seq=seq, ts=ts, **{**valid_fields(type_name), **overrides})
