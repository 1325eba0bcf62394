"""Aggregator workers: read every source's stream in a consumer group, validate, place on the
map and fold each event into time-bucketed counters in Redis, exactly once.

Each batch is committed by one Lua script that checks the events' idempotency keys, adds the
counters, writes the dead letters and acknowledges the entries together: a worker killed at
any instant leaves either all of a batch or none of it, and the entries of a dead worker are
claimed by another (``XAUTOCLAIM``) once idle for ``claim_idle_ms``.

An event is late only when its minute is behind the source's closed horizon, which the workers'
roll-up moves on to the newest event minus the allowed lateness; it is never late because another
worker committed newer events first. So however many workers share a stream, and in whichever
order their batches commit, each event is folded as one worker would fold it.

On a Redis Cluster each source's keys share a slot: a worker reads each stream with an XREADGROUP of
its own and sends each commit to the primary serving its source; a slot that moves under it is met
like a lost connection, the batch redone once the map of slots is refreshed.

Run one with ``python -m data.aggregator``; start as many as the load needs.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import orjson
import redis

from data import schema
from data.connection import CLUSTER_MOVES, is_cluster, pool_for, refresh_slots
from data.fold import OUTSIDE, Folded, Placement, areas, cells, fold
from data.keepers import Keeper, StateChanges, versions_key
from data.keys import SOURCES, Keys
from data.schema import Decoded, Rejected

log = logging.getLogger("citydeck.aggregator")

COMMIT_SCRIPT = (Path(__file__).parent / "commit.lua").read_text()
ROLL_UP_SCRIPT = (Path(__file__).parent / "roll_up.lua").read_text()
TRIMMED_SCRIPT = (Path(__file__).parent / "trimmed.lua").read_text()
SEQUENCES_SCRIPT = (Path(__file__).parent / "sequences.lua").read_text()
SEQ_BLOCK = 1 << 16  # sequence numbers per bitmap of a producer's (8 KB)
HOUR_S = 3600
ROLL_UP_EVERY_S = 20  # how often a worker closes the past behind the lateness and rolls up closed hours
TICK_EVERY_S = 5  # how often keepers act on time passing
COLLECT_EVERY_S = 30  # how often a worker collects garbage (see _no_automatic_collection)
# The pending entries a roll-up looks through to keep the horizon behind them: every worker's batches
# in flight, many times over.
PENDING_HOLD_LIMIT = 100_000


class CityMap:
    """The community labels, their districts, a placer and the H3 cells hotspots are sought on: what a
    worker needs of the city."""

    def __init__(
        self,
        community_ids: Sequence[str],
        district_of_community: Sequence[str],
        placer,
        cells: Sequence[str] = (),
        bounds: tuple[float, float, float, float] | None = None,
    ):
        self.community_labels = [*map(str, community_ids), OUTSIDE]
        districts = sorted(set(map(str, district_of_community)))
        self.district_labels = [*districts, OUTSIDE]
        index = {d: i for i, d in enumerate(districts)}
        self.district_code = np.array([index[str(d)] for d in district_of_community] + [len(districts)])
        self._community_array = np.array(self.community_labels, dtype=object)
        self._district_array = np.array(self.district_labels, dtype=object)
        self.placer = placer
        self.cells = tuple(cells)
        # (min_lon, min_lat, max_lon, max_lat): a point far outside them is refused, not folded as outside.
        self.bounds = bounds

    @classmethod
    def of(cls, city, h3_resolution: int) -> CityMap:
        from engines.hotspots import city_cells
        from geo.placement import Placer

        return cls(
            city.communities["community_id"],
            city.communities["district_id"],
            Placer(city, h3_resolution=h3_resolution),
            city_cells(city, h3_resolution),
            city.bounds,
        )

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> Placement:
        """Place events by their coordinates."""
        idx = np.asarray(self.placer.place(lon, lat), dtype=np.int64)
        idx[idx < 0] = len(self.community_labels) - 1
        h3 = np.asarray(self.placer.h3_cells(lon, lat), dtype=np.uint64)
        return self._placement(idx, h3)

    def nowhere(self, n: int) -> Placement:
        """The placement of events that carry no coordinates."""
        return self._placement(np.full(n, len(self.community_labels) - 1), np.zeros(n, dtype=np.uint64))

    def _placement(self, idx: np.ndarray, h3: np.ndarray) -> Placement:
        community = areas(idx, self._community_array)
        district = areas(self.district_code[idx], self._district_array)
        return Placement(community, district, cells(h3))


@dataclass
class BatchResult:
    """What a batch did: events counted, entries dead-lettered by reason, redeliveries skipped."""

    counted: int = 0
    history: int = 0  # of those counted, events older than the fine retention, kept in hourly history only
    dead: dict[str, int] = field(default_factory=dict)
    redelivered: int = 0


@dataclass
class Prepared:
    """A batch made ready to commit: the script's document and keys, and what it will do."""

    doc: dict
    keys: list[str]
    result: BatchResult
    idems: list[tuple[int, str, str]]  # (hour, idempotency key, stream entry id) of the events it counts
    expiring: list[str]  # keys whose expiry this commit sets


# An entry's fields: the flat [name, value, ...] list a stream read returns, or a mapping (XAUTOCLAIM, tests).
Fields = Sequence[bytes] | Mapping[bytes, bytes]


@dataclass
class _Staged:
    """A batch decoded, judged, placed and folded, waiting for its keepers and its commit document."""

    now_ms: int
    result: BatchResult
    ids: list[bytes]
    id_texts: list[str]
    fields: list[Fields]
    rejected: list[Rejected]
    idems: list[tuple[int, str, str]]
    folded: Folded
    placed: list[tuple[Decoded, Placement]]
    history: Folded = field(default_factory=Folded)  # events older than the fine retention
    changes: StateChanges = field(default_factory=StateChanges)
    sequences: dict[str, list[int]] = field(default_factory=dict)  # producer -> sequence numbers in the batch


class Aggregator:
    """One aggregator worker; the Redis client is passed in, and so is the city."""

    def __init__(
        self,
        client: redis.Redis,
        settings,
        city: CityMap,
        *,
        name: str | None = None,
        sources: Sequence[str] = SOURCES,
        keepers: Sequence[Keeper] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.city = city
        self.sources = tuple(sources)
        self.keepers: dict[str, list[Keeper]] = {}
        for keeper in standard_keepers(settings, city) if keepers is None else keepers:
            self.keepers.setdefault(keeper.source, []).append(keeper)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(24):06x}"
        self.clock = clock
        self.group = settings.consumer_group
        self.commit = client.register_script(COMMIT_SCRIPT)
        self.roll_up_script = client.register_script(ROLL_UP_SCRIPT)
        self.trimmed_script = client.register_script(TRIMMED_SCRIPT)
        self.sequences_script = client.register_script(SEQUENCES_SCRIPT)
        # Per source, the closed horizon as this worker last heard of it: events before it are late.
        self.closed_ms: dict[str, int] = {}
        self.processed = 0
        self.stopping = False
        self._last_claim = 0.0
        self._last_beat = 0.0
        # The first roll-up waits a period too: a worker joining others closes nothing at once.
        self._last_roll_up = time.monotonic()
        self._last_tick = 0.0
        self._last_collect = time.monotonic()
        self._recovering = True
        self._expiring: set[str] = set()
        # Commits sent whose replies are not read yet, in the order they were sent.
        self._inflight: list[tuple[str, Sequence, Prepared]] = []
        # On a Redis Cluster each source is a slot of its own, so each is read by an XREADGROUP of its
        # own (a read naming two slots is refused); one server reads every stream in one.
        self._lanes: list[tuple[str, ...]] = (
            [(s,) for s in self.sources] if is_cluster(client) else [self.sources] if self.sources else []
        )
        # Per server (its connection pool), the connection commits are sent on and the replies it owes;
        # per commit in flight, the server it was sent to (the map of slots may change before its reply).
        self._committers: dict[int, tuple[redis.ConnectionPool, redis.Connection]] = {}
        self._owed: dict[int, int] = {}
        self._sent_to: dict[int, int] = {}
        # Per lane, the connection its reads are sent on, and whether the read in flight there blocks.
        self._readers: dict[tuple[str, ...], tuple[redis.ConnectionPool, redis.Connection]] = {}
        self._reading: dict[tuple[str, ...], bool] = {}
        self._ready: list[tuple[str, Sequence, _Staged]] = []  # batches kept, their commits not yet built

    # ------------------------------------------------------------------ lifecycle

    def ensure_groups(self) -> None:
        """Create each stream's consumer group if it is missing (BUSYGROUP is fine)."""
        for source in self.sources:
            try:
                self.client.xgroup_create(self.keys.stream(source), self.group, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            self.client.script_load(COMMIT_SCRIPT)
            closed = self.client.hget(self.keys.meta(source), "closed_ms")
            self.closed_ms[source] = max(self.closed_ms.get(source, 0), int(closed or 0))

    def stop(self, *_args) -> None:
        """Ask the worker to finish its current batch and return."""
        self.stopping = True

    def run(self, max_idle_s: float | None = None) -> int:
        """Work until stopped (or idle for ``max_idle_s``); survive Redis restarts. Returns entries handled."""
        backoff = 0.1
        idle_since = time.monotonic()
        groups_ready = False
        while not self.stopping:
            try:
                if not groups_ready:
                    self.ensure_groups()
                    groups_ready = True
                handled = self.step()
                backoff = 0.1
                if handled:
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                    break
            except (redis.ConnectionError, redis.TimeoutError, OSError, *CLUSTER_MOVES) as e:
                # A slot that moved (MOVED, ASK), is moving (TRYAGAIN) or a cluster that lost a node
                # (CLUSTERDOWN) did none of the command, as a lost connection: the entries read and not
                # committed stay pending and are read again once the map of slots is refreshed.
                what = "a cluster slot moved" if isinstance(e, CLUSTER_MOVES) else "redis unreachable"
                log.warning("%s (%s: %s); retrying in %.1fs", what, type(e).__name__, e, backoff)
                self._drop_connection()
                if isinstance(e, CLUSTER_MOVES):
                    refresh_slots(self.client)
                self._recovering = True
                groups_ready = False
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0) * random.uniform(0.8, 1.2)
            except redis.ResponseError as e:
                # A blocked read is ended with UNBLOCKED when its stream leaves the server: deleted, or
                # migrated to another node of a cluster with its slot.
                if "NOGROUP" not in str(e) and "UNBLOCKED" not in str(e):
                    raise
                log.warning("consumer group or stream gone from the server (%s); recreating", e)
                self._drop_connection()
                refresh_slots(self.client)
                self._recovering = True
                groups_ready = False
        self.close()
        log.info("worker %s stopping after %d entries", self.name, self.processed)
        return self.processed

    def step(self, block_ms: int | None = -1) -> int:
        """Claim stale entries and roll up closed hours when due, then read one batch from every
        stream, start the commits of the batches read before it, and prepare the new ones meanwhile.

        At most one commit per source is in flight and commits keep their order; ``flush`` ends the run.
        """
        now = time.monotonic()
        if now - self._last_collect > COLLECT_EVERY_S:
            self._last_collect = now
            gc.collect()
        with _no_automatic_collection():
            return self._step(now, block_ms)

    def _step(self, now: float, block_ms: int | None) -> int:
        handled = 0
        if now - self._last_claim > max(self.settings.claim_idle_ms / 2000, 0.5):
            self._last_claim = now
            handled += self.claim_stale()
        if now - self._last_beat > 2:
            self._last_beat = now
            self.heartbeat()
        if now - self._last_roll_up > ROLL_UP_EVERY_S:
            self._last_roll_up = now
            self.roll_up()
        if now - self._last_tick > TICK_EVERY_S:
            self._last_tick = now
            self.tick_keepers()
        if self._recovering:
            # After a start or a lost connection, first finish what this consumer read but never committed.
            history = self._read("0", None)
            for source, entries in history:
                if kept := self._without_trimmed(source, entries):
                    self.process(source, kept)
                handled += len(entries)
            if not history:
                self._recovering = False
        if not self._recovering:
            # With a batch prepared and waiting, read the next one at once rather than block.
            block = self.settings.block_ms if block_ms == -1 else block_ms
            self._receive_all()
            # Redis serves the read while this worker builds the waiting commits, and sends the read's
            # whole reply before it starts any of them: a reply still being sent when a commit starts
            # would wait for the commit to end. Each further commit is sent once another batch is
            # staged, by when Redis is mostly done with the one before, so sending seldom waits.
            self._request_read(">", None if self._ready else block)
            ready = [(source, entries, self._document(source, kept)) for source, entries, kept in self._ready]
            self._ready = []
            batches = self._receive_read(every=block_ms is None)
            staged = []
            for source, entries in batches:
                if ready:
                    self._send_commit(ready.pop(0))
                staged.append((source, entries, self._stage(source, entries, {})))
            for batch in ready:
                self._send_commit(batch)
            # Keepers read their state only now, after this worker's earlier commits of their source.
            self._ready = [(source, entries, self._keep(source, stage)) for source, entries, stage in staged]
            handled += sum(len(entries) for _, entries in batches)
            if not batches:
                self.flush()
        self.processed += handled
        return handled

    def _read(self, start: str, block: int | None) -> list[tuple[str, list]]:
        self._request_read(start, block)
        return self._receive_read()

    def _request_read(self, start: str, block: int | None) -> None:
        """Send an XREADGROUP on each lane with no read in flight; the replies are taken by ``_receive_read``."""
        for lane in self._lanes:
            if lane in self._reading:
                continue  # a blocking read sent by an earlier step, still waiting for entries
            streams = [self.keys.stream(s) for s in lane]
            if lane not in self._readers:
                pool = pool_for(self.client, streams[0])
                self._readers[lane] = (pool, pool.get_connection())
            blocking = ("BLOCK", block) if block is not None else ()
            self._readers[lane][1].send_command(
                "XREADGROUP", "GROUP", self.group, self.name, "COUNT", self.settings.batch_size, *blocking,
                "STREAMS", *streams, *[start] * len(streams),
            )  # fmt: skip
            self._reading[lane] = block is not None

    def _receive_read(self, every: bool = True) -> list[tuple[str, list]]:
        """The entries of the reads in flight, per source, each ``[id, [name, value, ...]]`` as Redis sent it.

        With ``every``, every lane's reply is waited for. Else the replies of reads sent without BLOCK
        are, and of blocking reads those already in, or the first to come when no other is awaited:
        on a cluster a quiet source's read keeps waiting for entries while the busy ones go on.

        The reply is taken as the connection parsed it, without turning each entry into a dict:
        the schema decodes whole columns from the flat lists.
        """
        taken = {lane for lane, blocking in self._reading.items() if every or not blocking}
        waiting = [lane for lane in self._reading if lane not in taken]
        if len(waiting) == 1 and not taken:
            taken.add(waiting[0])
        elif waiting:
            taken.update(self._replied(waiting, wait=not taken))
        batches = []
        for lane in self._lanes:
            if lane not in taken:
                continue
            del self._reading[lane]
            reply = self._readers[lane][1].read_response()
            streams = reply.items() if isinstance(reply, dict) else reply or []
            batches += [(self._source_of(stream), entries) for stream, entries in streams if entries]
        return batches

    def _replied(self, lanes: list[tuple[str, ...]], wait: bool) -> list[tuple[str, ...]]:
        """The lanes whose read has a reply to take; with ``wait``, at least one (a blocking read ends
        after ``block_ms`` at the latest)."""
        while True:
            ready = [lane for lane in lanes if self._readers[lane][1].can_read(0)]
            if ready or not wait:
                return ready
            # can_read above also saw replies already buffered; only the sockets are left to wait on.
            select.select([self._readers[lane][1]._sock for lane in lanes], [], [], self.settings.block_ms / 1000)

    def _send_commit(self, batch: tuple[str, Sequence, Prepared]) -> None:
        self._send(batch[2])
        self._inflight.append(batch)

    def _commit_ready(self) -> None:
        """Send the waiting batches' commits, once the replies of the commits before them are in."""
        ready, self._ready = self._ready, []
        if ready:
            self._receive_all()
            for source, entries, kept in ready:
                self._send_commit((source, entries, self._document(source, kept)))

    def flush(self) -> None:
        """Commit everything read so far and wait for it."""
        self._commit_ready()
        self._receive_all()

    def close(self) -> None:
        """Finish the reads and commits in flight and give back the connections."""
        try:
            self.flush()
            # Entries a blocking read still in flight brings are this worker's: commit them now rather
            # than leave them for another worker to claim.
            for source, entries in self._receive_read() if self._reading else ():
                self.process(source, entries)
        finally:
            self._drop_connection(disconnect=False)

    def _drop_connection(self, disconnect: bool = True) -> None:
        """Forget reads and commits in flight after a lost connection (or a moved slot): their entries
        stay pending and are redone. Connections go back to their pools, closed when a reply may be owed."""
        self._inflight, self._ready = [], []
        owed = {key for key, n in self._owed.items() if n}
        for key, (pool, connection) in self._committers.items():
            if disconnect or key in owed:
                connection.disconnect()
            pool.release(connection)
        for lane, (pool, connection) in self._readers.items():
            if disconnect or lane in self._reading:
                connection.disconnect()
            pool.release(connection)
        self._committers, self._owed, self._sent_to, self._readers, self._reading = {}, {}, {}, {}, {}

    def _committer(self, prepared: Prepared) -> tuple[int, redis.Connection]:
        """The connection a batch's commit goes on: that of the server holding its source's slot."""
        pool = pool_for(self.client, prepared.keys[0])
        key = id(pool)
        if key not in self._committers:
            self._committers[key] = (pool, pool.get_connection())
        return key, self._committers[key][1]

    def _send(self, prepared: Prepared) -> None:
        key, connection = self._committer(prepared)
        connection.send_command(
            "EVALSHA", self.commit.sha, len(prepared.keys), *prepared.keys, orjson.dumps(prepared.doc),
            # A health check's PING would take the reply of a commit still in flight as its own.
            check_health=not self._owed.get(key),
        )  # fmt: skip
        self._owed[key] = self._owed.get(key, 0) + 1
        self._sent_to[id(prepared)] = key

    def _receive(self, prepared: Prepared) -> bytes:
        key = self._sent_to.pop(id(prepared))
        self._owed[key] -= 1
        try:
            return self._committers[key][1].read_response()
        except redis.exceptions.NoScriptError:
            self.client.script_load(COMMIT_SCRIPT)
            raise

    def _receive_all(self) -> None:
        """Take the replies of every commit in flight, then settle each in order.

        All replies are read before any is settled: settling a refused commit sends its redo and
        reads the redo's reply, which must not be the reply of a later commit still in flight.
        """
        inflight, self._inflight = self._inflight, []
        outcomes: list[bytes | None] = []
        for _, _, prepared in inflight:
            try:
                outcomes.append(self._receive(prepared))
            except redis.exceptions.NoScriptError:
                outcomes.append(None)  # Redis restarted and lost its scripts: nothing was done
        for (source, entries, prepared), outcome in zip(inflight, outcomes):
            if outcome is None:
                self._commit(source, entries, prepared)
            else:
                self._settle(source, entries, prepared, outcome)

    def claim_stale(self) -> int:
        """Count what the streams' caps trimmed before it was folded, then take over entries that another
        worker read and never acknowledged."""
        handled = 0
        for source in self.sources:
            self.count_lost(source)
            start = "0-0"
            while True:
                reply = self.client.xautoclaim(
                    self.keys.stream(source),
                    self.group,
                    self.name,
                    self.settings.claim_idle_ms,
                    start_id=start,
                    count=self.settings.batch_size,
                )
                start, entries = reply[0], reply[1]
                # Entries trimmed while pending: Redis >= 7 drops them from the pending list and names
                # them; Redis 6.2 returns each as (None, None) and keeps it pending, now this worker's,
                # where the reading of this worker's own pending entries finds it with its id.
                gone = reply[2] if len(reply) > 2 else []
                if gone:
                    self.count_lost(source, gone=gone)
                live = [e for e in entries if e[0] is not None]
                if len(live) < len(entries):
                    self._recovering = True
                if live:
                    log.info("claimed %d stale %s entries", len(live), source)
                    self.process(source, live)
                handled += len(entries) + len(gone)
                if start in (b"0-0", "0-0") or not (entries or gone):
                    break
        return handled

    def count_lost(self, source: str, pending: Sequence[bytes] = (), gone: Sequence[bytes] = ()) -> list[int]:
        """Count as lost what the stream's cap trimmed before it was folded, and move the group past it.

        ``pending`` are entries found pending with no fields (trimmed after they were read): they are
        acknowledged here. ``gone`` are entries Redis already dropped as deleted. Returns the entries
        counted and the gaps whose size the server could not tell (Redis < 7 keeps no counters).

        Run at start and with every claim: the cap overtaking a group between two runs, while it reads,
        is found by Redis >= 7's counters once the group catches up; Redis 6.2 cannot tell it at all,
        which is why the health view warns long before the cap is reached.
        """
        texts = lambda ids: [i.decode() if isinstance(i, bytes) else str(i) for i in ids]  # noqa: E731
        doc = {"group": self.group, "pending": texts(pending), "gone": texts(gone)}
        keys = [self.keys.stream(source), self.keys.lost(source), self.keys.meta(source)]
        counted, uncounted = self.trimmed_script(keys=keys, args=[orjson.dumps(doc)])
        if counted:
            log.warning("%s: the stream's cap trimmed %d entries before they were folded", source, counted)
        if uncounted:
            log.warning("%s: the stream's cap trimmed entries unread; this Redis cannot tell how many", source)
        return [counted, uncounted]

    def _without_trimmed(self, source: str, entries: Sequence[tuple[bytes, Fields | None]]) -> list:
        """The entries that still have their fields; those trimmed after they were read are counted lost."""
        trimmed = [e[0] for e in entries if not e[1]]
        if trimmed:
            self.count_lost(source, pending=trimmed)
            return [e for e in entries if e[1]]
        return list(entries)

    def roll_up(self) -> int:
        """Close each source's past up to its newest event minus the allowed lateness, and sum the fine
        buckets of every hour wholly behind that horizon into hourly buckets; return the hours rolled.

        The horizon is moved on first, by one script: from then on the commit script refuses events
        older than it, so the closed hours' fine buckets can no longer change. It never passes an event
        read and not yet committed: a dead worker's entries, claimed later, are not late for that. Each
        hour is then summed by another script, atomic against commits, and rewritten rather than added
        to, so two workers rolling up at once do no harm.
        """
        s = self.settings
        retention_s = int(s.retention_hours * HOUR_S)
        history_s = max(retention_s, s.history_days * 24 * HOUR_S)
        bucket_ms = s.bucket_seconds * 1000
        rolled = 0
        for source in self.sources:
            meta = self.keys.meta(source)
            newest_ms = int(self.client.hget(meta, "newest_ms") or 0)
            horizon_ms = (newest_ms - s.lateness_seconds * 1000) // bucket_ms * bucket_ms
            known = [meta, self.keys.open_hours(source), self.keys.rolled_hours(source)]
            move = {"closed_ms": max(horizon_ms, 0), "group": self.group, "bucket_ms": bucket_ms}
            move["pending_limit"] = PENDING_HOLD_LIMIT
            self.roll_up_script(keys=[*known, self.keys.stream(source)], args=[orjson.dumps(move)])
            closed_ms = int(self.client.hget(meta, "closed_ms") or 0)
            self.closed_ms[source] = max(self.closed_ms.get(source, 0), closed_ms)
            for raw in self.client.zrangebyscore(self.keys.open_hours(source), "-inf", closed_ms // 1000 - HOUR_S):
                hour = int(raw)
                starts = range(hour, hour + HOUR_S, s.bucket_seconds)
                doc = {
                    "closed_ms": 0,
                    "hour": hour,
                    "buckets": len(starts),
                    "expire_at": hour + HOUR_S + history_s,
                    "forget_before": int(self.clock()) - history_s - HOUR_S,
                }
                while True:
                    doc["facets"] = sorted(
                        f.decode() for f in self.client.smembers(self.keys.hour_facets(source, hour))
                    )
                    keys = [*known, self.keys.hour_facets(source, hour)]
                    for facet in doc["facets"]:
                        keys.append(self.keys.bucket(source, facet, "h", hour))
                        keys += [self.keys.bucket(source, facet, "m", start) for start in starts]
                    if self.roll_up_script(keys=keys, args=[orjson.dumps(doc)]) != b"facets":
                        break
                rolled += 1
        return rolled

    def tick_keepers(self) -> int:
        """Let each keeper act on time passing (deadlines, quarantines); return the ticks committed."""
        self.flush()
        committed = 0
        for source in self.sources:
            for keeper in self.keepers.get(source, ()):
                while True:
                    prepared = self._prepare(source, [], {}, tick=keeper)
                    if not (
                        prepared.doc["put"] or prepared.doc["drop"] or prepared.doc["zadd"] or prepared.doc["incr"]
                    ):
                        break
                    self._send(prepared)
                    outcome = self._receive(prepared)
                    if not outcome:
                        committed += 1
                        break
                    log.info("%s tick raced another worker; redoing it", source)
        self.publish()
        return committed

    def publish(self) -> None:
        """Let each keeper rebuild the picture dashboards read of its state, if it has one and it is due."""
        now_ms = int(self.clock() * 1000)
        for source in self.sources:
            for keeper in self.keepers.get(source, ()):
                publish = getattr(keeper, "publish", None)
                if publish is not None:
                    publish(self.client, self.keys, now_ms)

    def drain(self) -> int:
        """Process everything waiting without blocking, commit it, close what is past the lateness and
        publish the keepers' pictures; return the entries handled (for tools, tests and benchmarks that
        fill the streams first)."""
        handled = 0
        while step := self.step(block_ms=None):
            handled += step
        self.flush()
        self.roll_up()
        self.publish()
        return handled

    def heartbeat(self) -> None:
        """Say this worker is alive, for the health view, and forget workers silent past the timeout."""
        now_ms = int(self.clock() * 1000)
        beat = {"pid": os.getpid(), "at_ms": now_ms, "processed": self.processed}
        self.client.hset(self.keys.workers(), self.name, json.dumps(beat))
        # Every restart is a worker of a new name: the names of the dead would pile up for ever.
        timeout_ms = self.settings.worker_timeout_s * 1000
        dead = [
            name
            for name, raw in self.client.hgetall(self.keys.workers()).items()
            if now_ms - json.loads(raw).get("at_ms", 0) > timeout_ms
        ]
        if dead:
            self.client.hdel(self.keys.workers(), *dead)

    def _source_of(self, stream) -> str:
        stream = stream.decode() if isinstance(stream, bytes) else stream
        for s in self.sources:
            if self.keys.stream(s) == stream:
                return s
        raise ValueError(f"not a stream of this worker: {stream}")

    # ------------------------------------------------------------------ one batch

    def process(self, source: str, entries: Sequence[tuple[bytes, Fields | None]]) -> BatchResult:
        """Validate, place, fold and commit one batch of one source's entries, now."""
        self.flush()
        return self._commit(source, entries, self._prepare(source, entries, {}))

    def _commit(self, source: str, entries: Sequence[tuple[bytes, Fields | None]], prepared: Prepared) -> BatchResult:
        """Commit one prepared batch and wait for it."""
        self._send(prepared)
        return self._settle(source, entries, prepared, self._receive(prepared))

    def _settle(
        self, source: str, entries: Sequence[tuple[bytes, Fields | None]], prepared: Prepared, outcome: bytes
    ) -> BatchResult:
        """Finish a commit from its reply: done, or refused and redone without what it refused for."""
        skip: dict[bytes, str | None] = {}  # entry id -> dead-letter reason, or None to only acknowledge
        while True:
            if not outcome:
                self._expiring.update(prepared.expiring)
                if len(self._expiring) > 200_000:
                    self._expiring.clear()
                return prepared.result
            refusal = json.loads(outcome)
            if "stale" in refusal:
                log.info("%s batch raced another worker on %d entities; redoing it", source, refusal["stale"])
            if "closed" in refusal:
                # A roll-up has closed minutes this batch would add to: what is in them is late now.
                self.closed_ms[source] = max(self.closed_ms.get(source, 0), int(refusal["closed"]))
            # Counted before: the same entry redelivered (acknowledge only), or a true repeat.
            entry_of = {idem: entry_id.encode() for _, idem, entry_id in prepared.idems}
            for idem, previous in refusal.get("conflicts", []):
                entry_id = entry_of[idem]
                skip[entry_id] = None if previous.encode() == entry_id else "duplicate"
            prepared = self._prepare(source, entries, skip)
            self._send(prepared)
            outcome = self._receive(prepared)

    def _prepare(
        self,
        source: str,
        entries: Sequence[tuple[bytes, Fields | None]],
        skip: dict[bytes, str | None],
        tick: Keeper | None = None,
    ) -> Prepared:
        """Build the commit of a batch; with ``tick`` and no entries, the commit of a keeper's tick."""
        return self._document(source, self._keep(source, self._stage(source, entries, skip), tick))

    def _stage(
        self, source: str, entries: Sequence[tuple[bytes, Fields | None]], skip: dict[bytes, str | None]
    ) -> _Staged:
        """Decode, judge, place and fold a batch: everything of its commit that reads nothing from Redis."""
        s = self.settings
        now_ms = int(self.clock() * 1000)
        result = BatchResult()
        ids = [e[0] for e in entries]
        id_texts = [i.decode() for i in ids]
        fields = [e[1] or () for e in entries]
        live = [i for i, entry_id in enumerate(ids) if entry_id not in skip and entries[i][1] is not None]
        decoded, rejected = schema.decode_batch(
            source,
            [fields[i] for i in live],
            now_ms=now_ms,
            future_tolerance_ms=s.future_tolerance_seconds * 1000,
            max_text_length=s.max_text_length,
            # Bounded before the commit script: a script that fails half-way has written half a commit.
            max_fields=s.max_event_fields,
            max_bytes=s.max_event_bytes,
            bounds=None if self.city.bounds is None else schema.city_bounds(self.city.bounds, s.city_margin_km),
        )
        rejected = [Rejected(live[r.row], r.reason) for r in rejected]
        for d in decoded:
            d.rows = np.asarray(live, dtype=np.int64)[d.rows]
        sequences = _sequences(decoded, fields, rejected)
        rejected += [Rejected(i, reason) for i, entry_id in enumerate(ids) if (reason := skip.get(entry_id))]
        history_before_ms = self._history_before_ms(now_ms)
        decoded, late, idems = self._drop_late_and_repeated(source, decoded, id_texts, history_before_ms)
        rejected += late

        # History behind the closed horizon (a past year imported into a live city) was late before it was
        # history: it folds into hourly counters alone, and the live state (open complaints, contacts, latest
        # readings) stays what the events within the horizon made it. Any other event is kept as always,
        # its state included; its counters go to hourly history when its minutes are no longer kept.
        floor = self.closed_ms.get(source, 0)
        folded, history = Folded(), Folded()
        placed = []
        for d in decoded:
            ts = d.columns["ts"]
            for part, into in zip(_split(d, (ts >= floor) | (ts >= history_before_ms)), (folded, history)):
                if not len(part):
                    continue
                if "lon" in part.columns:
                    where = self.city.locate(part.columns["lon"], part.columns["lat"])
                else:
                    where = self.city.nowhere(len(part))
                fold(part, where, s.bucket_seconds, into)
                if into is folded:
                    placed.append((part, where))
        result.redelivered = sum(1 for v in skip.values() if v is None)
        result.history = history.events
        return _Staged(
            now_ms, result, ids, id_texts, fields, rejected, idems, folded, placed, history, sequences=sequences
        )

    def _history_before_ms(self, now_ms: int) -> int:
        """The time before which an event's fine bucket is already past the fine retention: such an event
        is history, folded into hourly buckets only (Redis would drop its minute at once)."""
        bs = self.settings.bucket_seconds
        last_expired = now_ms // 1000 - bs - int(self.settings.retention_hours * HOUR_S)
        return (last_expired // bs + 1) * bs * 1000

    def _keep(self, source: str, staged: _Staged, tick: Keeper | None = None) -> _Staged:
        """Let the source's keepers read and change their state (or one keeper act on time passing)."""
        folded, changes, now_ms = staged.folded, staged.changes, staged.now_ms
        if tick is not None:
            tick.tick(self.client, self.keys, folded, changes, now_ms)
        elif staged.placed:
            for keeper in self.keepers.get(source, ()):
                keeper.keep(self.client, self.keys, staged.placed, folded, changes, now_ms)
        if staged.sequences:
            self._mark_sequences(source, staged.sequences)
        staged.result.counted = folded.events + staged.history.events
        return staged

    def _mark_sequences(self, source: str, sequences: Mapping[str, list[int]]) -> None:
        """Mark the producers' sequence numbers a batch carries, for counting the events lost upstream.

        Marks are idempotent, so they are made before the commit: a batch redone or redelivered marks
        nothing twice, and one whose commit never lands leaves marks its redelivery would make anyway.
        """
        keys = [self.keys.producers(source)]
        marks = []
        for producer, seqs in sequences.items():
            blocks: dict[int, list[int]] = {}
            for q in seqs:
                blocks.setdefault(q // SEQ_BLOCK, []).append(q % SEQ_BLOCK)
            for block, offsets in blocks.items():
                keys.append(self.keys.producer_seqs(source, producer, block))
                low, high = block * SEQ_BLOCK + min(offsets), block * SEQ_BLOCK + max(offsets)
                marks.append([len(keys), producer, offsets, low, high])
        expire_s = int(self.settings.retention_hours * HOUR_S) + HOUR_S
        self.sequences_script(keys=keys, args=[orjson.dumps({"marks": marks, "expire_s": expire_s})])

    def _document(self, source: str, staged: _Staged) -> Prepared:
        """Build the commit script's document and keys for a batch its keepers have seen."""
        s = self.settings
        now_ms, result, folded, changes = staged.now_ms, staged.result, staged.folded, staged.changes
        ids, id_texts, fields, rejected, idems = (
            staged.ids, staged.id_texts, staged.fields, staged.rejected, staged.idems
        )  # fmt: skip

        keys = [
            self.keys.stream(source),
            self.keys.dead_letters(source),
            self.keys.dead_counts(source),
            self.keys.meta(source),
            self.keys.open_hours(source),
            self.keys.stamps(source),
        ]
        index: dict[str, int] = {}

        def key_index(name: str) -> int:
            if name not in index:
                keys.append(name)
                index[name] = len(keys)
            return index[name]

        retention_s = int(s.retention_hours * HOUR_S)
        now_s = now_ms // 1000
        # History is kept `history_days` from when it came, however old it is: a past year imported
        # today stays as long as today's hours do. So are its idempotency keys: the same file imported
        # again within that time doubles nothing.
        history_until = now_s + max(retention_s, s.history_days * 24 * HOUR_S)
        seen_groups: dict[int, list[str]] = {}
        for hour, idem, entry_id in idems:
            seen_groups.setdefault(hour, []).extend((idem, entry_id))
        seen = [
            [
                key_index(self.keys.seen(source, hour)),
                hour + HOUR_S + retention_s if hour + HOUR_S + retention_s > now_s else history_until,
                pairs,
            ]
            for hour, pairs in seen_groups.items()
        ]
        incr = []
        expiring: list[str] = []
        facets_by_hour: dict[int, set[str]] = {}
        by_hour: dict[tuple[str, int], dict[str, int]] = {}

        def into_history(facet: str, start: int, counters: Mapping[str, int]) -> None:
            hourly = by_hour.setdefault((facet, start - start % HOUR_S), {})
            for name, n in counters.items():
                hourly[name] = hourly.get(name, 0) + n

        for (facet, start), counters in staged.history.counters.items():
            into_history(facet, start, counters)
        for (facet, start), counters in folded.counters.items():
            if start + s.bucket_seconds + retention_s <= now_s:
                # A minute already past its retention (an old event, an old appointment slot): Redis would
                # drop it at once, so it is counted in its hour's history.
                into_history(facet, start, counters)
                continue
            hour = start - start % HOUR_S
            fine = self.keys.bucket(source, facet, "m", start)
            # A key's expiry is set once per worker, not with every batch.
            expire_at = 0 if fine in self._expiring else start + s.bucket_seconds + retention_s
            expiring.append(fine)
            incr.append([[key_index(fine)], [expire_at], list(chain.from_iterable(counters.items()))])
            facets_by_hour.setdefault(hour, set()).add(facet)
        hours = [
            [key_index(self.keys.hour_facets(source, hour)), hour, hour + HOUR_S + retention_s, sorted(facets)]
            for hour, facets in facets_by_hour.items()
        ]
        for (facet, hour), counters in by_hour.items():
            hourly = self.keys.bucket(source, facet, "h", hour)
            incr.append([[key_index(hourly)], [history_until], list(chain.from_iterable(counters.items()))])
        if by_hour:
            history_hours = sorted({hour for _, hour in by_hour})
            changes.zadd[self.keys.history_hours(source)] = [(h, str(h)) for h in history_hours]
            changes.expire_at[self.keys.history_hours(source)] = history_until
        latest = [
            [
                key_index(self.keys.latest(source, facet)),
                key_index(self.keys.latest_time(source, facet)),
                [x for entity, (t, state) in states.items() for x in (entity, t, state)],
            ]
            for facet, states in folded.latest.items()
        ]
        dead = []
        for r in rejected:
            kind = r.kind
            result.dead[kind] = result.dead.get(kind, 0) + 1
            letter = ["dead_reason", r.reason, "dead_entry_id", ids[r.row].decode(), "dead_at_ms", str(now_ms)]
            letter += _excerpt(fields[r.row], min(s.max_event_fields, LETTER_FIELDS), s.dead_letter_field_bytes)
            dead.append([kind, letter, ids[r.row].decode()])
        doc = {
            "seen": seen,
            **self._state_sections(changes, key_index),
            "incr": incr,
            "hours": hours,
            "latest": latest,
            "dead": dead,
            "ack": id_texts,
            "group": self.group,
            "oldest_ms": folded.oldest_ms,
            "newest_ms": folded.newest_ms,
            "lateness_ms": s.lateness_seconds * 1000,
            "now_ms": now_ms,
            "events": folded.events,
            "history_events": staged.history.events,
            "dead_maxlen": s.dead_letter_maxlen,
            "stamps": sorted({start for _, start in folded.counters}),
            "bucket_s": s.bucket_seconds,
        }
        return Prepared(doc, keys, result, idems, expiring)

    @staticmethod
    def _state_sections(changes: StateChanges, key_index: Callable[[str], int]) -> dict[str, list]:
        """The commit document's sections for a keeper's changes."""
        expire = changes.expire_at.get
        return {
            "expect": [
                [key_index(versions_key(k)), list(chain.from_iterable(v.items()))] for k, v in changes.expect.items()
            ],
            "put": [[key_index(k), expire(k, 0), list(chain.from_iterable(v.items()))] for k, v in changes.put.items()],
            "drop": [[key_index(k), v] for k, v in changes.drop.items()],
            "zadd": [
                [key_index(k), expire(k, 0), [x for score, member in v for x in (score, member)]]
                for k, v in changes.zadd.items()
            ],
            "zrem": [[key_index(k), v] for k, v in changes.zrem.items()],
        }

    def _drop_late_and_repeated(
        self, source: str, decoded: list[Decoded], ids: list[str], history_before_ms: int = 0
    ) -> tuple[list[Decoded], list[Rejected], list[tuple[int, str, str]]]:
        """Set aside events too late to fold and repeats within the batch; list idempotency keys.

        Late means behind the closed horizon: whatever else is in the batch or was committed before it.
        History (older than ``history_before_ms``) is never late: it adds to hourly buckets only, which
        no running window sum holds.
        """
        floor = self.closed_ms.get(source, 0)
        rejected: list[Rejected] = []
        idems: list[tuple[int, str, str]] = []
        in_batch: set[str] = set()
        kept = []
        for d in decoded:
            ts = d.columns["ts"]
            keep = (ts >= floor) | (ts < history_before_ms)
            for j in np.flatnonzero(~keep).tolist():
                behind = (floor - int(ts[j])) // 1000
                rejected.append(Rejected(int(d.rows[j]), f"late:{behind}s before the closed horizon"))
            # The key is the producer's bytes as they are (the schema lets only UTF-8 through) and the
            # number in its one canonical spelling: two producers or two numbers never share a key.
            producers = {p: p.decode() for p in set(d.columns["src"])}
            keys = [f"{producers[p]}:{q}" for p, q in zip(d.columns["src"], d.columns["seq"].tolist())]
            if len(set(keys)) == len(keys) and in_batch.isdisjoint(keys):
                in_batch.update(keys)
            else:
                for j, key in enumerate(keys):
                    if not keep[j]:
                        continue
                    if key in in_batch:
                        keep[j] = False
                        rejected.append(Rejected(int(d.rows[j]), "duplicate"))
                    else:
                        in_batch.add(key)
            rows = np.flatnonzero(keep)
            hours = ((ts[rows] // (HOUR_S * 1000)) * HOUR_S).tolist()
            idems.extend(zip(hours, [keys[j] for j in rows.tolist()], [ids[r] for r in d.rows[rows].tolist()]))
            if len(rows) < len(keep):
                d = Decoded(d.type, d.rows[rows], {k: _take(v, rows) for k, v in d.columns.items()})
            if len(d):
                kept.append(d)
        return kept, rejected, idems


@contextmanager
def _no_automatic_collection() -> Iterator[None]:
    """Hold off Python's automatic garbage collection while a worker handles a step.

    A step allocates tens of thousands of lists (two per entry read) that all live until the
    batch is committed: the collector, run every few hundred allocations, traversed them again
    and again, and whole-heap passes took a fifth of a worker's time while freeing nothing (a
    batch's objects form no cycles; they go by reference counting). The worker collects on its
    own schedule instead (``COLLECT_EVERY_S``).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def standard_keepers(settings, city: CityMap) -> list[Keeper]:
    """The keepers every worker runs: complaint routing and hotspots, crowding, contact tracing."""
    from data.keepers.cases import CaseKeeper
    from data.keepers.complaints import ComplaintKeeper
    from data.keepers.foot import FootKeeper

    return [ComplaintKeeper(settings, city.cells), FootKeeper(settings), CaseKeeper(settings)]


# The most fields a dead letter keeps whatever the settings say: the commit script passes a letter's
# names and values to XADD in one call, and Lua unpacks at most about 8,000 values at once.
LETTER_FIELDS = 1000


def _excerpt(entry: Fields, max_fields: int, max_bytes: int) -> list[str]:
    """The names and values a refused entry's dead letter keeps: at most ``max_fields`` of them, each
    at most ``max_bytes`` long, and a ``dead_cut`` field saying what was left out, when anything was.

    Bytes that are not UTF-8 are kept as ``\\xNN`` escapes, so a letter shows what came in. A field
    of the entry named like the letter's own (``dead_reason``...) is kept as ``original_dead_...``:
    readers take the last of two fields of one name, and the entry's must not pass for the worker's."""
    flat = list(chain.from_iterable(entry.items())) if isinstance(entry, Mapping) else list(entry)
    out, cut = [], []
    for name, value in zip(flat[0 : 2 * max_fields : 2], flat[1 : 2 * max_fields : 2]):
        name = name if isinstance(name, bytes) else str(name).encode()
        (name, name_cut), (value, value_cut) = (
            _cut(x, max_bytes) for x in (b"original_" + name if name.startswith(b"dead_") else name, value)
        )
        if name_cut or value_cut:
            cut.append(name)
        out += [name, value]
    said = []
    if len(flat) > 2 * max_fields:
        said.append(f"{max_fields} of {len(flat) // 2} fields kept")
    if cut:
        said.append(f"cut to {max_bytes} bytes: " + ", ".join(cut))
    if said:
        out += ["dead_cut", _cut("; ".join(said), max_bytes)[0]]
    return out


def _cut(raw: bytes | str, max_bytes: int) -> tuple[str, bool]:
    """A name or value as text of at most ``max_bytes`` UTF-8 bytes, and whether it had to be cut."""
    raw = raw if isinstance(raw, bytes) else str(raw).encode()
    text = raw[:max_bytes].decode(errors="backslashreplace")
    encoded = text.encode()
    if len(encoded) > max_bytes:
        text = encoded[:max_bytes].decode(errors="ignore")
    return text, len(raw) > max_bytes or len(encoded) > max_bytes


def _sequences(decoded: list[Decoded], fields: list[Fields], rejected: list[Rejected]) -> dict[str, list[int]]:
    """Per producer, the sequence numbers of a batch's events: those decoded, whether folded or set aside
    later, and those refused whose ``src`` and ``seq`` still read as such (the event reached Redis)."""
    out: dict[str, list[int]] = {}
    for d in decoded:
        names = {p: p.decode(errors="backslashreplace") for p in set(d.columns["src"])}
        for p, q in zip(d.columns["src"], d.columns["seq"].tolist()):
            out.setdefault(names[p], []).append(int(q))
    for r in rejected:
        entry = fields[r.row]
        named = dict(entry.items() if isinstance(entry, Mapping) else zip(entry[::2], entry[1::2]))
        src, seq = named.get(b"src"), named.get(b"seq")
        if (
            isinstance(src, bytes)
            and isinstance(seq, bytes)
            and len(seq) <= 18
            and schema.canonical_integers((seq,))
            and seq[:1] != b"-"
        ):
            out.setdefault(src.decode(errors="backslashreplace"), []).append(int(seq))
    return out


def _take(column, rows: np.ndarray):
    return column[rows] if isinstance(column, np.ndarray) else [column[i] for i in rows]


def _split(decoded: Decoded, mask: np.ndarray) -> tuple[Decoded, Decoded]:
    """Split a type's events into those the mask selects and the rest."""

    def part(rows: np.ndarray) -> Decoded:
        return Decoded(decoded.type, decoded.rows[rows], {k: _take(v, rows) for k, v in decoded.columns.items()})

    if mask.all():  # the usual batch: all live, nothing copied
        return decoded, part(np.flatnonzero(~mask))
    return part(np.flatnonzero(mask)), part(np.flatnonzero(~mask))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one aggregator worker until SIGINT or SIGTERM."""
    from data.connection import process_redis
    from geo.configured import city_for

    parser = argparse.ArgumentParser(prog="python -m data.aggregator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", nargs="*", choices=SOURCES, default=list(SOURCES), help="streams to consume")
    parser.add_argument("--name", help="consumer name (default: host-pid-random)")
    parser.add_argument("--max-idle", type=float, default=None, help="exit after this many idle seconds")
    args = parser.parse_args(argv)
    with process_redis(parser) as (settings, client):
        city = CityMap.of(city_for(settings), settings.h3_resolution)
        worker = Aggregator(client, settings, city, name=args.name, sources=args.sources)
        signal.signal(signal.SIGINT, worker.stop)
        signal.signal(signal.SIGTERM, worker.stop)
        log.info("worker %s consuming %s", worker.name, ", ".join(args.sources))
        worker.run(max_idle_s=args.max_idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
