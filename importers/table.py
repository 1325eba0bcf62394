"""Reading a source file (CSV, JSON Lines, GeoJSON, Parquet) into text columns, each row with its line number."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
GEO_SUFFIXES = {".geojson", ".json", ".gpkg"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


class TableError(ValueError):
    """A file that cannot be read as a table."""


@dataclass
class SourceTable:
    """A file's rows as text (blank is ''), with where each row starts and, for a GeoJSON, its geometry.

    ``positions`` are 1-based line numbers in a CSV or JSON Lines file (``unit`` "line"), feature
    numbers in a GeoJSON (``unit`` "feature") and row numbers in a Parquet file (``unit`` "row").
    Rows with every cell blank are left out and counted in ``blank_rows``.
    """

    path: Path
    frame: pd.DataFrame
    positions: np.ndarray
    unit: str
    geometry: np.ndarray | None = None
    blank_rows: int = 0

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def where(self, i: int) -> str:
        """Say where row i is in its file: 'line 12'."""
        return f"{self.unit} {int(self.positions[i])}"


def read_table(path: str | Path) -> SourceTable:
    """Read a CSV, JSON Lines, GeoJSON (or GeoPackage) or Parquet file, chosen by its suffix."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _csv(path, "\t" if suffix == ".tsv" else ",")
    if suffix in JSONL_SUFFIXES:
        return _jsonl(path)
    if suffix == ".json" and _first_character(path) == "[":
        return _json_array(path)  # an API's dump (an Open311 requests.json), not GeoJSON
    if suffix in GEO_SUFFIXES:
        return _geo(path)
    if suffix in PARQUET_SUFFIXES:
        frame = pd.read_parquet(path)
        return _finish(path, _as_text(frame), np.arange(1, len(frame) + 1), "row")
    known = sorted(CSV_SUFFIXES | JSONL_SUFFIXES | GEO_SUFFIXES | PARQUET_SUFFIXES)
    raise TableError(f"{path}: unknown kind of file {suffix!r}; expected one of {', '.join(known)}")


def _csv(path: Path, delimiter: str) -> SourceTable:
    # The csv module, not pandas, so that a row keeps the line it starts on even after a quoted
    # cell that spans lines.
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise TableError(f"{path}: the file is empty") from None
        header = [h.strip() for h in header]
        while header and header[-1] == "":
            header.pop()  # a trailing comma on the header names no column
        rows, positions = [], []
        start = reader.line_num + 1
        width = len(header)
        for record in reader:
            cells = (record + [""] * width)[:width]
            rows.append(cells)
            positions.append(start)
            start = reader.line_num + 1
    frame = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header, dtype=object)
    return _finish(path, frame, np.asarray(positions, dtype=np.int64), "line")


def _jsonl(path: Path) -> SourceTable:
    records, positions = [], []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise TableError(f"{path}: line {n} is not JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise TableError(f"{path}: line {n} is not a JSON object")
            records.append(record)
            positions.append(n)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return _finish(path, _as_text(frame), np.asarray(positions, dtype=np.int64), "line")


def _first_character(path: Path) -> str:
    with path.open(encoding="utf-8-sig") as f:
        return f.read(256).lstrip()[:1]


def _json_array(path: Path) -> SourceTable:
    try:
        records = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise TableError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    if not all(isinstance(r, dict) for r in records):
        raise TableError(f"{path}: a JSON array of objects was expected (one per row)")
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return _finish(path, _as_text(frame), np.arange(1, len(frame) + 1), "item")


def _geo(path: Path) -> SourceTable:
    import geopandas as gpd

    try:
        features = gpd.read_file(path, engine="pyogrio")
    except Exception as error:  # pyogrio raises several unrelated types for unreadable files
        raise TableError(f"{path}: cannot read features ({error})") from error
    if features.crs is not None and not features.crs.equals("EPSG:4326"):
        features = features.to_crs("EPSG:4326")
    geometry = features.geometry.to_numpy()
    frame = _as_text(pd.DataFrame(features.drop(columns=features.geometry.name)))
    return _finish(path, frame, np.arange(1, len(frame) + 1), "feature", geometry)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, a missing one as ''."""
    out = pd.DataFrame(index=frame.index)
    for c in frame.columns:
        column = frame[c]
        text = column.astype(object).where(column.notna(), "")
        out[str(c)] = [v if isinstance(v, str) else str(v) for v in text]
    return out.reset_index(drop=True)


def _finish(
    path: Path, frame: pd.DataFrame, positions: np.ndarray, unit: str, geometry: np.ndarray | None = None
) -> SourceTable:
    if frame.columns.duplicated().any():
        raise TableError(
            f"{path}: the header repeats column(s) {sorted(set(frame.columns[frame.columns.duplicated()]))}"
        )
    if len(frame) == 0:
        return SourceTable(path, frame, positions, unit, geometry)
    filled = np.ones(len(frame), dtype=bool) if geometry is not None else np.zeros(len(frame), dtype=bool)
    for c in frame.columns:
        filled |= frame[c].str.strip().ne("").to_numpy()
    blank = int((~filled).sum())
    if blank:
        frame = frame[filled].reset_index(drop=True)
        positions = positions[filled]
        geometry = None if geometry is None else geometry[filled]
    return SourceTable(path, frame, positions, unit, geometry, blank)
