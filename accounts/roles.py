"""The roles of citydeck, in one place: each may do all that the one before it may, and more."""

from __future__ import annotations

# In order of what they may do; each role includes every role before it.
ROLES: tuple[str, ...] = ("wall", "viewer", "operator", "health", "admin")

ROLE_TITLES: dict[str, str] = {
    "wall": "wall display: aggregates with small counts suppressed, on /wall only",
    "viewer": "manager: every page with small counts suppressed; no free text, no precise case data",
    "operator": "operator: a viewer who also reads complaints' words (contacts masked) and acts on alarms",
    "health": "health officer: may open the precise case-tracing view, with a stated reason, for a limited time",
    "admin": "administrator: accounts, tokens and the audit log, and dead letters' fields (contacts masked)",
}

# What each role needs, said once: the screens and callbacks ask for a capability, never for a role name.
NEEDS: dict[str, str] = {
    "aggregates": "wall",
    "pages": "viewer",
    "complaint_words": "operator",
    "act_on_alarms": "operator",
    "precise_health": "health",
    "raw_fields": "admin",
    "accounts": "admin",
}


# Walls sign in by their display tokens; an account is a person's, with a password that can be changed.
ACCOUNT_ROLES: tuple[str, ...] = ROLES[1:]


class UnknownRole(ValueError):
    """A role name that is not one of ``ROLES``."""


def checked(role: str) -> str:
    """Return ``role`` if an account may have it (``ACCOUNT_ROLES``), else raise ``UnknownRole`` naming them."""
    if role == "wall":
        raise UnknownRole("'wall' is no account's role: a wall signs in by its token (python -m accounts wall create)")
    if role not in ACCOUNT_ROLES:
        raise UnknownRole(f"unknown role {role!r}: one of {', '.join(ACCOUNT_ROLES)}")
    return role


def may(role: str | None, capability: str) -> bool:
    """Whether ``role`` (None: nobody signed in) has ``capability`` (a key of ``NEEDS``)."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(NEEDS[capability])
