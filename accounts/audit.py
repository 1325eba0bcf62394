"""The audit log: an append-only Redis stream whose entries are hash-chained, so that an entry edited or
deleted afterwards breaks the chain where it was, and ``verify`` says where.

Each entry carries its number ``n``, the hash of the entry before it (``prev``) and its own ``hash``:
HMAC-SHA-256, under the audit key, of ``prev`` and the entry's content (its number included) in
canonical JSON. A head record beside the stream keeps the number and hash of the last entry, so a
deletion at the end is found too. Without the key, someone who can write to Redis cannot chain an
edited log again: the key is not in Redis.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import redis

from data.keys import Keys

GENESIS = "0" * 64  # the 'previous hash' of the first entry
CONTENT = ("n", "at_ms", "who", "role", "action", "detail")
PAGE = 1000
APPEND_TRIES = 50


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def entry_hash(key: bytes, prev: str, content: Mapping[str, Any]) -> str:
    """The hash an entry with this content must carry after ``prev``, under the audit key."""
    canonical = json.dumps({k: content[k] for k in CONTENT}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, f"{prev}\n{canonical}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One audit entry as stored."""

    id: str
    n: int | None
    at_ms: int | None
    who: str
    role: str
    action: str
    detail: str  # canonical JSON of what the action concerned
    prev: str
    hash: str

    @classmethod
    def of(cls, entry_id, fields: Mapping) -> Entry:
        f = {_text(k): _text(v) for k, v in fields.items()}

        def number(name: str) -> int | None:
            return int(f[name]) if f.get(name, "").isdigit() else None

        return cls(
            _text(entry_id),
            number("n"),
            number("at_ms"),
            f.get("who", ""),
            f.get("role", ""),
            f.get("action", ""),
            f.get("detail", ""),
            f.get("prev", ""),
            f.get("hash", ""),
        )

    @property
    def content(self) -> dict[str, Any]:
        return {"n": self.n, "at_ms": self.at_ms, "who": self.who, "role": self.role, "action": self.action,
                "detail": self.detail}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """What a verification found: whether the chain holds, its length, and where and why it breaks."""

    ok: bool
    length: int
    broken_at: int | None = None  # the number of the first entry that does not hold
    entry_id: str | None = None
    why: str = ""
    head: tuple[int, str] | None = None  # the last entry's number and hash, when the chain holds

    def sentence(self) -> str:
        if self.ok:
            head = (
                f" (last: entry {self.head[0]}, hash {self.head[1][:16]}…; keep it to check against later)"
                if self.head
                else ""
            )
            return f"audit chain holds: {self.length:,} entries{head}"
        if self.broken_at is None:
            return f"audit chain cannot be trusted: {self.why}"
        where = f"entry {self.broken_at}" + (f" (stream id {self.entry_id})" if self.entry_id else "")
        return f"audit chain broken at {where}: {self.why}"


def csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a reason typed as '=HYPERLINK(...)' is not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class Audit:
    """Append to, read, verify and export the audit log of one city."""

    def __init__(self, client: redis.Redis, keys: Keys, key: bytes, clock=time.time):
        self.client = client
        self.keys = keys
        self.key = key
        self.clock = clock

    def append(self, who: str, role: str, action: str, /, **detail: Any) -> Entry:
        """Append one entry, chained to the last, atomically with its head; return it."""
        stream, head = self.keys.audit(), self.keys.audit_head()
        text = json.dumps(detail, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        for _ in range(APPEND_TRIES):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(head)
                    n_raw, prev_raw = pipe.hmget(head, ["n", "hash"])
                    n = int(n_raw or 0) + 1
                    prev = _text(prev_raw) or GENESIS
                    content = {"n": n, "at_ms": int(self.clock() * 1000), "who": who, "role": role,
                               "action": action, "detail": text}  # fmt: skip
                    digest = entry_hash(self.key, prev, content)
                    pipe.multi()
                    pipe.xadd(stream, {**{k: str(v) for k, v in content.items()}, "prev": prev, "hash": digest})
                    pipe.hset(head, mapping={"n": n, "hash": digest})
                    entry_id = pipe.execute()[0]
                    return Entry.of(entry_id, {**content, "prev": prev, "hash": digest})
                except redis.WatchError:
                    continue
        raise RuntimeError(f"could not append to the audit log after {APPEND_TRIES} tries: too many writers at once")

    def entries(self) -> Iterator[Entry]:
        """Every entry, oldest first."""
        start = "-"
        while True:
            page = self.client.xrange(self.keys.audit(), start, "+", count=PAGE)
            for entry_id, fields in page:
                yield Entry.of(entry_id, fields)
            if len(page) < PAGE:
                return
            start = "(" + _text(page[-1][0])

    def newest(self, count: int) -> list[Entry]:
        """The newest entries, newest first."""
        return [Entry.of(i, f) for i, f in self.client.xrevrange(self.keys.audit(), count=count)]

    def length(self) -> int:
        return int(self.client.xlen(self.keys.audit()))

    def verify(self) -> Verdict:
        """Walk the chain from the first entry and report the first that does not hold; record the result.

        A verification that finds the chain whole leaves a signed anchor (the number and hash of the last
        entry): the next one also checks that the chain still reaches it, so entries deleted from the end
        and a head set back to an earlier entry are found too (unless the anchor is deleted with them: the
        health page then says the log was never verified).
        """
        anchor, why = self._anchor()
        verdict = self._walk(anchor) if why is None else Verdict(False, self.length(), None, None, why)
        at_ms = int(self.clock() * 1000)
        record = {"at_ms": at_ms, "ok": int(verdict.ok), "length": verdict.length, "sentence": verdict.sentence()}
        if verdict.ok and verdict.head is not None:
            n, digest = verdict.head
            record |= {"anchor_n": n, "anchor_hash": digest, "anchor_sig": self._sign(n, digest)}
        elif anchor is not None:  # a broken chain keeps the anchor of the last whole one
            record |= {"anchor_n": anchor[0], "anchor_hash": anchor[1], "anchor_sig": self._sign(*anchor)}
        self.client.hset(self.keys.audit_verified(), mapping=record)
        return verdict

    def _sign(self, n: int, digest: str) -> str:
        return hmac.new(self.key, f"anchor|{n}|{digest}".encode(), hashlib.sha256).hexdigest()

    def _anchor(self) -> tuple[tuple[int, str] | None, str | None]:
        """The last whole verification's anchor (number, hash) if one was left, and why it cannot be trusted."""
        raw = {_text(k): _text(v) for k, v in self.client.hgetall(self.keys.audit_verified()).items()}
        if "anchor_n" not in raw:
            return None, None
        n, digest = int(raw["anchor_n"]), raw.get("anchor_hash", "")
        if not hmac.compare_digest(self._sign(n, digest), raw.get("anchor_sig", "")):
            return None, "the record of the last verification was altered"
        return (n, digest), None

    def _walk(self, anchor: tuple[int, str] | None = None) -> Verdict:
        prev, expected, seen = GENESIS, 1, 0
        for entry in self.entries():
            seen += 1
            if entry.n is None or entry.at_ms is None:
                return Verdict(False, seen, expected, entry.id, "its number or time is not a number (edited)")
            if entry.n > expected:
                missing = f"entry {expected}" if entry.n == expected + 1 else f"entries {expected} to {entry.n - 1}"
                return Verdict(False, seen, expected, entry.id, f"{missing} deleted (the next kept is {entry.n})")
            if entry.n < expected:
                return Verdict(False, seen, entry.n, entry.id, f"number {entry.n} again after {expected - 1} (edited)")
            if entry.prev != prev:
                return Verdict(
                    False, seen, entry.n, entry.id, "it does not follow the entry before it (that one edited)"
                )
            if entry_hash(self.key, prev, entry.content) != entry.hash:
                return Verdict(False, seen, entry.n, entry.id, "its content does not match its hash (edited)")
            if anchor is not None and entry.n == anchor[0] and entry.hash != anchor[1]:
                return Verdict(False, seen, entry.n, entry.id, "it is not the entry the last verification saw")
            prev, expected = entry.hash, expected + 1
        n_raw, hash_raw = self.client.hmget(self.keys.audit_head(), ["n", "hash"])
        last = int(n_raw or 0)
        if last >= expected:
            which = f"entry {last}" if last == expected else f"entries {expected} to {last}"
            return Verdict(False, seen, expected, None, f"{which} deleted from the end")
        if last and _text(hash_raw) != prev:
            return Verdict(False, seen, last, None, "the last entry does not match the chain's head (edited)")
        if anchor is not None and expected - 1 < anchor[0]:
            gone = f"entry {anchor[0]}" if expected == anchor[0] else f"entries {expected} to {anchor[0]}"
            return Verdict(False, seen, expected, None, f"{gone} deleted from the end (the last verification saw them)")
        return Verdict(True, seen, head=(expected - 1, prev) if expected > 1 else None)

    def export_csv(self, out: IO[str]) -> int:
        """Write every entry as CSV (a header, then one row per entry); return the number of entries."""
        writer = csv.writer(out)
        writer.writerow(["stream_id", "n", "at_utc", "who", "role", "action", "detail", "prev", "hash"])
        count = 0
        for e in self.entries():
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at_ms / 1000)) if e.at_ms is not None else ""
            writer.writerow([csv_cell(v) for v in (e.id, e.n, at, e.who, e.role, e.action, e.detail, e.prev, e.hash)])
            count += 1
        return count
