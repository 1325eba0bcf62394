"""Renderers: a snapshot (plain values) in, a small component tree out, for the parts of a view that
are text and tables rather than figures."""

from __future__ import annotations

import re
import time
import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

from dash import html

from layouts.widgets import card, empty, number, table
from views.figures import duration_text


def _n(x) -> str:
    return "–" if x is None else f"{x:,}"


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _vs(now: int, before: int | None) -> tuple[str, str]:
    if not before:
        return "no history for yesterday", ""
    change = (now - before) / before
    return f"{change:+.0%} vs same window yesterday", "up" if change > 0.1 else ("down" if change < -0.1 else "")


# ---------------------------------------------------------------------------- numbers per view


def _largest(h: dict) -> tuple[str, str]:
    largest = h["largest"]
    if largest is None:
        return "–", "no linked cases"
    sites = largest["sites"]
    return f"{largest['size']} cases", f"{sites} site{'s' if sites != 1 else ''}: {largest['site_names']}"


SOURCES = {
    "cases": "case reports, check-ins and health codes",
    "foot": "people counters and infrared sensors",
    "services": "e-government applications and appointments",
    "complaints": "citizen complaints and their updates",
}


# Numbers that count what holds now (a stock), not what happened in the window.
NOW_NUMBERS = frozenset(
    {"yellow", "red", "active contacts (yellow)", "red codes", "sensors", "silent sensors", "crowded places",
     "open", "overdue", "counters needed"}
)  # fmt: skip


def with_provenance(numbers: list, source: str, snap: dict) -> list:
    """Each headline number with a line of provenance on hover: where it comes from, the area and the window
    it counts (or "now" for what holds now), the rule behind it (its hint), and when it was last worked out
    (to the minute)."""
    at = local(snap["at"], snap["tz"])
    for n in numbers:
        label, hint = n.children[1].children, n.children[2].children or ""
        if label in NOW_NUMBERS:
            # What holds now is kept only as it stands now: a past moment's page says so rather than "now".
            counts = f"{snap['scope']} · " + ("kept only as it stands now: not shown" if snap.get("as_of") else "now")
        else:
            counts = snap["label"]
        rule = hint.replace(snap["label"], "").replace(snap["scope"], "").strip(" ·")
        n.title = f"{label}: from {SOURCES[source]} · {counts}" + (f" · {rule}" if rule else "") + f" · as of {at}"
    return numbers


def _cases_numbers(snap: dict) -> list:
    h = snap["headline"]
    size, where = _largest(h)
    return [
        number("confirmed cases", h["confirmed"], snap["label"], "alert"),
        number("suspected cases", h["suspected"]),
        number("active contacts (yellow)", h["yellow"], "in quarantine now", "warn"),
        number("red codes", h["red"], "cases in isolation now", "alert"),
        number("exposure sites", _n(h["sites"])),
        number("case clusters", _n(h["clusters"]), "cases linked by a shared venue"),
        number("largest cluster", size, where),
    ]


def cases_clusters(snap: dict) -> html.Div | html.Table:
    """Clusters, largest first: size ('<3' when few), sites, when first and last seen; no person ids."""
    rows = snap["clusters"]
    if not rows:
        return empty("No cluster: no two cases linked by a shared venue.")
    shown = [
        [r["cluster"], r["size"], r["sites"], r["site_names"], _ago(r["first_seen_h"]), _ago(r["last_seen_h"])]
        for r in rows[:10]
    ]
    return table(["cluster", "cases", "sites", "where", "first seen", "last seen"], shown)


def _ago(hours: float) -> str:
    return "now" if hours < 1 else f"{hours:.0f} h ago"


def cases_areas(snap: dict) -> html.Table:
    """Areas by confirmed cases, small counts shown as '<3' and listed by name, never ranked among themselves."""
    areas = snap["cases"]
    rows = list(zip(areas["names"], areas["shown"], areas["exact"]))
    exact = sorted((r for r in rows if r[2] is not None), key=lambda r: (-r[2], r[0]))
    small = sorted((r for r in rows if r[2] is None), key=lambda r: r[0])
    return table(["area", "confirmed"], [[name, text] for name, text, _ in (exact + small)[:15]])


def _foot_numbers(snap: dict) -> list:
    h = snap["headline"]
    hint, tone = _vs(h["people"], h["people_yesterday"])
    return [
        number("people counted", _n(h["people"]), f"{snap['label']} · {hint}", tone),
        number("sensors", _n(h["sensors"])),
        number(
            "crowded places",
            _n(len(snap["crowded"])),
            f"occupancy ≥ {snap['crowding_share']:.0%} of capacity",
            "alert" if snap["crowded"] else "",
        ),
        number(
            "fever alerts",
            _n(len(snap["fever"])),
            "sensors with improbably many fevers",
            "alert" if snap["fever"] else "",
        ),
        number(
            "silent sensors",
            _n(snap["silent_count"]),
            "no reading for 3 intervals",
            "warn" if snap["silent_count"] else "",
        ),
    ]


def foot_alerts(snap: dict) -> list:
    history = (
        ""
        if snap["history_days"]
        else "no history yet: now-versus-normal needs the same hour on comparable previous days"
    )
    crowded = [
        [r["name"], r["kind"].replace("_", " "), f"{r['occupancy']:,} / {r['capacity']:,}", f"{r['crowding']:.0%}"]
        for r in snap["crowded"]
    ]
    fever = [[r["name"], r["kind"].replace("_", " "), r["fever"]] for r in snap["fever"]]
    silent = [[r["name"], r["sensor"], duration_text(r["age_s"])] for r in snap["silent"]]
    return [
        card(
            "Crowding",
            table(["place", "kind", "occupancy", "of capacity"], crowded)
            if crowded
            else empty(f"no place at or above {snap['crowding_share']:.0%} of capacity"),
        ),
        card(
            "Fever alerts",
            table(["place", "kind", "readings > 37.3 °C"], fever)
            if fever
            else empty("no fever readings in the window"),
        ),
        card(
            "Silent sensors",
            table(["place", "sensor", "silent for"], silent) if silent else empty("every sensor is reporting"),
            html.Div(history, className="note") if history else None,
        ),
    ]


def _services_numbers(snap: dict) -> list:
    h = snap["headline"]
    auto = snap["modes"].get("auto", {})
    manual = snap["modes"].get("manual", {})
    return [
        number("applications", _n(h["applications"]), snap["label"]),
        number(
            "this hour",
            _n(h["applications_hour"]),
            f"{snap['labels']['hour']} · {_pct(h['share_auto_hour'])} automatic",
        ),
        number(
            "automatic decisions",
            _pct(snap["share_auto"]),
            f"{snap['label']} · median {duration_text(auto.get('median_s'))} · p95 {duration_text(auto.get('p95_s'))}",
        ),
        number(
            "clerk decisions",
            f"{duration_text(manual.get('median_s'))}",
            f"{snap['label']} · median · p95 {duration_text(manual.get('p95_s'))}",
        ),
        number("counters needed", _n(h["counters_needed"]), f"centers in {snap['scope']}, Erlang C, wait ≤ 10 min"),
    ]


def service_centers(snap: dict) -> html.Div:
    rows = sorted(snap["centers"], key=lambda r: (-r.get("counters_needed", 0), -r["queue"]))[:12]
    if not rows:
        return empty("no service center in this area")
    return table(
        ["center", "queue", "arrivals/h", "mean wait", "counters open", "needed"],
        [
            [
                r["name"],
                r["queue"],
                r["arrivals_per_h"],
                duration_text(r["mean_wait_s"]),
                r.get("counters_open", "–"),
                r.get("counters_needed", "–"),
            ]
            for r in rows
        ],
    )


def _complaints_numbers(snap: dict) -> list:
    h = snap["headline"]
    return [
        number("complaints filed", _n(h["filed"]), snap["label"]),
        number(
            "urgent categories",
            _n(h["urgent"]),
            "triaged as manhole, public safety, water, drainage",
            "alert" if h["urgent"] else "",
        ),
        number("open", _n(h["open"]), f"routed and not yet closed, in {snap['scope']}"),
        number("overdue", _n(h["overdue"]), "past the deadline at their level", "alert" if h["overdue"] else ""),
        number("escalations", _n(h["escalated"]), snap["labels"]["updates"]),
        number(
            "hotspots",
            _n(h["hotspots"]),
            "H3 cells, Gi* p < 0.05, 3+ complaints around"
            + _hotspots_age(snap["hotspots_as_of"], snap.get("hotspots_published", True)),
            "warn" if h["hotspots"] else "",
        ),
    ]


def _hotspots_age(as_of: dict | None, published: bool = True) -> str:
    """What a hotspots figure adds when it is not of now: none published yet, or how old they are; for a past
    moment or a custom window, that hotspots are published for the live preset windows only."""
    if not published:
        return " · published for the live preset windows only"
    if as_of is None:
        return " · not published yet"
    return f" · computed {_age(as_of['age_s'])}" if as_of["stale"] else ""


def complaints_table_note(snap: dict) -> str:
    if snap.get("as_of"):
        return "Open complaints are kept as they stand now: a page of a past moment lists none."
    total = snap["table_total_rows"]
    shown = len(snap["table"])
    note = "Each open complaint in scope, most urgent first; overdue ones are highlighted."
    return note + (f" Showing the first {shown:,} of {total:,}." if total > shown else "")


def slug(name: str, longest: int = 60) -> str:
    """A name as part of a file name: lower case, apostrophes and quotes dropped, every other run of spaces and
    punctuation one '-'; letters of any script kept (a Chinese name stays readable)."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = re.sub(r"[\'\"`‘’“”]", "", text)
    text = re.sub(r"[\W_]+", "-", text).strip("-")[:longest].strip("-")
    return text or "area"


def export_file_name(view: str, area: str | None, window: str, at: float, zone: str) -> str:
    """The file a view's table exports to: the view, the drilled area (or 'city'), the window and the snapshot's
    time in the city's time zone, e.g. 'citydeck-complaints-futian-1h-2026-12-04T1530.csv'."""
    return f"citydeck-{view}-{slug(area) if area else 'city'}-{slug(window)}-{local(at, zone, '%Y-%m-%dT%H%M')}.csv"


def _overview_numbers(snap: dict) -> dict[str, list]:
    c, f, s, k = (snap[x]["headline"] for x in ("cases", "foot", "services", "complaints"))
    hint, tone = _vs(f["people"], f["people_yesterday"])
    return {
        "cases": [
            number("confirmed", c["confirmed"], snap["label"], "alert"),
            number("yellow", c["yellow"], "", "warn"),
            number("red", c["red"], "", "alert"),
            number("clusters", _n(c["clusters"])),
        ],
        "foot": [
            number("people counted", _n(f["people"]), f"{snap['label']} · {hint}", tone),
            number("silent sensors", _n(snap["foot"]["silent"]), "", "warn" if snap["foot"]["silent"] else ""),
        ],
        "services": [
            number("applications this hour", _n(s["applications_hour"]), snap["scope"]),
            number("automatic", _pct(s["share_auto_hour"])),
        ],
        "complaints": [
            number("open", _n(k["open"]), f"in {snap['scope']}"),
            number(
                "hotspots",
                _n(k["hotspots"]),
                _hotspots_age(
                    snap["complaints"]["hotspots_as_of"], snap["complaints"].get("hotspots_published", True)
                ).removeprefix(" · "),
                "warn" if k["hotspots"] else "",
            ),
        ],
    }


# ---------------------------------------------------------------------------- health


def health(snap: dict, raw_fields: bool = False) -> list:
    """The health page; a dead letter's fields (masked) only with ``raw_fields``, else its source and reason."""
    sources = snap["sources"]
    rows = [
        [
            s["title"],
            _n(s["events"]),
            _age(s["event_age_s"]),
            _age(s["ingest_age_s"]),
            f"{s['rate_per_s']:.1f}/s",
            _n(s["stream_length"]),
            _lag(s),
            _n(s["pending"]),
            s["consumers"],
            _n(s["dead_total"]),
        ]
        for s in sources
    ]
    reasons = sorted({r for s in sources for r in s["dead"]})
    dead_rows = [[s["title"], *[_n(s["dead"].get(r, 0)) for r in reasons]] for s in sources]
    workers = [[w["name"], w["pid"], _age(w["age_s"]), _n(w["processed"])] for w in snap["workers"]]
    letters = [
        [d["source"], d["reason"], d["detail"], *([d["raw"]] if raw_fields else [])] for d in snap["dead_letters"]
    ]
    lost = [
        [s["title"], _upstream(s["upstream"]), *_trimmed(s["trimmed"])]
        for s in sources
        if s["trimmed"]["gaps"] or s["upstream"]["events"]
    ]
    return [
        card(
            "Sources",
            table(
                [
                    "source",
                    "events",
                    "newest event",
                    "last ingest",
                    "rate (5 min)",
                    "stream length",
                    "lag (share of the stream's cap)",
                    "pending",
                    "consumers",
                    "dead letters",
                ],
                rows,
            ),
        ),
        html.Div(
            [
                card(
                    "Dead letters by reason",
                    table(["source", *reasons], dead_rows) if reasons else empty("no dead letters"),
                ),
                card(
                    "Aggregator workers",
                    table(["worker", "pid", "heartbeat", "entries"], workers)
                    if workers
                    else empty("no worker has reported"),
                    watch_line(snap["watch"]),
                ),
            ],
            className="pair",
        ),
        card(
            "Events lost before they were folded",
            table(["source", "events lost upstream", "trimmed by the stream's cap before folding", "entry ids"], lost)
            if lost
            else empty("none"),
        ),
        card(
            "Newest dead letters",
            table(["source", "reason", "detail", *(["fields (masked)"] if raw_fields else [])], letters, "small")
            if letters
            else empty("none"),
        ),
        card("Audit log", html.P(audit_line(snap["audit"], snap["tz"]), className="audit-line")),
    ]


def audit_line(audit: dict, tz: str) -> str:
    """The audit log's length and what its last verification found, and when (the city's time)."""
    verified = audit["verified"]
    if verified is None:
        said = "never verified (python -m accounts audit verify)"
    else:
        said = f"last verified {local(verified['at_ms'] / 1000, tz, '%Y-%m-%d %H:%M')}: {verified['sentence']}"
    return f"{audit['length']:,} entries · {said}"


def _lag(source: dict) -> html.Span:
    """A source's lag with its share of the stream's cap, marked when it is near enough the cap to warn."""
    counted = _n(source["lag"]) if source["lag_counted_in_full"] else f"about {_n(source['lag'])}"
    return html.Span(
        f"{counted} ({_pct(source['lag_share'])} of cap)", className="warn" if source["backlog_warn"] else ""
    )


def _upstream(upstream: dict) -> str:
    """Events missing from the producers' sequence numbers, and from how many producers."""
    producers = len(upstream["producers"])
    text = _n(upstream["events"])
    if upstream["events"]:
        text += f" from {producers} producer{'s' if producers != 1 else ''}"
    if upstream["with_trimmed"]:
        text += ", some perhaps trimmed by the cap"
    return text


def _trimmed(lost: dict) -> list[str]:
    """How many entries the cap trimmed before they were folded, and between which ids."""
    count = _n(lost["entries"])
    if lost["uncounted"]:
        # Redis < 7 keeps no count of what it trimmed: only the id range is known.
        count = f"at least {count}" if lost["entries"] else "an unknown number"
        count += f" ({lost['uncounted']} gap{'s' if lost['uncounted'] != 1 else ''} of unknown size)"
    if not lost["gaps"]:
        return ["none", ""]
    return [count, f"{lost['first_id']} to {lost['last_id']}"]


def watch_line(watch: dict | None) -> html.Div:
    """Whether the alarm watch runs: without it the alarms are folded only while some screen is open."""
    if watch is None:
        return html.Div(
            "Alarm watch: not running. Alarms are raised and logged only while a screen is open"
            " (start python -m callbacks.watch).",
            className="empty warn",
        )
    failed = f", {watch['failed']:,} failed" if watch["failed"] else ""
    return html.Div(
        f"Alarm watch: pid {watch['pid']}, last tick {_age(watch['age_s'])}, {watch['ticks']:,} ticks{failed}.",
        className="note",
    )


def _age(seconds) -> str:
    if seconds is None:
        return "never"
    return f"{duration_text(seconds)} ago"


# ---------------------------------------------------------------------------- status


def freshness(lines: list[dict]) -> list:
    chips = [
        html.Span(
            [html.Span(className="dot"), f"{line['title']} · {_age(line['age_s'])}"],
            className="chip stale" if line["stale"] else "chip",
        )
        for line in lines
    ]
    return [html.Span("freshness", className="chip-label"), *chips]


def status_banner(lines: list[dict], backlog: list[dict] = ()) -> tuple[list, str]:
    """The banner over every screen: sources gone stale, and sources whose backlog nears their stream's cap."""
    stale = [line["message"] for line in lines if line["stale"]]
    behind = [line["message"] for line in backlog if line["warn"]]
    if not stale and not behind:
        return [], "banner hidden"
    out = []
    if stale:
        out += [html.Strong("Stale data. "), "; ".join(stale) + ". Showing the last good picture. "]
    if behind:
        out += [html.Strong("Aggregators behind. "), "; ".join(behind) + "."]
    return out, "banner"


def unreachable_banner(since: float) -> tuple[list, str]:
    down = int(time.time() - since)
    return [
        html.Strong("Redis unreachable. "),
        f"No data for {down} s. Showing the last good picture; the screen recovers by itself.",
    ], "banner down"


SEVERITY_TITLES = {3: "critical", 2: "high", 1: "warning"}  # the names of views.snapshots' severities


def _since(ms: int, now: float, tz: str) -> str:
    minutes = max(int(now - ms / 1000) // 60, 0)
    start = local(ms / 1000, tz)
    return (
        f"since {start} ({minutes} min)" if minutes < 120 else f"since {start} ({minutes // 60} h {minutes % 60} min)"
    )


def alarm(view: dict, now: float, tz: str) -> tuple[list, list, str]:
    """The alarm that takes over the wall (the most severe not acknowledged), with the numbers behind it,
    and the other alarms ranked by severity then age; or nothing, and the takeover hidden."""
    lead = view["lead"]
    if lead is None:
        return [], [], "alarm hidden"
    evidence = [
        html.Span([html.Span(label, className="evidence-label"), html.Strong(value)], className="evidence")
        for label, value in lead.get("evidence", [])
    ]
    text = [
        html.Div(f"ALARM · {SEVERITY_TITLES.get(lead.get('severity', 1), 'warning').upper()}", className="alarm-tag"),
        html.Div(lead["what"], className="alarm-what"),
        html.Div(lead["where"], className="alarm-where"),
        html.Div(evidence, className="alarm-evidence"),
        html.Div(_since(lead["since_ms"], now, tz) + (" · condition lapsed, clearing" if lead.get("lapsed") else ""),
                 className="alarm-since"),
    ]  # fmt: skip
    rest = [line for line in view["lines"] if lead["key"] not in line["keys"] or line["count"] > 1]
    listed = [
        html.Li(
            [
                html.Span(SEVERITY_TITLES.get(line["severity"], "warning"), className="alarm-level"),
                line["text"],
                html.Span(" · acknowledged", className="alarm-acked")
                if line["acknowledged"] == line["count"]
                else None,
            ],
            className=f"severity-{line['severity']}",
        )
        for line in rest[:6]
    ]
    more = len(rest) - len(listed)
    return (
        text,
        [html.Ul(listed), html.Div(f"and {more} more", className="alarm-more") if more > 0 else None],
        (f"alarm alarm-{lead['kind']} severity-{lead.get('severity', 1)}"),
    )


def alarm_count(view: dict) -> list:
    """How many alarms are in force and how many nobody has acknowledged yet, leading to the alarms page."""
    total, still = view["total"], view["open"]
    if not total:
        return []
    text = f"{total} alarm{'s' if total > 1 else ''}" + (f" · {still} open" if still != total else "")
    if not still:
        text += " · acknowledged"
    return [
        html.A(
            text,
            href="/alarms",
            title=" · ".join(line["text"] for line in view["lines"]),
            className="all-acked" if not still else "",
        )
    ]


# ---------------------------------------------------------------------------- precise view (health role)


def precise_status(grant: dict | None, scope: str, tz: str) -> str:
    """Whether the precise view is open, why and until when (the city's time)."""
    if grant is None:
        return "Closed. Give a reason and open it to see exposure visits, case paths and cluster members."
    until = local(grant["until_ms"] / 1000, tz)
    return f"Open until {until} for: {grant['reason']} · {scope}. What you see is logged."


def precise_body(snap: dict) -> list:
    """Exposure visits with their case tokens and times, and clusters with their members."""
    visits = [[v["case"], v["venue"], v["arrive"], v["leave"]] for v in snap["visits"]]
    more = snap["visits_total"] - len(visits)
    clusters = [[c["cluster"], c["size"], c["members"], c["sites"]] for c in snap["clusters"]]
    return [
        card(
            f"Exposure visits · {snap['label']}"
            + (f" (newest {len(visits)} of {snap['visits_total']:,})" if more else ""),
            table(["case", "venue", "arrived", "left"], visits, "small") if visits else empty("none in scope"),
        ),
        card(
            "Cluster members",
            table(["cluster", "cases", "members", "sites"], clusters, "small") if clusters else empty("none in scope"),
        ),
    ]


# ---------------------------------------------------------------------------- admin


def local(epoch_s: float, tz: str, fmt: str = "%H:%M") -> str:
    """A moment as the city's clock reads it: every time on screen is the city's, whatever the server's zone."""
    return datetime.fromtimestamp(epoch_s, ZoneInfo(tz)).strftime(fmt)


def when(ms: int | str | None, tz: str) -> str:
    """A moment in ms (or its digits, as a stream field holds it) as the city's date and time."""
    return local(int(ms) / 1000, tz, "%Y-%m-%d %H:%M:%S") if ms and str(ms).isdigit() else ""


def admin(
    accounts: list, tokens: list, entries: list, audit: dict, settings_rows: list[tuple[str, str]], tz: str
) -> list:
    """Accounts, wall tokens (labels only), the newest audit entries and the settings in force."""
    people = [
        [a.name, a.role, "disabled" if a.disabled else "enabled", a.source, when(a.created_ms, tz)] for a in accounts
    ]
    walls = [[t.label, when(t.created_ms, tz), t.by] for t in tokens]
    logged = [[e.n, when(e.at_ms, tz), e.who, e.role, e.action, e.detail[:160]] for e in entries]
    return [
        html.Div(
            [
                card(
                    "Accounts",
                    table(["account", "role", "state", "sign-in", "created"], people) if people else empty("none"),
                ),
                card("Wall tokens", table(["label", "created", "by"], walls) if walls else empty("none")),
            ],
            className="pair",
        ),
        card(
            "Audit log",
            html.P(audit_line(audit, tz), className="audit-line"),
            table(["#", "when", "who", "role", "action", "detail"], logged, "small") if logged else empty("empty"),
        ),
        card("Settings in force", table(["variable", "value"], [list(r) for r in settings_rows], "small")),
    ]


def cases_numbers(snap: dict) -> list:
    return with_provenance(_cases_numbers(snap), "cases", snap)


def foot_numbers(snap: dict) -> list:
    return with_provenance(_foot_numbers(snap), "foot", snap)


def services_numbers(snap: dict) -> list:
    return with_provenance(_services_numbers(snap), "services", snap)


def complaints_numbers(snap: dict) -> list:
    return with_provenance(_complaints_numbers(snap), "complaints", snap)


def overview_numbers(snap: dict) -> dict[str, list]:
    return {source: with_provenance(numbers, source, snap) for source, numbers in _overview_numbers(snap).items()}


def alarms_in_force(alarms: list[dict], now: float, tz: str) -> html.Table | html.Div:
    """The alarms page's list: severity, what, where, since, state, who acknowledged it, and the numbers."""
    rows = [
        [
            SEVERITY_TITLES.get(a.get("severity", 1), "warning"),
            a["what"],
            a["where"],
            f"{when(a['since_ms'], tz)} ({int(now - a['since_ms'] / 1000) // 60} min)",
            a["state"] + (" (lapsed, clearing)" if a.get("lapsed") else ""),
            f"{a['ack']['by']} at {when(a['ack']['at_ms'], tz)}: {a['ack']['note']}" if a.get("ack") else "",
            " · ".join(f"{label} {value}" for label, value in a.get("evidence", [])),
        ]
        for a in alarms
    ]
    columns = ["severity", "what", "where", "since", "state", "acknowledged", "the numbers"]
    return table(columns, rows) if rows else empty("No alarm in force with these filters.")


def alarm_log(entries: list[dict], tz: str) -> html.Table | html.Div:
    rows = [[when(e["at_ms"], tz), e["event"], e["what"], e["where"], e["by"], e["note"]] for e in entries]
    return table(["when", "event", "what", "where", "by", "note"], rows) if rows else empty("No entry yet.")
