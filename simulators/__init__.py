"""Simulated city life for citydeck's four streams: case tracing, foot traffic, e-government
services and citizen complaints.

Each source is a pure model (``simulators.generate``: city, seed, time window, scenario, scale ->
events) with no Redis; ``simulators.runner`` drives the simulated clock and hands events to
``simulators.producer``, which writes them. ``python -m simulators --help`` runs them.

Default rates at scale 1 (a city of Shenzhen's size), measured on an ordinary weekday by
``python -m simulators.rates``; the foot rate depends on the number of sensors the city's places
give (one reading per sensor per minute; the scale changes the people counted, not the readings):
"""

RATES_AT_SCALE_1 = """\
| source | weekday average (events/s) | busiest hour (events/s) | mix |
|---|---:|---:|---|
| cases | 23.8 | 52.1 | checkin 83%, declaration 17%, a few case reports |
| foot | 15.3 | 15.3 | reading 100% (demo city: about 920 sensors) |
| services | 3.4 | 9.6 | application 67%, appointment 33% |
| complaints | 0.6 | 2.4 | complaint_update 62%, complaint 38% |
"""
