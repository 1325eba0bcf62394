"""Case routes: the places confirmed cases visited, with when, one ``case_visit`` per row; the case ids are
replaced by pseudonymous tokens. With ``options.confirmed`` every case of the file is a confirmed case, and
one ``case_report`` per case (at its last visit) makes its visits exposure sites
(``python -m importers routes``)."""

from __future__ import annotations

from importers.core import NO_POINT, Built, Context, Draft, Refusal, points, row_keys, times, values
from importers.mapping import Spec
from importers.table import SourceTable

KIND = "routes"
HELP = "case routes: a row per visit of a case (id, time, place); ids become pseudonymous tokens"
DEFAULT_MAPPING = "ds4c_routes"
HOUR_MS = 3_600_000


def build(table: SourceTable, spec: Spec, ctx: Context) -> Built:
    """One visit per row, lasting ``options.visit_hours`` from its time unless a leave column says more."""
    leave_column = spec.options.get("leave")
    spec.check_columns(table.columns, str(table.path), also=[leave_column] if leave_column else [])
    out = Built()
    arrive = times(table, spec.time)
    leave = None
    if leave_column:
        from dataclasses import replace

        leave = times(table, replace(spec.time, column=leave_column, hour=None))
    stay_ms = int(float(spec.options.get("visit_hours", 24)) * HOUR_MS)
    lon, lat = points(table, spec.where)
    keys = row_keys(table, spec)
    cases = values(table, spec, "case_id", ctx.salt)
    venues = values(table, spec, "venue_id")
    for i in range(len(table)):
        if arrive[i] < 0:
            out.refusals.append(Refusal(i, f"missing_field:arrive_ts ({spec.time.column} blank or not a time)"))
            continue
        if lon[i] != lon[i] or lat[i] != lat[i]:
            out.refusals.append(Refusal(i, NO_POINT))
            continue
        until = int(leave[i]) if leave is not None and leave[i] >= arrive[i] else int(arrive[i]) + stay_ms
        event = {
            "case_id": cases[i],
            "venue_id": venues[i],
            "arrive_ts": int(arrive[i]),
            "leave_ts": until,
            "lon": float(lon[i]),
            "lat": float(lat[i]),
        }
        out.drafts.append(Draft(i, keys[i], "case_visit", int(arrive[i]), event))
    if spec.options.get("confirmed"):
        out.drafts += confirmed_reports(out.drafts)
    return out


def confirmed_reports(visits: list[Draft]) -> list[Draft]:
    """One ``case_report`` (confirmed) per case, at the end and place of its last visit."""
    last: dict[str, Draft] = {}
    for v in visits:
        case = v.fields["case_id"]
        if case is not None and (case not in last or v.fields["leave_ts"] > last[case].fields["leave_ts"]):
            last[case] = v
    return [
        Draft(
            v.row,
            ("case_report", case),
            "case_report",
            v.fields["leave_ts"],
            {"case_id": case, "status": "confirmed", "lon": v.fields["lon"], "lat": v.fields["lat"]},
        )
        for case, v in last.items()
    ]
