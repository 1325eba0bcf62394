"""Complaint triage and routing: each complaint's category and priority with the reason, and each
complaint's way up community → neighbourhood → district → department.

The taxonomy (keywords in English and Chinese, base priorities, danger terms, names of things) and the
routing rules (competent level, departments, deadlines) are data files: a rule set is a folder holding
``taxonomy.json`` and ``routing.json``, one of those shipped in ``engines/rules`` or a city's own, chosen
by the ``CITYDECK_RULES`` setting and read through ``load_rules``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data.schema import COMPLAINT_CATEGORIES, ROUTING_LEVELS

RULES_DIR = Path(__file__).resolve().parent / "rules"
DEFAULT_RULES = "demo"
TAXONOMY_FILE, ROUTING_FILE = "taxonomy.json", "routing.json"
TAXONOMY_PATH = RULES_DIR / DEFAULT_RULES / TAXONOMY_FILE
ROUTING_PATH = RULES_DIR / DEFAULT_RULES / ROUTING_FILE
HOUR_MS = 3_600_000
# The categories treated as urgent whatever their words say: a danger to people or property now (an
# open manhole, a hazard, a burst main or flood, a blocked drain). The complaints page counts them, a
# surge of them is a wall alarm, and the simulated city's departments answer them at once.
URGENT_CATEGORIES = ("manhole", "public_safety", "water", "drainage")


# ---------------------------------------------------------------------------- taxonomy


@dataclass(frozen=True)
class Category:
    """A complaint category of the taxonomy, its base priority and how its words are recognised."""

    name: str
    label: str
    priority: int
    pattern: re.Pattern
    keywords: tuple[str, ...] = ()  # the words it is recognised by, English then Chinese


@dataclass(frozen=True)
class DangerRule:
    """Words that make a complaint more urgent: set a priority (``priority``) or raise it (``raise_by``)."""

    categories: frozenset[str]  # empty: applies to every category
    pattern: re.Pattern
    priority: int | None
    raise_by: int
    reason: str


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: cached per file, a cache key downstream
class Taxonomy:
    """Categories (most specific first), danger rules and names of things, as read from a taxonomy file.

    ``names`` matches the names of things whose words mean nothing on their own (``fire callbox``,
    ``double parked blocking traffic``): no danger rule takes its reason from a word inside one.
    """

    categories: tuple[Category, ...]
    danger: tuple[DangerRule, ...]
    names: re.Pattern = re.compile(r"(?!)")

    def category(self, name: str) -> Category:
        """Return the category with that name."""
        return next(c for c in self.categories if c.name == name)


# Where words meet without a space: a lower-case letter then a capital (``DoubleParked``), the last capital of
# an acronym before a capitalised word (``HTTPServer``), letters next to digits (``Poisoning1Or2``, ``WA5``), and
# Chinese next to any other script.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_JOINED = re.compile(
    rf"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])"
    rf"|(?<=[{_HAN}])(?=[^{_HAN}])|(?<=[^{_HAN}])(?=[{_HAN}])"
)
_SEPARATORS = re.compile(r"[\W_]+")


def words(text: str) -> list[str]:
    """Split text into lower-case words at spaces, punctuation, underscores, CamelCase humps and script changes."""
    return [w for w in _SEPARATORS.split(_JOINED.sub(" ", text or "").lower()) if w]


def normalised(text: str) -> str:
    """Return the text as its words joined by single spaces: what every pattern of a taxonomy reads."""
    return " ".join(words(text))


def _pattern(english: Iterable[str], chinese: Iterable[str]) -> re.Pattern:
    # English words match whole (with a plural ending) in the normalised text; Chinese has no spaces, so it
    # matches anywhere. Longest first, so a phrase wins over a word it starts with.
    terms = sorted({normalised(w) for w in english} - {""}, key=len, reverse=True)
    han = sorted(set(chinese), key=len, reverse=True)
    parts = [rf"(?<!\S){re.escape(w)}(?:s|es)?(?!\S)" for w in terms] + [re.escape(w) for w in han]
    return re.compile("|".join(parts) if parts else r"(?!)")


@functools.lru_cache(maxsize=8)
def load_taxonomy(path: Path | str = TAXONOMY_PATH) -> Taxonomy:
    """Read a taxonomy file (cached per path); its categories must be exactly the schema's."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    names = set(raw["categories"])
    if names != set(COMPLAINT_CATEGORIES):
        raise ValueError(
            f"{path}: categories must be the schema's; missing {sorted(set(COMPLAINT_CATEGORIES) - names)}, "
            f"unknown {sorted(names - set(COMPLAINT_CATEGORIES))}"
        )
    categories = tuple(
        Category(
            name,
            spec["label"],
            int(spec["priority"]),
            _pattern(spec.get("en", ()), spec.get("zh", ())),
            (*spec.get("en", ()), *spec.get("zh", ())),
        )
        for name, spec in raw["categories"].items()
    )
    danger = tuple(
        DangerRule(
            frozenset(rule.get("categories", ())),
            _pattern(rule.get("en", ()), rule.get("zh", ())),
            int(rule["priority"]) if "priority" in rule else None,
            int(rule.get("raise", 0)),
            rule["reason"],
        )
        for rule in raw["danger"]
    )
    things = raw.get("names", {})
    return Taxonomy(categories, danger, _pattern(things.get("en", ()), things.get("zh", ())))


# ---------------------------------------------------------------------------- triage


@dataclass(frozen=True)
class Triage:
    """The triage of one complaint: category, priority 1 (most urgent) to 4, and why."""

    category: str
    priority: int
    reason: str
    keywords: tuple[str, ...]


def triage_text(text: str, intake_category: str | None = None, taxonomy: Taxonomy | None = None) -> Triage:
    """Triage one complaint's words; the intake category is used only when no keyword matches."""
    taxonomy = taxonomy or load_taxonomy()
    text = normalised(text)
    names = [m.span() for m in taxonomy.names.finditer(text)]
    best: tuple[int, Category, tuple[str, ...]] | None = None
    for category in taxonomy.categories:
        hits = tuple(dict.fromkeys(m.group(0).lower() for m in category.pattern.finditer(text)))
        # Ties go to the earlier, more specific category.
        if hits and (best is None or len(hits) > best[0]):
            best = (len(hits), category, hits)
    if best is not None:
        category, keywords, source = best[1], best[2], None
    elif intake_category in COMPLAINT_CATEGORIES:
        category, keywords, source = taxonomy.category(intake_category), (), "category chosen at intake"
    else:
        category, keywords, source = taxonomy.category("other"), (), "no keyword recognised"

    priority, why = category.priority, f"{category.label} — usual priority" + (f" ({source})" if source else "")
    raised: list[str] = []
    for rule in taxonomy.danger:
        if rule.categories and category.name not in rule.categories:
            continue
        found = _outside_names(rule.pattern, text, names)
        if found is None:
            continue
        if rule.priority is not None and rule.priority < priority:
            priority, why = rule.priority, f"{rule.reason} (“{found.group(0)}”)"
        elif rule.raise_by and not raised:
            raised.append(f"{rule.reason} (“{found.group(0)}”)")
    if raised:
        new = max(1, priority - 1)
        if new < priority:
            why += f"; raised from P{priority}: {raised[0]}"
            priority = new
    return Triage(category.name, priority, f"P{priority}: {why}", keywords)


def _outside_names(pattern: re.Pattern, text: str, names: list[tuple[int, int]]) -> re.Match | None:
    """Return the first match that is not a word inside a name (it may be the whole name, or hold it)."""
    for found in pattern.finditer(text):
        start, end = found.span()
        if not any(
            start < n_end and n_start < end and not (start <= n_start and n_end <= end) for n_start, n_end in names
        ):
            return found
    return None


# ---------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class RoutingRules:
    """Levels, deadlines (ms by level and priority), departments and per-category competence."""

    levels: tuple[str, ...]
    deadlines_ms: Mapping[str, Mapping[int, int]]
    departments: Mapping[str, str]
    competent: Mapping[str, str]
    owners: Mapping[str, tuple[str, ...]]

    def deadline_ms(self, level: str, priority: int) -> int:
        """Return how long a level has to act on a complaint of this priority (ms)."""
        return self.deadlines_ms[level][int(priority)]


@functools.lru_cache(maxsize=8)
def load_routing(path: Path | str = ROUTING_PATH) -> RoutingRules:
    """Read a routing-rules file (cached per path); levels must be the schema's, in order."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if tuple(raw["levels"]) != ROUTING_LEVELS:
        raise ValueError(f"{path}: levels must be {ROUTING_LEVELS}, got {raw['levels']}")
    missing = set(COMPLAINT_CATEGORIES) - set(raw["categories"])
    if missing:
        raise ValueError(f"{path}: no routing rule for categories {sorted(missing)}")
    unknown = {d for spec in raw["categories"].values() for d in spec["departments"]} - set(raw["departments"])
    if unknown:
        raise ValueError(f"{path}: unknown departments {sorted(unknown)}")
    return RoutingRules(
        levels=ROUTING_LEVELS,
        deadlines_ms={
            level: {int(p): int(float(h) * HOUR_MS) for p, h in by_priority.items()}
            for level, by_priority in raw["deadlines_h"].items()
        },
        departments=dict(raw["departments"]),
        competent={c: spec["competent"] for c, spec in raw["categories"].items()},
        owners={c: tuple(spec["departments"]) for c, spec in raw["categories"].items()},
    )


# ---------------------------------------------------------------------------- rule sets


@dataclass(frozen=True)
class RuleSet:
    """A city's complaint rules: the taxonomy triage reads and the routing rules the router follows."""

    name: str
    folder: Path
    taxonomy: Taxonomy
    routing: RoutingRules


def shipped_rule_sets() -> tuple[str, ...]:
    """Return the names of the rule sets shipped in ``engines/rules`` (folders holding both files)."""
    return tuple(
        sorted(d.name for d in RULES_DIR.iterdir() if (d / TAXONOMY_FILE).is_file() and (d / ROUTING_FILE).is_file())
    )


def rules_folder(choice: str | Path) -> Path:
    """Return the folder of a rule set: the name of one shipped in ``engines/rules``, or a folder of a city's
    own holding ``taxonomy.json`` and ``routing.json``; raise ValueError naming the shipped ones otherwise."""
    text = str(choice).strip()
    shipped = RULES_DIR / text
    folder = shipped if text and "/" not in text and "\\" not in text and shipped.is_dir() else Path(text).expanduser()
    missing = [f for f in (TAXONOMY_FILE, ROUTING_FILE) if not (folder / f).is_file()]
    if not text or missing:
        raise ValueError(
            f"complaint rules {text!r}: no {' or '.join(missing) or 'folder'} there; give a shipped rule set"
            f" ({', '.join(shipped_rule_sets())}) or a folder holding {TAXONOMY_FILE} and {ROUTING_FILE}"
        )
    return folder.resolve()


def load_rules(choice: str | Path = DEFAULT_RULES) -> RuleSet:
    """Read a rule set named as ``rules_folder`` takes it (the ``CITYDECK_RULES`` setting)."""
    folder = rules_folder(choice)
    return RuleSet(
        name=folder.name,
        folder=folder,
        taxonomy=load_taxonomy(folder / TAXONOMY_FILE),
        routing=load_routing(folder / ROUTING_FILE),
    )


@dataclass
class Stay:
    """A complaint's stay at one level (and department): when it came, why, when it left."""

    level: str
    department: str | None
    entered_ms: int
    deadline_ms: int
    how: str  # assigned, escalated, deadline, remit, bounced, reassigned
    left_ms: int | None = None


@dataclass
class Route:
    """One complaint's way through the hierarchy: its stays, status and bounces."""

    complaint_id: str
    category: str
    priority: int
    opened_ms: int
    stays: list[Stay] = field(default_factory=list)
    status: str = "open"  # open, resolved, closed
    bounces: int = 0
    tried: list[str] = field(default_factory=list)  # departments that have held it
    _return_to: int | None = None  # rank it was sent down from, awaiting its return

    @property
    def stay(self) -> Stay:
        """Return the current stay."""
        return self.stays[-1]

    @property
    def escalations(self) -> int:
        """Return how many times it went up a level."""
        return sum(s.how in ("escalated", "deadline", "remit") for s in self.stays[1:])


class Router:
    """The routing state machine: open complaints, apply their updates, and escalate on ``tick``.

    States are (level, department, status). A complaint opens at the lowest level competent for its
    category; it goes up one level when its deadline there passes (``tick``) or the level declares it
    beyond its remit; updates from the field (``complaint_update`` events) move it as they say. A
    department that declares a complaint beyond its remit sends it back to the district, which passes
    it to the category's next department. Being sent down and coming back up counts as a bounce.
    """

    def __init__(self, rules: RoutingRules | None = None):
        self.rules = rules or load_routing()
        self.routes: dict[str, Route] = {}
        self._rank = {level: i for i, level in enumerate(self.rules.levels)}

    def open(self, complaint_id: str, category: str, priority: int, ts: int) -> Route:
        """Assign a new complaint to the lowest competent level (idempotent per complaint id)."""
        if complaint_id in self.routes:
            return self.routes[complaint_id]
        route = Route(complaint_id, category, int(priority), int(ts))
        level = self.rules.competent.get(category, self.rules.levels[0])
        self._enter(route, level, int(ts), "assigned")
        self.routes[complaint_id] = route
        return route

    def _department_for(self, route: Route) -> str:
        owners = self.rules.owners.get(route.category, ())
        fresh = [d for d in owners if d not in route.tried]
        return fresh[0] if fresh else (owners[-1] if owners else next(iter(self.rules.departments)))

    def _enter(self, route: Route, level: str, ts: int, how: str, department: str | None = None) -> Stay:
        if level == "department" and department is None:
            department = self._department_for(route)
        if route.stays:
            rank_now, rank_new = self._rank[route.stay.level], self._rank[level]
            route.stay.left_ms = ts
            if rank_new < rank_now:
                route._return_to = rank_now if route._return_to is None else route._return_to
            elif route._return_to is not None and rank_new >= route._return_to:
                route.bounces += 1
                route._return_to = None
        if department is not None and department not in route.tried:
            route.tried.append(department)
        stay = Stay(level, department, ts, ts + self.rules.deadline_ms(level, route.priority), how)
        route.stays.append(stay)
        return stay

    def apply(self, update: Mapping) -> bool:
        """Apply one complaint_update-like mapping (complaint_id, ts, action, level, department); False if unknown."""
        route = self.routes.get(str(update["complaint_id"]))
        if route is None:
            return False
        ts, action, level = int(update["ts"]), update["action"], update.get("level")
        department = update.get("department")
        department = (
            None if department is None or (isinstance(department, float) and math.isnan(department)) else department
        )
        if action == "assigned" and len(route.stays) == 1 and level in self._rank:
            # The intake desk's own first assignment replaces the engine's suggestion; it is no move.
            route.stays[0] = Stay(
                level, department, route.opened_ms, route.opened_ms + self.rules.deadline_ms(level, route.priority),
                "assigned",
            )  # fmt: skip
        elif action in ("assigned", "escalated", "bounced") and level in self._rank:
            if (level, department) != (route.stay.level, route.stay.department):
                self._enter(route, level, ts, action, department)
        elif action == "resolved":
            route.status = "resolved"
        elif action == "reopened":
            route.status = "open"
            route.stay.deadline_ms = ts + self.rules.deadline_ms(route.stay.level, route.priority)
        elif action == "closed":
            route.status = "closed"
            route.stay.left_ms = ts
        return True

    def tick(self, now_ms: int) -> pd.DataFrame:
        """Escalate every open complaint whose deadline has passed, at the moment it passed.

        Returns the escalations made, as complaint_update-like rows: ``complaint_id``, ``ts``,
        ``action`` (escalated), ``level``, ``department``, ``note``.
        """
        made = []
        top = self.rules.levels[-1]
        for route in self.routes.values():
            while route.status == "open" and route.stay.level != top and route.stay.deadline_ms <= now_ms:
                was = route.stay.level
                stay = self._enter(route, self.rules.levels[self._rank[was] + 1], route.stay.deadline_ms, "deadline")
                made.append(
                    {
                        "complaint_id": route.complaint_id,
                        "ts": stay.entered_ms,
                        "action": "escalated",
                        "level": stay.level,
                        "department": stay.department,
                        "note": f"Deadline at {was} passed; escalated to {self._holder(stay)}",
                    }
                )
        return pd.DataFrame(made, columns=["complaint_id", "ts", "action", "level", "department", "note"])

    def _holder(self, stay: Stay) -> str:
        return self.rules.departments.get(stay.department, stay.department) if stay.department else stay.level

    def rows(self, now_ms: int) -> list[dict]:
        """One dict per complaint: where it is, since when, its deadline and its history (the table's
        rows, for a caller that wants plain rows rather than a frame).

        Keys: ``complaint_id``, ``opened_ms``, ``category``, ``priority``, ``status``, ``level``, ``department``,
        ``holder`` (department name or level), ``entered_ms``, ``deadline_ms``, ``overdue`` (open and past
        its deadline), ``overdue_s``, ``waited_s`` (since opened), ``escalations``, ``bounces``,
        ``bounced`` and ``path`` (levels held, e.g. ``community → neighbourhood``).
        """
        rows = []
        for r in self.routes.values():
            s = r.stay
            late = r.status == "open" and s.deadline_ms < now_ms
            rows.append(
                {
                    "complaint_id": r.complaint_id,
                    "opened_ms": r.opened_ms,
                    "category": r.category,
                    "priority": r.priority,
                    "status": r.status,
                    "level": s.level,
                    "department": s.department,
                    "holder": self._holder(s),
                    "entered_ms": s.entered_ms,
                    "deadline_ms": s.deadline_ms,
                    "overdue": late,
                    "overdue_s": (now_ms - s.deadline_ms) / 1000 if late else 0.0,
                    "waited_s": (now_ms - r.opened_ms) / 1000,
                    "escalations": r.escalations,
                    "bounces": r.bounces,
                    "bounced": r.bounces > 0,
                    "path": " → ".join(x.department or x.level for x in r.stays),
                }
            )
        return rows
