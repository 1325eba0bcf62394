"""Every Redis key and stream name citydeck uses, in one place.

All keys of one source share a hash tag (``{prefix:source}``), so the aggregate update,
the duplicate check and the acknowledgement of an entry touch a single Redis Cluster slot
and can run in one script.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES: tuple[str, ...] = ("cases", "foot", "services", "complaints")
SOURCE_TITLES: dict[str, str] = {
    "cases": "case tracing",
    "foot": "foot-traffic sensors",
    "services": "e-government services",
    "complaints": "citizen complaints",
}


@dataclass(frozen=True)
class Keys:
    """Names of every key, under one configurable prefix."""

    prefix: str = "citydeck"

    def _tag(self, source: str) -> str:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
        return f"{{{self.prefix}:{source}}}"

    def stream(self, source: str) -> str:
        """The event stream of a source."""
        return f"{self._tag(source)}:events"

    def dead_letters(self, source: str) -> str:
        """The dead-letter stream: rejected entries with their reason."""
        return f"{self._tag(source)}:dead"

    def dead_counts(self, source: str) -> str:
        """Hash of reason -> number of entries rejected for it."""
        return f"{self._tag(source)}:dead:counts"

    def meta(self, source: str) -> str:
        """Hash of per-source facts: newest event time, last ingest time, totals."""
        return f"{self._tag(source)}:meta"

    def lost(self, source: str) -> str:
        """Hash of what the stream lost before it was folded (trimmed by its cap): entries, the gaps whose
        size the server could not tell (uncounted), gaps, and the id range (first_id, last_id)."""
        return f"{self._tag(source)}:lost"

    def producers(self, source: str) -> str:
        """Hash of producer id -> JSON {first, last, received}: the sequence numbers seen of each producer,
        from which the events lost upstream are counted (``last - first + 1 - received``)."""
        return f"{self._tag(source)}:producers"

    def producer_seqs(self, source: str, producer: str, block: int) -> str:
        """Bitmap of the sequence numbers seen of one producer, in one block of them."""
        return f"{self._tag(source)}:producers:{producer}:{block}"

    def seen(self, source: str, hour: int) -> str:
        """Hash of idempotency key -> stream entry id, for events whose time falls in that hour."""
        return f"{self._tag(source)}:seen:{hour}"

    def bucket(self, source: str, facet: str, width: str, start: int) -> str:
        """Hash of facet key -> counter for one time bucket ('m' fine, or 'h' hourly once rolled up)."""
        return f"{self._tag(source)}:agg:{facet}:{width}:{start}"

    def stamps(self, source: str) -> str:
        """Hash of fine-bucket start (epoch s) -> number of the last commit that changed a bucket of that
        minute, kept for the minutes late events can still reach: readers re-read only what moved."""
        return f"{self._tag(source)}:agg:stamps"

    def open_hours(self, source: str) -> str:
        """Sorted set of hours (epoch s) holding fine buckets not yet rolled up into an hourly one."""
        return f"{self._tag(source)}:hours:open"

    def rolled_hours(self, source: str) -> str:
        """Sorted set of hours (epoch s) whose hourly buckets are complete."""
        return f"{self._tag(source)}:hours:rolled"

    def history_hours(self, source: str) -> str:
        """Sorted set of hours (epoch s) whose hourly buckets hold events folded after their fine retention
        (history imported at its own time): read like rolled hours, kept as long as that history."""
        return f"{self._tag(source)}:hours:history"

    def hour_facets(self, source: str, hour: int) -> str:
        """Set of the facets that have fine buckets in that hour."""
        return f"{self._tag(source)}:hours:{hour}:facets"

    def latest(self, source: str, facet: str) -> str:
        """Hash of entity -> its newest state (for example sensor -> last reading)."""
        return f"{self._tag(source)}:latest:{facet}"

    def latest_time(self, source: str, facet: str) -> str:
        """Hash of entity -> event time (ms) of the state held in `latest`."""
        return f"{self._tag(source)}:latest:{facet}:ts"

    def baseline(self, source: str, facet: str, hour: int, rule: str) -> str:
        """JSON of a facet's normal for one hour (epoch s) under one rule, shared by every dashboard process."""
        return f"{self._tag(source)}:baseline:{facet}:{hour}:{rule}"

    def state(self, source: str, name: str) -> str:
        """A keeper's state: a hash of entity -> state, or a sorted set, named within its source."""
        return f"{self._tag(source)}:state:{name}"

    def intake(self, source: str, name: str) -> str:
        """A front door's own records for a source (an API's request counter and remembered posts), in the
        source's slot so that a post, its record and its event are written in one script."""
        return f"{self._tag(source)}:intake:{name}"

    def workers(self) -> str:
        """Hash of aggregator worker name -> heartbeat, for the health view (hash-tagged with the prefix:
        on a Redis Cluster its slot is chosen by the city it belongs to, as a source's keys are by theirs)."""
        return f"{{{self.prefix}}}:workers"

    def alarms(self, name: str) -> str:
        """The alarms' state (hashes ``since``, ``seen``, ``acks``, ``shown``), their log (stream ``log``) and the
        alarm watch's heartbeat (``watch``), in one slot so a raise, a clear and their log entry are written
        together."""
        return f"{{{self.prefix}:alarms}}:{name}"

    def embedded_owner(self) -> str:
        """Key the embedded server's owner writes, so joiners can tell who started it."""
        return f"{self.prefix}:embedded:owner"

    # ------------------------------------------------------------------ who may see what

    def _access(self) -> str:
        # Accounts, tokens and the audit share one slot: an account change and its audit entry are written together.
        return f"{{{self.prefix}:access}}"

    def account(self, name: str) -> str:
        """Hash of one account: role, password hash, disabled, epoch (bumped to end its sessions), created."""
        return f"{self._access()}:account:{name}"

    def accounts(self) -> str:
        """Set of every account name."""
        return f"{self._access()}:accounts"

    def wall_token(self, digest: str) -> str:
        """Hash of one wall display token, by the SHA-256 of the token (the token itself is never stored)."""
        return f"{self._access()}:wall:{digest}"

    def wall_tokens(self) -> str:
        """Hash of wall token label -> digest of its token."""
        return f"{self._access()}:walls"

    def session(self, sid: str) -> str:
        """A signed-in browser session: the account's name, expiring when idle; deleted at sign-out."""
        return f"{self._access()}:session:{sid}"

    def grant(self, session: str) -> str:
        """Hash of one session's grant of the precise health view (account, reason, since, until, the areas
        looked at); it expires with the grant."""
        return f"{self._access()}:grant:{session}"

    def audit(self) -> str:
        """The audit stream: hash-chained entries of every look at precise health data and every access change."""
        return f"{self._access()}:audit"

    def audit_head(self) -> str:
        """Hash of the audit chain's head: the number and hash of its last entry."""
        return f"{self._access()}:audit:head"

    def audit_verified(self) -> str:
        """Hash of the last verification of the audit chain: when, length, whether it held, where it broke."""
        return f"{self._access()}:audit:verified"

    def limits(self) -> str:
        """Prefix of the sign-in rate limiter's counters."""
        return f"{self.prefix}:limits"
