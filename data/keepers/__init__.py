"""Keepers: the state beyond counters that the domain engines need, kept in Redis by the workers.

A keeper sees each batch of its source after decoding and placing, reads what it needs,
and returns the changes as a ``StateChanges``: hash fields to set (guarded by a version
per entity, so two workers never clobber one complaint), sorted-set members to add or trim,
and counters to add. The worker commits them in the same script as the batch's counters and
acknowledgement, so they are applied exactly once too.

A keeper may also have ``publish(client, keys, now_ms)``, called by the workers' tick: it rebuilds
a derived picture that dashboards read as one key (the cases keeper's exposure sites and clusters, the
complaints keeper's hotspots), so no dashboard refresh has to read the whole state or run a costly rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis

from data.fold import Folded, Placement
from data.keys import Keys
from data.schema import Decoded


@dataclass
class StateChanges:
    """What a batch changes beyond its counters; applied atomically with it."""

    # key -> {field: value}; each entity's version is checked and bumped (see ``expect``)
    put: dict[str, dict[str, str]] = field(default_factory=dict)
    # key -> {field: version read}; the commit is refused if any changed since (the batch is redone)
    expect: dict[str, dict[str, int]] = field(default_factory=dict)
    # key -> fields to delete
    drop: dict[str, list[str]] = field(default_factory=dict)
    # key -> [(score, member), ...]
    zadd: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    # key -> members to remove
    zrem: dict[str, list[str]] = field(default_factory=dict)
    # key -> Unix time the key expires (set with the write)
    expire_at: dict[str, int] = field(default_factory=dict)

    def set(self, key: str, name: str, value: str, version: int) -> None:
        """Set one entity's state, expecting it still at the version read."""
        self.put.setdefault(key, {})[name] = value
        self.expect.setdefault(key, {})[name] = version

    def add(self, key: str, score: float, member: str) -> None:
        self.zadd.setdefault(key, []).append((score, member))

    def remove(self, key: str, member: str) -> None:
        self.zrem.setdefault(key, []).append(member)

    def delete(self, key: str, name: str, version: int) -> None:
        """Delete one entity's state, expecting it still at the version read."""
        self.drop.setdefault(key, []).append(name)
        self.expect.setdefault(key, {})[name] = version

    def __bool__(self) -> bool:
        return bool(self.put or self.drop or self.zadd or self.zrem)


def versions_key(key: str) -> str:
    """The hash holding the version of each entity of a state hash."""
    return f"{key}:ver"


def read_states(client: redis.Redis, key: str, names: Sequence[str]) -> tuple[list[bytes | None], list[int]]:
    """Read entities' states and their versions in one round trip."""
    if not names:
        return [], []
    pipe = client.pipeline(transaction=False)
    pipe.hmget(key, names)
    pipe.hmget(versions_key(key), names)
    states, versions = pipe.execute()
    return states, [int(v or 0) for v in versions]


def read_many_states(
    client: redis.Redis, wanted: Sequence[tuple[str, Sequence[str]]]
) -> list[tuple[list[bytes | None], list[int]]]:
    """Read the states and versions of entities of several hashes in one round trip."""
    pipe = client.pipeline(transaction=False)
    for key, names in wanted:
        if names:
            pipe.hmget(key, names)
            pipe.hmget(versions_key(key), names)
    replies = iter(pipe.execute() if any(names for _, names in wanted) else ())
    return [(next(replies), [int(v or 0) for v in next(replies)]) if names else ([], []) for _, names in wanted]


class Keeper(Protocol):
    """Keeps one source's engine state; called for every batch of that source."""

    source: str

    def keep(
        self,
        client: redis.Redis,
        keys: Keys,
        batch: Sequence[tuple[Decoded, Placement]],
        folded: Folded,
        changes: StateChanges,
        now_ms: int,
    ) -> None:
        """Read what the batch needs and record its changes (and any extra counters in ``folded``)."""

    def tick(self, client: redis.Redis, keys: Keys, folded: Folded, changes: StateChanges, now_ms: int) -> None:
        """Do what time alone makes happen (deadlines passing, quarantines ending)."""
