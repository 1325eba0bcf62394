"""The case-tracing keeper: venue check-ins, confirmed cases' exposure sites, close contacts and health codes.

What it keeps, all under the ``cases`` source's hash tag and committed with each batch:

- ``cases:checkins:{day}``: the day's check-ins, one sorted set per day with every score 0 and
  members ``venue␟ts(13 digits)␟stay_s␟person`` (``␟`` is the unit separator ``\\x1f``), so
  "this venue between these times" is one ``ZRANGEBYLEX`` and a whole batch is one ``ZADD``.
  A day expires once no case report can still reach back to it (``checkin_retention_s``: the
  infectious window, a reporting delay, the longest stay and the contact window).
- ``cases:cases``: case → its highest status, the onset its newest report gives, and its earliest
  confirmation with that report's community.
- ``cases:visits:{case}``: every place a case visited (with its point), kept for tracing,
  clusters and the case's path.
- ``cases:exposures``: venue → the venue's area and the confirmed cases' visits inside their
  infectious window (no person tokens, no points).
- ``cases:contacts``: person → their link with each case they met (when it flags them, the venue,
  the check-in time and the venue's community), and the first of these links, under which they
  count; ``cases:contacts:until`` forgets them when their quarantine ends.
- ``cases:linked:{case}``: the persons linked to a case, so tracing it again can let go of those
  it no longer meets.
- ``cases:codes``: code holder → colour, community and until when; ``cases:codes:until`` lets the
  tick turn codes green; ``cases:codes:active`` holds the active counts per ``community|colour``.
- ``cases:retrace``: cases traced in the last minute, traced again by the tick.

What is kept is a function of the events, not of the order batches commit in. A confirmed case is
traced in full whenever its infectious window moves (its confirmation, an earlier one, or a newer
onset): its exposures at every venue it visited are rewritten from all its visits, and its links
become those its exposures make with every check-in stored near them, replacing what it had (a
contact it no longer meets loses it, and the contact goes with their last link). A visit it reports
while its window stands adds its exposure and the links that makes. A check-in is
matched against the exposures stored at its venue (read in one round trip, and only for venues the
worker knows to have a site: it rereads that list every few seconds, so a batch of check-ins
elsewhere costs no read) and adds its links. Of a person's links with one case the least is kept
(flagged first, then by venue and check-in time), and they count under the least of all. Two
batches in flight at once (pipelined, or on two workers) can each miss the other's half or trace
with a record the other changes; the tick traces recent cases in full again once both are
committed, so every contact ends up where the events alone put it.

Counters: ``contacts.community`` (new contacts per community, by when they were flagged) and
``codes.community_colour`` (codes turning yellow, red or green). A contact counts under their
first link and a case under its earliest confirmation, whichever is processed first; these two
facets are written as values, guarded by versions, so moving a count leaves no zero behind.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import redis

from data.fold import Folded, Placement
from data.keepers import StateChanges, versions_key
from data.keys import Keys
from data.locks import held
from data.schema import Decoded
from engines import tracing
from engines.tracing import DAY_MS, MINUTE_MS, TracingParams, is_contact

SOURCE = "cases"
CASES, EXPOSURES, CONTACTS, CONTACTS_UNTIL = "cases:cases", "cases:exposures", "cases:contacts", "cases:contacts:until"
CODES, CODES_UNTIL, ACTIVE, RETRACE = "cases:codes", "cases:codes:until", "cases:codes:active", "cases:retrace"
PICTURE, CHANGED = "cases:picture", "cases:changed"
SEP = "\x1f"  # between a check-in's parts: no venue id or token holds it, and it sorts before every digit
DAY_S = 86_400
LONGEST_STAY_MS = 86_400_000  # the schema's cap on a check-in's stay
REPORT_DELAY_DAYS = 3.0  # how long after onset a case's visits may still be reported
RETRACE_MS = 60_000  # a batch prepared but not committed within a minute is redone by a claim
SITES_REFRESH_MS = 5_000  # how stale a worker's list of exposure venues may grow (well within RETRACE_MS)
TICK_LIMIT = 500  # codes and contacts expired per tick at most; the next tick takes the rest
_STAMPS = itertools.count()  # with the pid: a token no other commit writes
STATUS_RANK = {"suspected": 0, "confirmed": 1, "recovered": 2}
COLOURS = ("yellow", "red")
# A contact's link with one case: (flagged ts, venue, check-in ts, the venue's community). Of several, the
# least is kept: the one that flags the person first, then by venue and check-in, never by arrival.
Link = tuple[int, str, int, str]


def derived_case_token(person_id: str) -> str:
    """Return the case token a person is reported under when they become a case."""
    # The registry pseudonymises a case from the person's token: a check-in never shows a case
    # token, yet the keeper can tell a contact who falls ill from a new person.
    return "c" + hashlib.blake2b(person_id.encode(), digest_size=8).hexdigest()


class _Hash:
    """One versioned state hash as a batch sees it: what it read, at which versions, what it changed."""

    def __init__(self, key: str):
        self.key = key
        self.values: dict[str, str | None] = {}
        self.read: dict[str, str | None] = {}
        self.versions: dict[str, int] = {}
        self.changed: set[str] = set()

    def missing(self, names: Iterable[str]) -> list[str]:
        return [n for n in dict.fromkeys(names) if n not in self.versions]

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def put(self, name: str, value: str | None) -> None:
        if self.values.get(name) != value:
            self.values[name] = value
            self.changed.add(name)

    def flush(self, changes: StateChanges) -> None:
        """Record every changed entity, expecting it still at the version read."""
        for name in sorted(self.changed):
            value = self.values[name]
            if value is None:
                changes.delete(self.key, name, self.versions[name])
            else:
                changes.set(self.key, name, value, self.versions[name])


def _load(client: redis.Redis, wanted: Sequence[tuple[_Hash, Iterable[str]]], extra: Sequence = ()) -> list:
    """Read the missing entities of several hashes (and any extra commands) in one round trip."""
    pipe = client.pipeline(transaction=False)
    plan = []
    for h, names in wanted:
        names = h.missing(names)
        if names:
            pipe.hmget(h.key, names)
            pipe.hmget(versions_key(h.key), names)
            plan.append((h, names))
    for command, args in extra:
        getattr(pipe, command)(*args)
    if not plan and not extra:
        return []
    replies = pipe.execute()
    for i, (h, names) in enumerate(plan):
        values, versions = replies[2 * i], replies[2 * i + 1]
        for name, value, version in zip(names, values, versions):
            h.values[name] = h.read[name] = None if value is None else value.decode()
            h.versions[name] = int(version or 0)
    return replies[2 * len(plan) :]


@dataclass
class _Visit:
    """A case's visit to a venue, with the venue's area (for exposure sites) and point (for the path)."""

    case_id: str
    venue_id: str
    arrive_ts: int
    leave_ts: int
    lon: float
    lat: float
    community_id: str
    district_id: str
    h3: str

    def member(self) -> str:
        return json.dumps(
            [self.venue_id, self.arrive_ts, self.leave_ts, round(self.lon, 6), round(self.lat, 6),
             self.community_id, self.district_id, self.h3],
            separators=(",", ":"),
        )  # fmt: skip

    @classmethod
    def of(cls, case_id: str, member: bytes | str) -> _Visit:
        return cls(case_id, *json.loads(member))


@dataclass
class _Work:
    """Everything one batch (or tick) reads and changes, so later steps see earlier ones."""

    keys: Keys
    cases: _Hash = field(init=False)
    exposures: _Hash = field(init=False)
    contacts: _Hash = field(init=False)
    codes: _Hash = field(init=False)
    active: _Hash = field(init=False)
    # (person, case) -> the best link new check-ins make with a case's exposures stored before: merged
    found: dict[tuple[str, str], Link] = field(default_factory=dict)
    # case -> person -> the best link: every contact of a case traced in full, replacing what it had
    traced: dict[str, dict[str, Link]] = field(default_factory=dict)
    # case -> the persons linked to it before its trace: one the trace no longer finds loses the case
    linked_before: dict[str, set[str]] = field(default_factory=dict)
    # case -> (confirmed ts, community, the (confirmed ts, community) it had before, if confirmed earlier)
    red: dict[str, tuple[int, str, tuple[int, str] | None]] = field(default_factory=dict)
    transitions: list[tuple[int, str, str, int]] = field(default_factory=list)  # (ts, community, colour, +1/-1)
    new_contacts: list[tuple[int, str, int]] = field(default_factory=list)  # (flagged ts, community, +1/-1)
    deltas: dict[str, int] = field(default_factory=dict)  # community|colour -> change of the active count
    linked: dict[str, dict[str, bool]] = field(default_factory=dict)  # case -> person -> linked now, or no more
    retraced: set[str] = field(default_factory=set)
    visited: bool = False  # visits were stored: clusters may have changed

    def __post_init__(self) -> None:
        state = self.keys.state
        self.cases, self.exposures = _Hash(state(SOURCE, CASES)), _Hash(state(SOURCE, EXPOSURES))
        self.contacts, self.codes = _Hash(state(SOURCE, CONTACTS)), _Hash(state(SOURCE, CODES))
        self.active = _Hash(state(SOURCE, ACTIVE))


@dataclass
class _Checkins:
    """A batch's check-ins as columns, with the rows of each venue."""

    venue: list[str]
    person: list[str]
    ts: np.ndarray
    stay_ms: np.ndarray
    rows_of: dict[str, list[int]]

    @classmethod
    def none(cls) -> _Checkins:
        return cls([], [], np.zeros(0, np.int64), np.zeros(0, np.int64), {})


class CaseKeeper:
    """Keeps check-ins, cases, exposure sites, close contacts and health codes; ends quarantines on time."""

    source = SOURCE

    def __init__(
        self,
        settings,
        params: TracingParams | None = None,
        case_token: Callable[[str], str] = derived_case_token,
    ):
        self.params = params = params or TracingParams.of(settings)
        self.case_token = case_token
        self.bucket_s = settings.bucket_seconds
        self.retention_s = int(settings.retention_hours * 3600)
        # A visit is reported at most REPORT_DELAY_DAYS after onset and may reach back the infectious
        # window, plus the longest stay, before it: older check-ins can meet no case any more.
        days = params.infectious_days_before + REPORT_DELAY_DAYS
        self.checkin_retention_s = int(days * DAY_S + LONGEST_STAY_MS // 1000 + params.contact_window_min * 60)
        # Cases, their visits and contacts are kept while a site is on the map or a code not green.
        self.case_retention_s = int(
            max(params.retention_days, params.site_horizon_days, params.case_isolation_days) * DAY_S
        )
        # Venues with exposure sites, as last read: a batch of check-ins elsewhere needs no read at all.
        self._site_venues: set[str] = set()
        self._sites_read_ms = -SITES_REFRESH_MS
        self.before_ms = int(max(params.contact_window_min, params.stay_margin_min) * MINUTE_MS + LONGEST_STAY_MS)
        self.after_ms = int(max(params.contact_window_min, params.stay_margin_min) * MINUTE_MS)

    # ------------------------------------------------------------------ a batch

    def keep(
        self,
        client: redis.Redis,
        keys: Keys,
        batch: Sequence[tuple[Decoded, Placement]],
        folded: Folded,
        changes: StateChanges,
        now_ms: int,
    ) -> None:
        """Store check-ins, case reports and visits; record the contacts and codes they make."""
        by_type: dict[str, list[tuple[Decoded, Placement]]] = {}
        for d, where in batch:
            by_type.setdefault(d.type.name, []).append((d, where))
        checkins = self._store_checkins(keys, by_type.get("checkin", []), changes, now_ms)
        reports, visits = by_type.get("case_report", []), self._visits(by_type.get("case_visit", []))
        if now_ms - self._sites_read_ms >= SITES_REFRESH_MS:
            # An exposure another worker stored since is missed here and found when the tick traces its case again.
            self._site_venues = {v.decode() for v in client.hkeys(keys.state(SOURCE, EXPOSURES))}
            self._sites_read_ms = now_ms
        exposed = [v for v in checkins.rows_of if v in self._site_venues]
        if not reports and not visits and not exposed:
            return
        work = _Work(keys)
        case_ids = [i for d, _ in reports for i in d.texts("case_id")] + [v.case_id for v in visits]
        _load(client, [(work.cases, case_ids), (work.exposures, exposed + [v.venue_id for v in visits])])
        moved = self._report(work, reports)
        work.visited = bool(visits)
        for v in visits:
            changes.add(keys.state(SOURCE, f"cases:visits:{v.case_id}"), v.arrive_ts, v.member())
            changes.expire_at[keys.state(SOURCE, f"cases:visits:{v.case_id}")] = now_ms // 1000 + self.case_retention_s
        confirmed = {c for c in {*moved, *(v.case_id for v in visits)} if _confirmed_ts(work.cases.get(c)) is not None}
        # A confirmed case whose infectious window moved is traced in full, every visit it made against every
        # check-in near them, and what it had is replaced; one that only reported visits adds what they find.
        full = sorted(c for c in moved if c in confirmed)
        # Exposures stored before this batch meet this batch's check-ins here (those of cases traced in full
        # meet them in _trace); new ones meet the stored check-ins in _trace.
        for venue in exposed:
            raw = work.exposures.get(venue)
            if raw is not None:
                site = json.loads(raw)
                entries = [e for e in site["visits"] if e[0] not in full]
                rows = checkins.rows_of[venue]
                people, ts, stay = [checkins.person[r] for r in rows], checkins.ts[rows], checkins.stay_ms[rows]
                for person, case_id, link in self._match(entries, venue, site["community_id"], people, ts, stay):
                    work.found[(person, case_id)] = min(work.found.get((person, case_id), link), link)
        if confirmed or work.red:
            # The visits of a case traced in full reported earlier are in Redis already; red codes are read along.
            replies = _load(client, [(work.codes, work.red)], self._trace_reads(keys, full))
            in_batch = {c: [v for v in visits if v.case_id == c] for c in sorted(confirmed)}
            self._trace(client, work, in_batch | self._traced_visits(work, full, replies, in_batch), checkins)
        self._record(client, work, now_ms)
        self._commit(client, work, folded, changes, now_ms)

    def _store_checkins(
        self, keys: Keys, batch: Sequence[tuple[Decoded, Placement]], changes: StateChanges, now_ms: int
    ) -> _Checkins:
        """Add the batch's check-ins to their days' sorted sets; return them as columns."""
        venue: list[str] = []
        person: list[str] = []
        ts_parts, stay_parts = [], []
        for d, _ in batch:
            venue += d.texts("venue_id")
            person += d.texts("person_id")
            ts_parts.append(d.columns["ts"])
            stay_parts.append(d.columns["stay_s"])
        if not venue:
            return _Checkins.none()
        ts = np.concatenate(ts_parts).astype(np.int64)
        stay_s = np.concatenate(stay_parts).astype(np.int64)
        stay_ms = np.where(stay_s < 0, -1, stay_s * 1000)
        members = [
            f"{v}{SEP}{t:013d}{SEP}{s}{SEP}{p}" for v, t, s, p in zip(venue, ts.tolist(), stay_s.tolist(), person)
        ]
        days = ts // DAY_MS
        unique = np.unique(days).tolist()
        for day in unique:
            key = keys.state(SOURCE, f"cases:checkins:{day * DAY_S}")
            # A batch is in arrival order, not time order: only a batch of one day goes whole into its day.
            chosen = members if len(unique) == 1 else [members[i] for i in np.flatnonzero(days == day)]
            changes.zadd.setdefault(key, []).extend((0, m) for m in chosen)
            changes.expire_at[key] = max((day + 1) * DAY_S, now_ms // 1000) + self.checkin_retention_s
        rows_of: dict[str, list[int]] = {}
        for i, v in enumerate(venue):
            rows_of.setdefault(v, []).append(i)
        return _Checkins(venue, person, ts, stay_ms, rows_of)

    @staticmethod
    def _visits(batch: Sequence[tuple[Decoded, Placement]]) -> list[_Visit]:
        out = []
        for d, where in batch:
            c = d.columns
            communities = where.community.labels_of(where.community.codes)
            districts = where.district.labels_of(where.district.codes)
            cells = where.h3.labels_of(where.h3.codes)
            for j, (case_id, venue_id) in enumerate(zip(d.texts("case_id"), d.texts("venue_id"))):
                arrive, leave = int(c["arrive_ts"][j]), int(c["leave_ts"][j])
                out.append(
                    _Visit(case_id, venue_id, arrive, max(arrive, leave), float(c["lon"][j]), float(c["lat"][j]),
                           communities[j], districts[j], cells[j])
                )  # fmt: skip
        return out

    def _report(self, work: _Work, reports: Sequence[tuple[Decoded, Placement]]) -> list[str]:
        """Apply case reports; return the cases whose confirmation or onset (so infectious window) moved.

        A case's record follows from its reports in whatever order they are processed: its highest
        status, the onset its newest report gives (the later onset of two equally new), and its
        earliest confirmation with that report's community (the first community of two equally early):
        a worker that died and one that never did, or two workers, must count the same.
        """
        rows = []
        for d, where in reports:
            choices = d.type.fields[[f.name for f in d.type.fields].index("status")].choices
            communities = where.community.labels_of(where.community.codes)
            for j, case_id in enumerate(d.texts("case_id")):
                onset = int(d.columns["onset_ts"][j])
                status = choices[d.columns["status"][j]]
                rows.append((int(d.columns["ts"][j]), case_id, status, onset, communities[j]))  # onset -1: unknown
        for ts, case_id, status, onset, community in sorted(rows):
            raw = work.cases.get(case_id)
            record = json.loads(raw) if raw is not None else {"status": status}
            if STATUS_RANK[status] >= STATUS_RANK[record["status"]]:
                record["status"] = status  # a report out of order never undoes a later status
            if onset >= 0 and (ts, onset) > (record.get("onset_from_ts", -1), record.get("onset_ts", -1)):
                record["onset_ts"], record["onset_from_ts"] = onset, ts
            if status == "confirmed" and (
                "confirmed_ts" not in record or (ts, community) < (record["confirmed_ts"], record["community_id"])
            ):
                before = (record["confirmed_ts"], record["community_id"]) if "confirmed_ts" in record else None
                if case_id in work.red:
                    before = work.red[case_id][2]
                record["confirmed_ts"], record["community_id"] = ts, community
                work.red[case_id] = (ts, community, before)
            work.cases.put(case_id, json.dumps(record, separators=(",", ":"), sort_keys=True))
        return sorted(c for c in work.cases.changed if _window(work.cases.read[c]) != _window(work.cases.get(c)))

    # ------------------------------------------------------------------ tracing

    @staticmethod
    def _trace_reads(keys: Keys, traced: Sequence[str]) -> list:
        """What tracing cases in full reads: each one's stored visits, then the persons linked to it."""
        reads = [("zrange", (keys.state(SOURCE, f"cases:visits:{c}"), 0, -1)) for c in traced]
        return reads + [("zrange", (keys.state(SOURCE, f"cases:linked:{c}"), 0, -1)) for c in traced]

    @staticmethod
    def _traced_visits(
        work: _Work, traced: Sequence[str], replies: list, in_batch: dict[str, list[_Visit]] | None = None
    ) -> dict[str, list[_Visit]]:
        """Each traced case's visits, stored and the batch's, from ``_trace_reads``; note who was linked to it."""
        stored, linked = replies[: len(traced)], replies[len(traced) :]
        for case_id, members in zip(traced, linked):
            work.linked_before[case_id] = {m.decode() for m in members}
        return {
            c: [*(_Visit.of(c, m) for m in members), *(in_batch or {}).get(c, [])] for c, members in zip(traced, stored)
        }

    def _trace(self, client: redis.Redis, work: _Work, traced: dict[str, list[_Visit]], checkins: _Checkins) -> None:
        """Trace confirmed cases: their visits inside their infectious windows as their records now say become
        exposures, and every check-in meeting one a link of the case.

        A case traced in full (``work.linked_before`` knows it; ``traced`` holds all its visits) has its
        exposures at every venue it visited and its links replaced; another adds to what it had.
        """
        cases = [c for c in traced if _confirmed_ts(work.cases.get(c)) is not None]
        if not cases:
            return
        records = [json.loads(work.cases.get(c)) for c in cases]
        windows = tracing.infectious_windows(
            pd.DataFrame(
                {
                    "case_id": cases,
                    "confirmed_ts": [r["confirmed_ts"] for r in records],
                    "onset_ts": [r.get("onset_ts", np.nan) for r in records],
                }
            ),
            self.params,
        ).set_index("case_id")
        exposures: dict[str, list[tuple[str, int, int, int]]] = {}  # case -> (venue, arrive, leave, confirmed)
        for case_id in cases:
            start, end, confirmed = windows.loc[case_id, ["start_ts", "end_ts", "confirmed_ts"]].tolist()
            exposures[case_id] = sorted(
                {
                    (v.venue_id, max(v.arrive_ts, start), min(v.leave_ts, end), confirmed)
                    for v in traced[case_id]
                    if v.arrive_ts <= end and v.leave_ts >= start
                }
            )
        # A venue's area from its visits (the least of any that differ): the same whichever is traced first.
        area: dict[str, tuple[str, str, str]] = {}
        for case_id in cases:
            for v in traced[case_id]:
                here = (v.community_id, v.district_id, v.h3)
                area[v.venue_id] = min(area.get(v.venue_id, here), here)
        ranges = []
        for case_id in cases:
            for venue_id, arrive, leave, _ in exposures[case_id]:
                low, high = arrive - self.before_ms, leave + self.after_ms
                for day in range(low // DAY_MS, high // DAY_MS + 1):
                    key = work.keys.state(SOURCE, f"cases:checkins:{day * DAY_S}")
                    ranges.append(
                        ("zrangebylex", (key, f"[{venue_id}{SEP}{low:013d}", f"[{venue_id}{SEP}{high:013d}{SEP}\x7f"))
                    )
        replies = iter(_load(client, [(work.exposures, sorted(area))], ranges))
        for case_id in cases:
            mine: dict[str, list[list]] = {}
            for venue_id, arrive, leave, confirmed in exposures[case_id]:
                mine.setdefault(venue_id, []).append([case_id, arrive, leave, confirmed])
            community: dict[str, str] = {}
            for venue_id in sorted({v.venue_id for v in traced[case_id]}):
                raw = work.exposures.get(venue_id)
                site = (
                    json.loads(raw)
                    if raw is not None
                    else dict(zip(("community_id", "district_id", "h3"), area[venue_id]), visits=[])
                )
                kept = [e for e in site["visits"] if e[0] != case_id or case_id not in work.linked_before]
                site["visits"] = sorted(
                    kept + [e for e in mine.get(venue_id, []) if e not in kept], key=lambda e: (e[1], e[0], e[2], e[3])
                )
                work.exposures.put(venue_id, json.dumps(site, separators=(",", ":")) if site["visits"] else None)
                if site["visits"]:
                    self._site_venues.add(venue_id)
                community[venue_id] = site["community_id"]
            if case_id in work.linked_before:
                found = work.traced[case_id] = {}
            else:  # new visits of a case whose window stands: their links add to the case's
                found = {}
            for venue_id, arrive, leave, confirmed in exposures[case_id]:
                stored: list[tuple[str, int, int]] = []  # (person, ts, stay ms)
                low, high = arrive - self.before_ms, leave + self.after_ms
                for _ in range(low // DAY_MS, high // DAY_MS + 1):
                    for m in next(replies):
                        _, t, s, p = m.decode().split(SEP, 3)
                        stored.append((p, int(t), int(s) * 1000 if int(s) >= 0 else -1))
                rows = checkins.rows_of.get(venue_id, [])
                people = [p for p, _, _ in stored] + [checkins.person[r] for r in rows]
                ts = np.array([t for _, t, _ in stored] + checkins.ts[rows].tolist(), dtype=np.int64)
                stay = np.array([s for _, _, s in stored] + checkins.stay_ms[rows].tolist(), dtype=np.int64)
                entry = [[case_id, arrive, leave, confirmed]]
                for person, _, link in self._match(entry, venue_id, community[venue_id], people, ts, stay):
                    found[person] = min(found.get(person, link), link)
            if case_id not in work.traced:
                for person, link in found.items():
                    work.found[(person, case_id)] = min(work.found.get((person, case_id), link), link)
            work.retraced.add(case_id)

    def _match(
        self,
        entries: list[list],
        venue_id: str,
        community: str,
        people: list[str],
        ts: np.ndarray,
        stay: np.ndarray,
    ) -> Iterator[tuple[str, str, Link]]:
        """Each check-in at a venue that meets one of the cases' visits there, as (person, case, link)."""
        for case_id, arrive, leave, confirmed in entries if people else ():
            met = is_contact(ts, stay, np.int64(arrive), np.int64(leave), self.params)
            for i in np.flatnonzero(met).tolist():
                if self.case_token(people[i]) == case_id:
                    continue  # the case's own check-in
                t = int(ts[i])
                yield people[i], case_id, (max(t, confirmed), venue_id, t, community)

    # ------------------------------------------------------------------ contacts and codes

    def _record(self, client: redis.Redis, work: _Work, now_ms: int, *, ended_too: bool = True) -> None:
        """Turn what tracing found into contacts and codes, and the counts that follow.

        A contact keeps, per case met, the link that flags them first (then by venue and check-in time),
        and counts under the first of these: a case traced in full replaces its links, new check-ins add
        theirs. Without ``ended_too``, links whose quarantine is already over are neither made nor undone:
        tracing a case again must not bring back a contact the tick has just let go.
        """
        quarantine_ms = int(self.params.contact_quarantine_days * DAY_MS)
        live = lambda link: ended_too or link[0] + quarantine_ms > now_ms  # noqa: E731
        persons = {p for p, _ in work.found} | {p for found in work.traced.values() for p in found}
        persons |= {p for c in work.traced for p in work.linked_before.get(c, ())}
        if not persons and not work.red:
            return
        holders = {p: self.case_token(p) for p in sorted(persons)}
        _load(client, [(work.contacts, holders), (work.codes, [*holders.values(), *work.red])])
        isolation_ms = int(self.params.case_isolation_days * DAY_MS)
        for case_id, (confirmed, community, before) in work.red.items():
            if before is not None:
                work.transitions.append((*before, "red", -1))
            work.transitions.append((confirmed, community, "red", 1))
            self._turn(work, case_id, "red", community, confirmed, confirmed + isolation_ms)
        added: dict[str, dict[str, Link]] = {}
        for (person, case_id), link in work.found.items():
            if case_id not in work.traced:
                added.setdefault(person, {})[case_id] = link
        for person, holder in holders.items():
            raw = work.contacts.get(person)
            record = json.loads(raw) if raw is not None else None
            before = {c: tuple(link) for c, link in (record or {}).get("links", {}).items()}
            links = dict(before)
            for case_id, found in work.traced.items():
                link = found.get(person)
                if link is not None and live(link):
                    links[case_id] = link
                elif link is None and case_id in links and live(links[case_id]):
                    del links[case_id]
            for case_id, link in added.get(person, {}).items():
                links[case_id] = min(links.get(case_id, link), link)
            if links == before:
                continue
            for case_id in links.keys() - before.keys():
                work.linked.setdefault(case_id, {})[person] = True
            for case_id in before.keys() - links.keys():
                work.linked.setdefault(case_id, {})[person] = False
            was = (record["flagged_ts"], record["community_id"]) if record is not None else None
            record = _contact(links, quarantine_ms) if links else None
            now = (record["flagged_ts"], record["community_id"]) if record is not None else None
            if was != now:
                # Counted under the person's first link, wherever and whenever that is found.
                for side, sign in ((was, -1), (now, 1)):
                    if side is not None:
                        work.new_contacts.append((*side, sign))
                        work.transitions.append((*side, "yellow", sign))
            work.contacts.put(person, None if record is None else json.dumps(record, separators=(",", ":")))
            if record is not None:
                self._turn(work, holder, "yellow", record["community_id"], record["flagged_ts"], record["until_ts"])
            else:
                self._clear_yellow(work, holder)

    @staticmethod
    def _clear_yellow(work: _Work, holder: str) -> None:
        """Take back the yellow code of someone who is a contact no longer (a red one stays)."""
        raw = work.codes.get(holder)
        code = json.loads(raw) if raw is not None else None
        if code is not None and code["colour"] == "yellow":
            work.codes.put(holder, None)
            field_ = f"{code['community_id']}|yellow"
            work.deltas[field_] = work.deltas.get(field_, 0) - 1

    @staticmethod
    def _turn(work: _Work, holder: str, colour: str, community: str, since: int, until: int) -> None:
        """Set a holder's code and move the active counts with it; red beats yellow."""
        raw = work.codes.get(holder)
        code = json.loads(raw) if raw is not None else None
        if code is not None and (code["colour"], colour) == ("red", "yellow"):
            return
        if code is not None:  # yellow turning red, or a code moving community: counted once, where it is now
            field_ = f"{code['community_id']}|{code['colour']}"
            work.deltas[field_] = work.deltas.get(field_, 0) - 1
        code = {"colour": colour, "community_id": community, "since_ts": since, "until_ts": until}
        work.codes.put(holder, json.dumps(code, separators=(",", ":")))
        work.deltas[f"{community}|{colour}"] = work.deltas.get(f"{community}|{colour}", 0) + 1

    def _commit(self, client: redis.Redis, work: _Work, folded: Folded, changes: StateChanges, now_ms: int) -> None:
        """Record the work's changes (with the expiry schedules they imply) and its counters."""
        keys = work.keys
        codes_until, contacts_until = keys.state(SOURCE, CODES_UNTIL), keys.state(SOURCE, CONTACTS_UNTIL)
        for holder in sorted(work.codes.changed):
            before = _code_member(holder, work.codes.read.get(holder))
            after = work.codes.get(holder)
            if before and (after is None or _code_member(holder, after) != before):
                changes.remove(codes_until, before)
            if after is not None:
                code = json.loads(after)
                changes.add(codes_until, code["until_ts"], _code_member(holder, after))
        for person in sorted(work.contacts.changed):
            raw = work.contacts.get(person)
            if raw is None:
                changes.remove(contacts_until, person)
            else:
                changes.add(contacts_until, json.loads(raw)["until_ts"], person)
        for case_id, persons in sorted(work.linked.items()):
            linked = keys.state(SOURCE, f"cases:linked:{case_id}")
            for person, now_linked in sorted(persons.items()):
                if now_linked:
                    changes.add(linked, 0, person)
                else:
                    changes.remove(linked, person)
            changes.expire_at[linked] = now_ms // 1000 + self.case_retention_s
        moves = self._moves(work)
        if work.deltas or moves:
            fields = [f for f, n in work.deltas.items() if n]
            guards = sorted({f"{facet}:{label}" for facet, _, label in moves})
            # (one more round trip, only when codes change: which counts move is known only now; the
            # versions are read before the counters, so a commit in between makes this one stale)
            counters = [("hget", (keys.bucket(SOURCE, facet, "m", start), label)) for facet, start, label in moves]
            replies = _load(client, [(work.active, fields + guards)], counters)
            for f in fields:
                count = int(work.active.get(f) or 0) + work.deltas[f]
                work.active.put(f, str(count) if count > 0 else None)
            self._apply_moves(work, moves, replies, folded, changes)
        if work.cases.changed or work.exposures.changed or work.visited:
            # Tells the picture builder that sites or clusters may have moved (any new token will do).
            changes.put.setdefault(keys.state(SOURCE, CHANGED), {})["stamp"] = f"{os.getpid()}:{next(_STAMPS)}:{now_ms}"
        for h in (work.cases, work.exposures, work.contacts, work.codes, work.active):
            h.flush(changes)
        if work.retraced:
            retrace = keys.state(SOURCE, RETRACE)
            for case_id in sorted(work.retraced):
                changes.add(retrace, now_ms, case_id)
            # No expiry by this worker's clock: Redis judges it by its own, and a clock behind Redis's (a skewed
            # host, a replay) would drop the set at once, and with it every retrace. The tick trims it by score.

    def _moves(self, work: _Work) -> dict[tuple[str, int, str], int]:
        """Net change of each counter (facet, bucket start, field) the work's contacts and codes make."""
        width = self.bucket_s * 1000
        moves: dict[tuple[str, int, str], int] = {}
        counted = [("contacts.community", ts, community, sign) for ts, community, sign in work.new_contacts]
        counted += [("codes.community_colour", ts, f"{c}|{colour}", sign) for ts, c, colour, sign in work.transitions]
        for facet, ts, label, sign in counted:
            slot = (facet, ts // width * self.bucket_s, label)
            moves[slot] = moves.get(slot, 0) + sign
        return {slot: n for slot, n in moves.items() if n}

    def _apply_moves(
        self,
        work: _Work,
        moves: dict[tuple[str, int, str], int],
        counts: list,
        folded: Folded,
        changes: StateChanges,
    ) -> None:
        """Write the contact and code counters as values, not increments, so a count moved to another
        bucket leaves no zero behind (a worker that died and one that never did leave the same keys).

        Only this keeper writes these facets; each field is guarded by a version in the active-codes
        hash, so two batches never both add to a value they read.
        """
        active = work.keys.state(SOURCE, ACTIVE)
        for (facet, start, label), before in zip(moves, counts):
            guard = f"{facet}:{label}"
            changes.expect.setdefault(active, {})[guard] = work.active.versions[guard]
            key = work.keys.bucket(SOURCE, facet, "m", start)
            value = int(before or 0) + moves[(facet, start, label)]
            if value:
                changes.put.setdefault(key, {})[label] = str(value)
                changes.expire_at[key] = start + self.bucket_s + self.retention_s
            else:
                changes.drop.setdefault(key, []).append(label)
            # Registers the bucket's hour for the roll-up (and its expiry), adding nothing itself.
            folded.counters.setdefault((facet, start), {})

    # ------------------------------------------------------------------ time passing

    def tick(self, client: redis.Redis, keys: Keys, folded: Folded, changes: StateChanges, now_ms: int) -> None:
        """Trace recent cases again, turn codes green when quarantines end, forget ended contacts."""
        work = _Work(keys)
        pipe = client.pipeline(transaction=False)
        pipe.zrangebyscore(keys.state(SOURCE, RETRACE), now_ms - RETRACE_MS, "+inf")
        pipe.zrangebyscore(keys.state(SOURCE, CODES_UNTIL), "-inf", now_ms, start=0, num=TICK_LIMIT)
        pipe.zrangebyscore(keys.state(SOURCE, CONTACTS_UNTIL), "-inf", now_ms, start=0, num=TICK_LIMIT)
        recent, due_codes, due_contacts = ([x.decode() for x in reply] for reply in pipe.execute())
        if recent:
            replies = _load(client, [(work.cases, recent)], self._trace_reads(keys, recent))
            self._trace(client, work, self._traced_visits(work, recent, replies), _Checkins.none())
            work.retraced.clear()  # traced again once is enough
            self._record(client, work, now_ms, ended_too=False)
        ends = [m.rsplit("|", 2) for m in due_codes]
        _load(client, [(work.codes, [h for h, _, _ in ends]), (work.contacts, due_contacts)])
        for member, (holder, community, colour) in zip(due_codes, ends):
            raw = work.codes.get(holder)
            code = json.loads(raw) if raw is not None else None
            if code is None or _code_member(holder, raw) != member or code["until_ts"] > now_ms:
                changes.remove(keys.state(SOURCE, CODES_UNTIL), member)  # superseded meanwhile
                continue
            work.codes.put(holder, None)
            work.deltas[f"{community}|{colour}"] = work.deltas.get(f"{community}|{colour}", 0) - 1
            work.transitions.append((code["until_ts"], community, "green", 1))
        for person in due_contacts:
            raw = work.contacts.get(person)
            if raw is None or json.loads(raw)["until_ts"] <= now_ms:
                work.contacts.put(person, None)
        retrace = keys.state(SOURCE, RETRACE)
        for case_id in client.zrangebyscore(retrace, "-inf", now_ms - RETRACE_MS, start=0, num=TICK_LIMIT):
            changes.remove(retrace, case_id.decode())
        self._commit(client, work, folded, changes, now_ms)

    def publish(self, client: redis.Redis, keys: Keys, now_ms: int) -> bool:
        """Rebuild the tracing picture the dashboards read, when cases changed or it has aged; True if rebuilt."""
        return publish_picture(client, keys, now_ms, self.params)


def _window(raw: str | None) -> tuple[int | None, int | None]:
    """What a case's infectious window follows from: its confirmation and its onset."""
    record = json.loads(raw) if raw is not None else {}
    return record.get("confirmed_ts"), record.get("onset_ts")


def _contact(links: dict[str, Link], quarantine_ms: int) -> dict:
    """A contact's record from their links: counted under the first, in quarantine until the last one's ends."""
    flagged, venue_id, _, community = min(links.values())
    return {
        "links": {case_id: list(link) for case_id, link in sorted(links.items())},
        "case_ids": sorted(links),
        "venue_id": venue_id,
        "flagged_ts": flagged,
        "community_id": community,
        "until_ts": max(link[0] for link in links.values()) + quarantine_ms,
    }


def _confirmed_ts(raw: str | None) -> int | None:
    return None if raw is None else json.loads(raw).get("confirmed_ts")


def _code_member(holder: str, raw: str | None) -> str | None:
    """The member of the code-expiry set for a holder's code."""
    if raw is None:
        return None
    code = json.loads(raw)
    return f"{holder}|{code['community_id']}|{code['colour']}"


# ---------------------------------------------------------------------------- reading, for the dashboard


def _confirmed_cases(client: redis.Redis, keys: Keys, case_id: str | None = None) -> pd.DataFrame:
    """Return the confirmed cases (all, or the one asked for): ``case_id``, ``confirmed_ts``, ``onset_ts``
    (NaN when unknown), ``status``."""
    key = keys.state(SOURCE, CASES)
    records = client.hgetall(key).items() if case_id is None else [(case_id.encode(), client.hget(key, case_id))]
    rows = []
    for case, raw in records:
        record = json.loads(raw) if raw is not None else {}
        if "confirmed_ts" in record:
            rows.append((case.decode(), record["confirmed_ts"], record.get("onset_ts", np.nan), record["status"]))
    return pd.DataFrame(rows, columns=["case_id", "confirmed_ts", "onset_ts", "status"])


def exposure_sites(client: redis.Redis, keys: Keys, now_ms: int, params: TracingParams | None = None) -> list[dict]:
    """One row per exposure site on the map, most recent first; no person tokens and no points.

    Each row: ``venue_id``, ``community_id``, ``district_id``, ``h3`` (the venue's cell), ``cases``
    and ``visits`` (counts), ``first_arrive_ts``, ``last_leave_ts``, ``recency_h`` (hours since the
    last infectious visit ended, 0 while one is under way), ``case_ids`` (case tokens) and
    ``visit_times`` ((arrive_ts, leave_ts) pairs).
    """
    return _exposure_sites(client, keys, _confirmed_cases(client, keys), now_ms, params or TracingParams())


def _exposure_sites(client: redis.Redis, keys: Keys, cases: pd.DataFrame, now_ms: int, params: TracingParams):
    sites = {k.decode(): json.loads(v) for k, v in client.hgetall(keys.state(SOURCE, EXPOSURES)).items()}
    visits = pd.DataFrame(
        [
            (case_id, venue, arrive, leave)
            for venue, site in sites.items()
            for case_id, arrive, leave, _ in site["visits"]
        ],
        columns=["case_id", "venue_id", "arrive_ts", "leave_ts"],
    )
    if visits.empty or cases.empty:
        return []
    rows = tracing.exposure_sites(cases, visits, now_ms, params).to_dict("records")
    for row in rows:
        site = sites[row["venue_id"]]
        row.update(community_id=site["community_id"], district_id=site["district_id"], h3=site["h3"])
    return rows


def _case_visits(client: redis.Redis, keys: Keys, case_ids: Sequence[str]) -> pd.DataFrame:
    """Return every stored visit of some cases, with its point."""
    pipe = client.pipeline(transaction=False)
    for case_id in case_ids:
        pipe.zrange(keys.state(SOURCE, f"cases:visits:{case_id}"), 0, -1)
    rows = [
        _Visit.of(case_id, member)
        for case_id, members in zip(case_ids, pipe.execute() if case_ids else [])
        for member in members
    ]
    return pd.DataFrame(
        [(v.case_id, v.venue_id, v.arrive_ts, v.leave_ts, v.lon, v.lat) for v in rows],
        columns=["case_id", "venue_id", "arrive_ts", "leave_ts", "lon", "lat"],
    )


def clusters(client: redis.Redis, keys: Keys, now_ms: int, params: TracingParams | None = None) -> list[dict]:
    """One row per cluster of cases linked by a shared venue still on the map, largest first.

    Each row: ``cluster_id``, ``size``, ``case_ids`` (case tokens), ``sites`` (venue ids),
    ``first_arrive_ts``, ``last_leave_ts``.
    """
    return _clusters(client, keys, _confirmed_cases(client, keys), now_ms, params or TracingParams())


def _clusters(client: redis.Redis, keys: Keys, cases: pd.DataFrame, now_ms: int, params: TracingParams) -> list[dict]:
    if cases.empty:
        return []
    found = tracing.clusters(cases, _case_visits(client, keys, cases["case_id"].tolist()), params)
    found = found[found["last_leave_ts"] >= now_ms - params.site_horizon_days * DAY_MS]
    return found.assign(cluster_id=np.arange(len(found), dtype="int64")).to_dict("records")


# ---------------------------------------------------------------------------- the picture dashboards read

PICTURE_MAX_AGE_MS = 60_000  # rebuilt at least this often: sites age, and leave the map, with time alone
PICTURE_LOCK_MS = 30_000  # one worker builds at a time; a builder that dies lets go after this


def publish_picture(client: redis.Redis, keys: Keys, now_ms: int, params: TracingParams) -> bool:
    """Rebuild the tracing picture (exposure sites and clusters, with no person token in it) when a case,
    visit or exposure changed since it was built, or it is older than ``PICTURE_MAX_AGE_MS``.

    Finding sites and clusters reads every case on the map, so it is done here, by one worker every
    few seconds at most, rather than by every dashboard refresh: a refresh reads one key whatever the
    size of the outbreak. Return True when this call rebuilt it.
    """
    picture_key, changed_key = keys.state(SOURCE, PICTURE), keys.state(SOURCE, CHANGED)
    # The changed hash holds the stamp of the last change and those the picture was built from, so
    # deciding costs one small read, not the picture.
    stamp, built_stamp, built_ms = client.hmget(changed_key, ["stamp", "built_stamp", "built_ms"])
    stamp = stamp.decode() if stamp else ""
    if built_ms is not None and built_stamp.decode() == stamp and now_ms - int(built_ms) < PICTURE_MAX_AGE_MS:
        return False
    # A builder slower than the lock's expiry may find it taken by another: it lets go only of its own.
    with held(client, f"{picture_key}:lock", PICTURE_LOCK_MS) as taken:
        if not taken:
            return False
        cases = _confirmed_cases(client, keys)
        sites = _exposure_sites(client, keys, cases, now_ms, params)
        found = _clusters(client, keys, cases, now_ms, params)
        picture = {
            "built_ms": now_ms,
            "sites": [
                [
                    s["venue_id"],
                    s["community_id"],
                    s["district_id"],
                    s["h3"],
                    int(s["cases"]),
                    int(s["visits"]),
                    int(s["first_arrive_ts"]),
                    int(s["last_leave_ts"]),
                ]
                for s in sites
            ],  # fmt: skip
            "clusters": [
                [int(c["size"]), int(c["first_arrive_ts"]), int(c["last_leave_ts"]), list(c["sites"])] for c in found
            ],
        }
        write = client.pipeline(transaction=True)
        write.set(picture_key, json.dumps(picture, separators=(",", ":")))
        # The stamp was read before the cases: a change made while building is seen by the next call.
        write.hset(changed_key, mapping={"built_stamp": stamp, "built_ms": now_ms})
        write.execute()
    return True


def precise_visits(
    client: redis.Redis, keys: Keys, case_id: str | None = None, params: TracingParams | None = None
) -> list[dict]:
    """Return the infectious visits of one case (or of every confirmed case) with exact times and points: the
    case paths, for the role-gated precise view only.

    Each row: ``case_id``, ``venue_id``, ``arrive_ts``, ``leave_ts``, ``lon``, ``lat``.
    """
    cases = _confirmed_cases(client, keys, case_id)
    if cases.empty:
        return []
    visits = _case_visits(client, keys, cases["case_id"].tolist())
    return tracing.precise_visits(cases, visits, params or TracingParams()).to_dict("records")
