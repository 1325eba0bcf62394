"""The small-cell rule for shared screens, in one place: a health count of 1 to N-1 in a community is
suppressed (shown as '<N'), 0 is shown as 0 (it reveals nobody), and every total and every larger area
is composed from those cells so that no suppressed count can be worked out from it.

A count leaves here as a ``ShownCount``: the value a screen may use (None where suppressed), the
least it can be, and its text, so nothing downstream parses '<3' back into a number.

Free text and raw fields shown to the roles that may read them pass through ``masked_text`` and
``masked_fields``: person tokens, phone numbers and e-mail addresses never reach a screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from data.schema import EVENT_TYPES


@dataclass(frozen=True)
class ShownCount:
    """A count as a shared screen may show it.

    ``value`` is the exact count, or None where it must not be shown; ``at_least`` is what the
    screen can say for sure (a suppressed cell is at least 1); ``text`` is what it shows.
    """

    value: int | None
    at_least: int
    text: str

    @property
    def suppressed(self) -> bool:
        """Whether the exact count is withheld."""
        return self.value is None

    @property
    def spoken(self) -> str:
        """The text in words, for hover labels and screen readers."""
        return f"fewer than {self.text[1:]}" if self.text.startswith("<") else self.text


def shown_count(n: int, minimum: int = 3) -> ShownCount:
    """One area's count as a shared screen shows it: 1..minimum-1 suppressed, 0 and the rest exact."""
    n = int(n)
    if 0 < n < minimum:
        return ShownCount(None, 1, f"<{minimum}")
    return ShownCount(n, n, f"{n:,}")


def shown_total(counts: Mapping[str, int] | Iterable[int], minimum: int = 3) -> ShownCount:
    """A total of areas' counts that cannot be subtracted back to a suppressed area.

    With no suppressed area it is exact. Otherwise the screen says the sum of the shown areas and
    how many areas hold a few more ('412+ · 3 areas <3'); its value is withheld and ``at_least``
    counts each suppressed area as 1. Whatever the suppressed counts are, the total reads the same.
    """
    values = counts.values() if isinstance(counts, Mapping) else counts
    cells = [shown_count(n, minimum) for n in values]
    shown = sum(c.value for c in cells if c.value is not None)
    hidden = sum(c.suppressed for c in cells)
    if not hidden:
        return ShownCount(shown, shown, f"{shown:,}")
    return ShownCount(None, shown + hidden, f"{shown:,}+ · {hidden} area{'s' if hidden != 1 else ''} <{minimum}")


def shown_area(community_counts: Iterable[int], minimum: int = 3) -> ShownCount:
    """An area's count on a shared screen, composed from its communities' cells: the cell itself for an
    area of one community, else their ``shown_total``.

    The rule is applied at the finest level only, and every coarser figure is made from those cells, so
    no figure at one level can be subtracted from another to undo a suppressed cell (a district's exact 3
    beside its two communities' '<3' would give them away as 1 and 2).
    """
    counts = [int(n) for n in community_counts]
    return shown_count(counts[0], minimum) if len(counts) == 1 else shown_total(counts, minimum)


MASK = "•••"
# Fields that name a person (or their contacts) whatever their value: shown masked, never as given.
PERSONAL_FIELDS = frozenset(
    ("person_id", "case_id", "phone", "email", "contact", "contact_name", "name", "first_name", "last_name",
     "address_line", "id_card")
)  # fmt: skip
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of 7 or more digits, with the separators people type in phone and identity numbers.
PHONE = re.compile(r"\+?\(?\d(?:[\s().-]{0,2}\d){6,}[\dXx]?")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _phone(match: re.Match) -> str:
    return match.group(0) if DATE.fullmatch(match.group(0)) else "[phone]"


def masked_text(text: str) -> str:
    """Free text with e-mail addresses and phone or identity numbers masked."""
    return PHONE.sub(_phone, EMAIL.sub("[e-mail]", text))


# The envelope of an event and of its dead letter, in the forms it has: kept whole when it has that form
# (a reader needs the ids and times), masked like text when it does not (a producer may put anything there).
ENVELOPE_FORMS = {
    "v": re.compile(r"\d{1,3}"),
    "seq": re.compile(r"\d{1,19}"),
    "ts": re.compile(r"\d{12,13}"),
    "dead_at_ms": re.compile(r"\d{12,13}"),
    "dead_entry_id": re.compile(r"\d{12,13}-\d{1,10}"),
    "type": re.compile(r"[a-z_]{1,40}"),
    # A producer's id as producers make them (sim-foot-20261204T211422Z-d1f203fe, imp-311-<digest>,
    # open311): a word first, so a phone number put there is no id and is masked like text.
    "src": re.compile(r"[a-z][a-z0-9_]{0,30}(?:[-.:][A-Za-z0-9_]{1,64}){0,8}"),
}
ENVELOPE_FIELDS = frozenset((*ENVELOPE_FORMS, "dead_reason", "dead_cut"))


def _number_check(kind: str, low: float | None, high: float | None):
    """Whether a text is a plausible value of a numeric field: a time, or a number within the field's range
    (a phone number put in 'lon' is not one)."""

    def plausible(text: str) -> bool:
        try:
            x = float(text)
        except ValueError:
            return False
        if kind == "ts":
            return bool(re.fullmatch(r"\d{12,13}", text))
        bounds = {"lon": (-180, 180), "lat": (-90, 90)}.get(kind, (low, high))
        lo, hi = bounds
        if lo is not None and x < lo or hi is not None and x > hi:
            return False
        return lo is not None or hi is not None or abs(x) < 1e6

    return plausible


NUMERIC_FIELDS = {
    f.name: _number_check(f.kind, f.low, f.high)
    for t in EVENT_TYPES
    for f in t.fields
    if f.kind in ("int", "float", "ts", "lon", "lat")
}


def masked_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Raw event fields as a screen may show them: personal fields masked whole, contacts masked in the rest;
    the envelope and plain numbers (times, counts, coordinates of a place) kept as they are."""
    shown = {}
    for k, v in fields.items():
        text = str(v)
        if k.lower() in PERSONAL_FIELDS:
            shown[k] = MASK
        elif (k in ENVELOPE_FORMS and ENVELOPE_FORMS[k].fullmatch(text)) or (
            k in NUMERIC_FIELDS and NUMERIC_FIELDS[k](text)
        ):
            shown[k] = text
        else:
            shown[k] = masked_text(text)
    return shown
