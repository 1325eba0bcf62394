"""Periodic counts in wide tables: a row per counting station and a column per period (the morning, midday and
evening counts of a season), each count a ``reading`` over its period. Zero or blank means the station was
not counted then, not that nobody passed; period columns match in any letter case
(``python -m importers periods``)."""

from __future__ import annotations

import pandas as pd

from importers.core import NO_POINT, Built, Context, Draft, Refusal, points, row_keys, values
from importers.hourly import count_cell, reading, sensor_id
from importers.mapping import MappingError, Spec
from importers.table import SourceTable

KIND = "periods"
HELP = "periodic counts, wide: a row per station, a column per period (zero or blank: not counted)"
DEFAULT_MAPPING = "periods_example"
NOT_COUNTED = frozenset({"", "0", "-", "na", "n/a"})


def build(table: SourceTable, spec: Spec, ctx: Context) -> Built:
    """One reading per station and counted period, stamped at the period's end."""
    spec.check_columns(table.columns, str(table.path))
    periods = spec.options.get("periods")
    if not periods:
        raise MappingError(f"{spec.path}: options.periods must list the period columns with their start and hours")
    by_case = {c.strip().casefold(): c for c in table.columns}
    missing = [p for p in periods if p.strip().casefold() not in by_case]
    if missing:
        raise MappingError(
            f"{spec.path} names period column(s) {missing} that {table.path} lacks (in any case);"
            f" its columns are: {', '.join(repr(c) for c in table.columns)}"
        )
    zone = spec.options.get("timezone", "UTC")
    spans = {}
    for name, period in periods.items():
        try:
            start = pd.Timestamp(period["start"])
            hours = float(period["hours"])
        except (KeyError, TypeError, ValueError) as error:
            raise MappingError(f"{spec.path}: period {name!r} needs a start time and hours ({error})") from None
        start = start.tz_localize(zone) if start.tzinfo is None else start
        spans[by_case[name.strip().casefold()]] = (int(start.tz_convert("UTC").value // 1_000_000), int(hours * 3600))
    not_counted = frozenset(str(v).casefold() for v in spec.options.get("not_counted", NOT_COUNTED))
    out = Built()
    lon, lat = points(table, spec.where)
    names = values(table, spec, "sensor_id")
    keys = row_keys(table, spec)
    for column, (start_ms, interval_s) in spans.items():
        cells = table.frame[column].to_numpy()
        for i in range(len(table)):
            count = count_cell(cells[i], not_counted)
            if count is None or count == 0:
                out.notes["periods not counted (zero or blank)"] += 1
                continue
            if isinstance(count, str):
                out.refusals.append(Refusal(i, f"bad_type:people ({column}={count[:40]!r})"))
                continue
            if names[i] is None:
                out.refusals.append(Refusal(i, "missing_field:sensor_id"))
                continue
            if lon[i] != lon[i] or lat[i] != lat[i]:
                out.refusals.append(Refusal(i, NO_POINT))
                continue
            event = reading(sensor_id(names[i]), count, interval_s, float(lon[i]), float(lat[i]), spec.constants)
            out.drafts.append(
                Draft(i, (*keys[i], column.casefold()), "reading", start_ms + interval_s * 1000 - 1, event)
            )
    return out
