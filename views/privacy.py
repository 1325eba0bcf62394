"""The small-cell rule for shared screens: a health count below the threshold in an area is shown as
'<N', and totals are shown so that no suppressed count can be worked out from them.
"""

from __future__ import annotations

from collections.abc import Mapping


def shown_count(n: int, minimum: int = 3) -> str:
    """The text a shared screen shows for one area's count."""
    return f"<{minimum}" if 0 < n < minimum else str(n)


def suppressed(counts: Mapping[str, int], minimum: int = 3) -> dict[str, int | None]:
    """Per area: its count, or None where it must not be shown (0 is shown: it reveals nobody)."""
    return {k: (None if 0 < n < minimum else int(n)) for k, n in counts.items()}


def shown_total(counts: Mapping[str, int], minimum: int = 3) -> str:
    """A total that cannot be subtracted back to a suppressed area.

    With no suppressed area it is exact. Otherwise it is the sum of the shown areas as a lower bound,
    with how many areas hold a few more ('412+ · 3 areas <3'): the suppressed counts never enter it.
    """
    shown = sum(n for n in counts.values() if n >= minimum)
    hidden = sum(1 for n in counts.values() if 0 < n < minimum)
    if not hidden:
        return f"{shown:,}"
    return f"{shown:,}+ · {hidden} area{'s' if hidden != 1 else ''} <{minimum}"
