"""The second table a mapping joins by normalised name: sensor locations, a geocode table of places."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from importers.core import normalised
from importers.mapping import MappingError, Spec
from importers.table import read_table


@dataclass(frozen=True)
class Places:
    """Points by normalised name (aliases applied first), and by area where the table names areas."""

    points: dict[str, tuple[float, float]]
    aliases: dict[str, str]

    def find(self, name: str) -> tuple[float, float] | None:
        """The point of a name, or None when the table has no usable point for it."""
        key = normalised(name)
        return self.points.get(self.aliases.get(key, key))


def load_places(spec: Spec, override: Path | None) -> Places:
    """Read the mapping's lookup table (or the file given instead) into points by normalised name."""
    lookup = spec.lookup
    if lookup is None:
        raise MappingError(f"{spec.path or 'the mapping'} has no [lookup] table, which this kind joins")
    path = override or lookup.file
    if path is None:
        raise MappingError(f"{spec.path or 'the mapping'}: [lookup] names no file; give one with --lookup")
    table = read_table(path)
    missing = [c for c in (lookup.name, lookup.lon, lookup.lat) if c not in table.columns]
    if missing:
        raise MappingError(
            f"{spec.path or 'the mapping'} names column(s) {missing} that {path} lacks;"
            f" its columns are: {', '.join(repr(c) for c in table.columns)}"
        )
    lon = pd.to_numeric(table.frame[lookup.lon].str.strip(), errors="coerce")
    lat = pd.to_numeric(table.frame[lookup.lat].str.strip(), errors="coerce")
    points = {}
    for name, x, y in zip(table.frame[lookup.name], lon, lat):
        if name.strip() and math.isfinite(x) and math.isfinite(y):
            points.setdefault(normalised(name), (float(x), float(y)))
    aliases = {normalised(k): normalised(v) for k, v in lookup.aliases.items()}
    return Places(points, aliases)
