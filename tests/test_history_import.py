"""A past year imported as it was: New York's 311 requests of December 2013, written with ``--as-is`` into a
city that is already live, fold into hourly history with no dead letter, and the dashboard opened as of a
moment of that month answers with what a plain count of the file's rows gives."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dash._utils import stringify_id

from data.aggregator import Aggregator, CityMap
from data.connection import client_from_url
from data.keys import Keys
from data.read import CityReader, Window
from importers import core, mapping, requests311
from importers.core import Options
from layouts import ids
from tests.conftest import real_data
from tests.dash_posts import post_callback
from tests.events import raw_event
from tests.test_importers import NYC_BOX, grid_city, text_table

pytestmark = pytest.mark.redis

HOUR_S = 3600
NEW_YORK = "America/New_York"


def texts(component) -> list[str]:
    """Every text of a component tree as the callback route answers it, in order."""
    if isinstance(component, str | int | float):
        return [str(component)]
    if isinstance(component, list):
        return [t for c in component for t in texts(c)]
    if isinstance(component, dict):
        return texts(component.get("props", {}).get("children"))
    return []


def headline(numbers) -> dict[str, str]:
    """The headline numbers of a page's numbers block: label -> value as shown."""
    out = {}
    for block in numbers:
        value, label, *_ = texts(block["props"]["children"])
        out[label] = value
    return out


def complaints_page(app, window: str, playback: dict | None) -> dict:
    """Post the complaints page's refresh as a browser showing that window and moment does."""
    given = {
        (ids.COMPLAINTS_TICK, "n_intervals"): 1,
        (ids.PLAYBACK, "data"): playback,
        (ids.WINDOW, "value"): window,
    }
    return post_callback(app, f"{ids.COMPLAINTS_RENDERED}.data", given, f"{ids.COMPLAINTS_TICK}.n_intervals")


def test_nyc_2013_imported_as_is_into_a_live_city_reads_back_as_of_its_own_moments(settings, tmp_path):
    from app import create_app

    path = real_data("complaints", "nyc311_2013-12_sample.csv")
    rows = text_table(path)
    rows = rows[(rows["Latitude"] != "") & (rows["Longitude"] != "")].drop_duplicates("Unique Key")
    created = pd.to_datetime(rows["Created Date"], format="%m/%d/%Y %I:%M:%S %p").dt.tz_localize(NEW_YORK)
    filed_s = created.map(lambda t: int(t.timestamp()))
    city = grid_city(tmp_path, "nyc", NYC_BOX)
    settings = type(settings)(
        **{
            **settings.__dict__,
            "city": str(tmp_path / "nyc.geojson"),
            "city_levels": "district=district,community=community",
            "city_timezone": NEW_YORK,
        }
    )
    client = client_from_url(settings.redis_url)
    worker = Aggregator(client, settings, CityMap.of(city, settings.h3_resolution), name="history-import")
    worker.ensure_groups()
    # The city is live first: a request of today, folded, so the closed horizon is today's.
    lon, lat = (NYC_BOX[0] + NYC_BOX[2]) / 2, (NYC_BOX[1] + NYC_BOX[3]) / 2
    client.xadd(
        Keys(settings.key_prefix).stream("complaints"),
        raw_event("complaint", seq=1, ts=int(time.time() * 1000), complaint_id="today", lon=lon, lat=lat),
    )
    worker.drain()

    summary = core.run(
        requests311, path, mapping.load("nyc311_2013"), Options(mode="as-is"), settings, city,
        lambda: client_from_url(settings.redis_url),
    )  # fmt: skip
    assert summary.written == len(rows)
    worker.drain()
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["complaints"] == {}
    assert reader.freshness()["complaints"]["history_events"] == len(rows)
    # Every hour of the month holds the requests filed in it, as the file says.
    per_hour = filed_s.groupby(filed_s // HOUR_S * HOUR_S).size()
    for hour, n in per_hour.items():
        assert sum(reader.counts("complaints", "complaints.community", Window(hour, hour + HOUR_S)).values()) == n

    app = create_app(settings)
    busiest = datetime.fromtimestamp(int(per_hour.idxmax()) + HOUR_S, ZoneInfo(NEW_YORK)).replace(tzinfo=None)
    for window, length_s in (("1h", HOUR_S), ("24h", 24 * HOUR_S)):
        at = busiest.strftime("%Y-%m-%dT%H:%M")
        answer = complaints_page(app, window, {"at": at, "play": 0, "since": time.time()})
        end = int(datetime.fromisoformat(at).replace(tzinfo=ZoneInfo(NEW_YORK)).timestamp())
        inside = (filed_s >= end - length_s) & (filed_s < end)
        shown = headline(answer[ids.COMPLAINTS_NUMBERS]["children"])
        assert shown["complaints filed"] == f"{int(inside.sum()):,}", (window, at)
        assert shown["open"] == "–"  # the queue is kept as it stands now, not as it stood in 2013
        areas = answer[stringify_id(ids.COMPLAINTS_AREAS_MAP)]["figure"]["data"][0]
        assert sum(z for z in areas["z"] if z) == int(inside.sum())
    live = headline(complaints_page(app, "1h", None)[ids.COMPLAINTS_NUMBERS]["children"])
    assert live["complaints filed"] == "1" and live["open"] == "1"
    worker.close()
    client.close()
