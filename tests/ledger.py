"""What the workers left, in two questions every fault test asks.

``digest`` (from ``data.ledger``, which the ingest benchmark uses too) is every key the workers wrote
under a prefix, with its whole content, less what says how the work was done rather than what it
found; two runs that folded the same events must leave equal digests however their workers were
killed, restarted or raced. ``settlement`` reads every entry still in each event stream and says
where it went: folded (its id is the one a ``seen`` mark names), dead-lettered (a letter names it),
both, or neither. A sound run has every entry in exactly one of the first two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data.keys import SOURCES, Keys
from data.ledger import digest

__all__ = ["Settlement", "assert_settled", "digest", "settlement"]


@dataclass
class Settlement:
    """Where each entry of one source's stream went."""

    entries: set[bytes] = field(default_factory=set)
    folded: set[bytes] = field(default_factory=set)
    dead: dict[bytes, int] = field(default_factory=dict)  # entry id -> letters naming it

    @property
    def both(self) -> set[bytes]:
        return self.folded & set(self.dead)

    @property
    def neither(self) -> set[bytes]:
        return self.entries - self.folded - set(self.dead)

    @property
    def lettered_twice(self) -> set[bytes]:
        return {e for e, n in self.dead.items() if n > 1}

    def problems(self) -> dict[str, list[bytes]]:
        found = {"both": self.both, "neither": self.neither, "lettered twice": self.lettered_twice}
        return {what: sorted(ids)[:10] for what, ids in found.items() if ids}


def settlement(client, keys: Keys, sources=SOURCES) -> dict[str, Settlement]:
    """For each source, every entry in its stream and whether it was folded, dead-lettered, both or neither."""
    out: dict[str, Settlement] = {}
    for source in sources:
        s = Settlement()
        s.entries = {entry_id for entry_id, _ in client.xrange(keys.stream(source))}
        for raw in client.scan_iter(match=keys.seen(source, 0).removesuffix("0") + "*", count=1000):
            s.folded.update(client.hvals(raw))
        for _, letter in client.xrange(keys.dead_letters(source)):
            entry_id = letter.get(b"dead_entry_id")
            if entry_id is not None:
                s.dead[entry_id] = s.dead.get(entry_id, 0) + 1
        out[source] = s
    return out


def assert_settled(client, keys: Keys, sources=SOURCES) -> dict[str, Settlement]:
    """Every entry of every stream folded or dead-lettered, none both, none neither, none lettered twice."""
    found = settlement(client, keys, sources)
    problems = {source: p for source, s in found.items() if (p := s.problems())}
    assert not problems, problems
    return found
