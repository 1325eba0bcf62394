"""Every clock on screen is the city's (CITYDECK_CITY_TIMEZONE), whatever the zone of the server it runs on: the
header's clock and every moment the pages print (one function of the zone)."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from layouts import ids, render
from tests.dash_posts import post_callback

pytestmark = pytest.mark.redis

# Zones a day apart (UTC+14 and UTC-11): whatever the server's own zone, it is at most one of them.
ZONES = ("Pacific/Kiritimati", "Pacific/Pago_Pago")


@pytest.mark.parametrize("zone", ZONES)
def test_the_header_clock_and_a_numbers_as_of_read_the_citys_time(settings, zone):
    from app import create_app

    settings = type(settings)(**{**settings.__dict__, "city_timezone": zone})
    now = [time.time()]
    app = create_app(settings, clock=lambda: now[0])
    answer = post_callback(
        app, f"{ids.CLOCK}.children", {(ids.STATUS_TICK, "n_intervals"): 1}, f"{ids.STATUS_TICK}.n_intervals"
    )
    assert answer[ids.CLOCK]["children"] == datetime.fromtimestamp(now[0], ZoneInfo(zone)).strftime("%H:%M")


def test_the_citys_clock_is_one_function_of_the_zone_not_of_the_server():
    moment = 1_570_320_000  # 2019-10-06 00:00 UTC
    assert render.local(moment, "Asia/Shanghai") == "08:00"
    assert render.local(moment, "America/New_York", "%Y-%m-%d %H:%M") == "2019-10-05 20:00"
    assert render.when(moment * 1000, "Pacific/Kiritimati") == "2019-10-06 14:00:00"
    assert render.when(None, "UTC") == "" and render.when("x", "UTC") == ""
