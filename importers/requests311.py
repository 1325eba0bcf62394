"""311 / Open311-style service requests: one complaint per row, its words from the mapped text columns, its
category and channel through the mapping's value maps (``python -m importers 311``)."""

from __future__ import annotations

from importers.core import NO_POINT, Built, Context, Draft, Refusal, free_text, points, row_keys, times, values
from importers.mapping import Spec
from importers.table import SourceTable

KIND = "311"
HELP = "311 / Open311 service requests: one complaint per row (NYC, Boston... through a mapping)"
DEFAULT_MAPPING = "nyc311"
EVENT = "complaint"


def build(table: SourceTable, spec: Spec, ctx: Context) -> Built:
    """One complaint per row; a row without a readable time, a point or any words is refused."""
    spec.check_columns(table.columns, str(table.path))
    out = Built()
    ts = times(table, spec.time)
    lon, lat = points(table, spec.where)
    keys = row_keys(table, spec)
    text = free_text(table, spec)
    fields = {name: values(table, spec, name, ctx.salt) for name in ("complaint_id", "channel", "category")}
    for i in range(len(table)):
        if ts[i] < 0:
            out.refusals.append(Refusal(i, f"missing_field:ts ({spec.time.column} blank or not a time)"))
            continue
        if lon[i] != lon[i] or lat[i] != lat[i]:  # NaN: no usable point
            out.refusals.append(Refusal(i, NO_POINT))
            continue
        event = {name: column[i] for name, column in fields.items()}
        event.update(text=text[i], lon=float(lon[i]), lat=float(lat[i]))
        out.drafts.append(Draft(i, keys[i], EVENT, int(ts[i]), event))
    return out
