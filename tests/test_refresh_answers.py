"""A page's refresh sends only what changed since this browser last drew it: a tick with nothing new sends
no figure data, an event sends the figures it changes (and what they show is the count of the events fed),
and another window sends whole figures again. Posted through the real app's callback route, on a real
Redis fed through the real aggregator."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from dash._utils import split_callback_id, stringify_id

from bench.load import patched
from data.aggregator import Aggregator
from data.connection import client_from_url
from data.keys import Keys
from layouts import ids
from tests.events import raw_event

pytestmark = pytest.mark.redis

ROUTE = "/_dash-update-component"
MAP, CHANNELS = stringify_id(ids.SERVICES_MAP), ids.SERVICES_CHANNELS
FIGURES = {MAP, CHANNELS}


class Page:
    """The services page as a browser holds it: the controls, and the store carried from answer to answer."""

    def __init__(self, app):
        self.client = app.server.test_client()
        self.key = next(k for k in app.callback_map if f"{ids.SERVICES_RENDERED}.data" in k)
        self.callback = app.callback_map[self.key]
        self.values = {(ids.WINDOW, "value"): "1h", (ids.DISTRICT, "value"): None, (ids.NEIGHBOURHOOD, "data"): None}
        self.n = 0

    def refresh(self) -> tuple[int, dict]:
        """Post the page's refresh as its interval does; apply the store's answer as the browser does."""
        self.n += 1
        # The callback map gives a pattern's id as its JSON text; the page sends it as the object.
        outputs = [
            {"id": json.loads(s["id"]) if s["id"].startswith("{") else s["id"], "property": s["property"]}
            for s in split_callback_id(self.key)
        ]
        body = {
            "output": self.key,
            "outputs": outputs,
            "inputs": [
                {"id": ids.SERVICES_TICK, "property": "n_intervals", "value": self.n},
                {"id": ids.SCREEN, "property": "data", "value": None},  # a page, not a wall
                {"id": ids.PLAYBACK, "property": "data", "value": None},  # live, as the URL set it
            ],
            "state": [
                {"id": d["id"], "property": d["property"], "value": self.values.get((d["id"], d["property"]))}
                for d in self.callback["state"]
            ],
            "changedPropIds": [f"{ids.SERVICES_TICK}.n_intervals"],
        }
        response = self.client.post(ROUTE, data=json.dumps(body), content_type="application/json")
        answer = response.get_json()["response"] if response.status_code == 200 else {}
        store = answer.get(ids.SERVICES_RENDERED, {}).get("data")
        if store is not None:
            key = (ids.SERVICES_RENDERED, "data")
            self.values[key] = patched(self.values.get(key), store)
        return response.status_code, answer


def is_patch(value) -> bool:
    return isinstance(value, dict) and bool(value.get("__dash_patch_update"))


def channel_bars(figure) -> dict[str, float]:
    """The channels chart's bars (label: value), from the figure as the page holds it."""
    (bars,) = figure["data"]
    return dict(zip(bars["y"], bars["x"]))


@pytest.fixture
def city(settings, city_map):
    client = client_from_url(settings.redis_url)
    worker = Aggregator(client, settings, city_map)
    worker.ensure_groups()
    fed: list[str] = []

    def feed(channel: str) -> None:
        fed.append(channel)
        event = raw_event(
            "application", seq=len(fed), ts=int(time.time() * 1000), application_id=f"a-{len(fed)}", channel=channel
        )
        client.xadd(Keys(settings.key_prefix).stream("services"), event)
        worker.drain()

    yield feed, fed
    worker.close()
    client.close()


def test_a_refresh_with_nothing_new_sends_no_figure_and_an_event_sends_the_figures_it_changes(settings, city):
    from app import create_app

    feed, fed = city
    for channel in ("app", "app", "web"):
        feed(channel)
    now = [time.time()]
    app = create_app(settings, clock=lambda: now[0])
    refresh_s = settings.refresh_ms / 1000
    page = Page(app)

    status, first = page.refresh()
    assert status == 200 and set(first) >= FIGURES
    assert not any(is_patch(first[f]["figure"]) for f in FIGURES)  # the first draw is whole
    assert channel_bars(first[CHANNELS]["figure"]) == Counter(fed)
    chart = first[CHANNELS]["figure"]  # as the page holds it, answer after answer

    now[0] += refresh_s  # the next tick: a new snapshot, the same events
    status, second = page.refresh()
    assert not FIGURES & set(second), f"figure data sent with nothing new: {sorted(second)}"
    assert status in (200, 204)

    feed("kiosk")  # one event: a channel the chart has not shown
    now[0] += refresh_s
    status, third = page.refresh()
    assert status == 200 and CHANNELS in third and ids.SERVICES_NUMBERS in third
    channels = third[CHANNELS]["figure"]
    assert is_patch(channels)  # the keys of the traces that changed, layout (and the operator's zoom) kept
    # A new bar changes its labels and values: those keys alone are sent, not the trace's colours or type.
    assert sorted(tuple(op["location"]) for op in channels["operations"]) == [("data", 0, "x"), ("data", 0, "y")]
    chart = patched(chart, channels)
    assert channel_bars(chart) == Counter(fed)

    now[0] += refresh_s
    status, fourth = page.refresh()
    assert not FIGURES & set(fourth)  # what the third answer sent is now what this browser drew

    # Another window: the chart's title names it, so the chart gets its new title with its traces; the
    # rest of every layout stays (a map keeps the view the browser fitted or the operator zoomed to).
    page.values[(ids.WINDOW, "value")] = "24h"
    now[0] += refresh_s
    status, fifth = page.refresh()
    assert status == 200 and CHANNELS in fifth
    assert all(is_patch(fifth[f]["figure"]) for f in FIGURES & set(fifth)), "no figure is sent whole"
    titles = [op for op in fifth[CHANNELS]["figure"]["operations"] if op["location"] == ["layout", "title"]]
    assert len(titles) == 1 and "last 24 h" in json.dumps(titles[0]["params"]["value"])
    assert not [op for op in fifth[CHANNELS]["figure"]["operations"] if op["location"] == ["layout", "map"]]
    assert channel_bars(patched(chart, fifth[CHANNELS]["figure"])) == Counter(fed)


def test_a_store_of_another_shape_gets_whole_figures_not_an_error(settings, city):
    from app import create_app

    feed, _fed = city
    feed("app")
    page = Page(create_app(settings))
    for hostile in ("services::", {"layout": 5}, {"layout": "x", "digests": "y"}, [1, 2], {"digests": [None] * 4}):
        page.values[(ids.SERVICES_RENDERED, "data")] = hostile
        status, answer = page.refresh()
        assert status == 200 and set(answer) >= FIGURES
        assert not any(is_patch(answer[f]["figure"]) for f in FIGURES)
