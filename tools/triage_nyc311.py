"""Check complaint triage against real New York 311 requests: the NYC complaint type, mapped to our
categories, is the truth; triage reads only the words (complaint type and descriptor).

Run ``python -m tools.triage_nyc311 [CSV ...]``; without arguments it reads the two NYC samples in
``../shared/data/real/complaints``. Prints a confusion table (rows: true category, columns: triaged)
and the accuracy.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pandas as pd

from data.schema import COMPLAINT_CATEGORIES
from engines.complaints import RULES_DIR, triage_text

MAPPING_PATH = RULES_DIR / "nyc311_categories.json"
SAMPLES = ("nyc311_2013-12_sample.csv", "nyc311_2014-2019_mixed_sample.csv")
SHARED_COMPLAINTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "complaints"


@functools.lru_cache(maxsize=4)
def load_mapping(path: Path | str = MAPPING_PATH) -> tuple[dict[str, str], dict[str, str]]:
    """Read the NYC type → category mapping: (by type, by 'type|descriptor')."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    mapping = {**raw["by_type"], **raw["by_type_descriptor"]}
    unknown = set(mapping.values()) - set(COMPLAINT_CATEGORIES)
    if unknown:
        raise ValueError(f"{path}: categories not in the schema: {sorted(unknown)}")
    return raw["by_type"], raw["by_type_descriptor"]


def read_requests(paths: list[Path]) -> pd.DataFrame:
    """Read 311 CSVs into ``complaint_id``, ``complaint_type``, ``descriptor``, ``text``, ``file``."""
    frames = []
    for path in paths:
        raw = pd.read_csv(path, usecols=["Unique Key", "Complaint Type", "Descriptor"], dtype=str)
        frames.append(
            pd.DataFrame(
                {
                    "complaint_id": raw["Unique Key"],
                    "complaint_type": raw["Complaint Type"].fillna(""),
                    "descriptor": raw["Descriptor"].fillna(""),
                    "file": Path(path).name,
                }
            )
        )
    requests = pd.concat(frames, ignore_index=True)
    requests["text"] = requests["complaint_type"] + " " + requests["descriptor"]
    return requests


def true_categories(requests: pd.DataFrame) -> pd.Series:
    """Return the mapped category of each request (``other`` for unmapped types)."""
    by_type, by_pair = load_mapping()
    pair = requests["complaint_type"] + "|" + requests["descriptor"]
    return pair.map(by_pair).fillna(requests["complaint_type"].map(by_type)).fillna("other").rename("true")


def evaluate(requests: pd.DataFrame) -> pd.DataFrame:
    """Triage the requests' words; return them with ``true``, ``category`` (triaged) and ``agrees``."""
    # The words alone: the intake category would be the answer we are checking against.
    triaged = [triage_text(text).category for text in requests["text"]]
    out = requests.assign(true=true_categories(requests).to_numpy(), category=triaged)
    out["agrees"] = out["true"] == out["category"]
    return out


def confusion(evaluated: pd.DataFrame) -> pd.DataFrame:
    """Return counts of (true category, triaged category), with categories in schema order."""
    table = pd.crosstab(evaluated["true"], evaluated["category"])
    present = [c for c in COMPLAINT_CATEGORIES if c in set(table.index) | set(table.columns)]
    return table.reindex(index=present, columns=present, fill_value=0)


def main(argv: list[str] | None = None) -> int:
    """Print the confusion table and accuracy of triage on NYC 311 requests."""
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] or [SHARED_COMPLAINTS / name for name in SAMPLES]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    evaluated = evaluate(read_requests(paths))
    table = confusion(evaluated)
    short = {c: c[:6] for c in table.columns}
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("true category (rows) vs triaged (columns)")
        print(table.rename(columns=short).to_string())
    print()
    for name, part in evaluated.groupby("file"):
        print(f"{name}: {part['agrees'].mean():.1%} of {len(part)}")
    rest = evaluated[evaluated["complaint_type"] != "HEATING"]
    print(f"without the HEATING type (1,201 look-alike rows): {rest['agrees'].mean():.1%} of {len(rest)}")
    per_type = evaluated.groupby("complaint_type")["agrees"].mean()
    print(f"mean accuracy per NYC complaint type (each type weighted equally): {per_type.mean():.1%}")
    print(f"accuracy={evaluated['agrees'].mean():.4f} requests={len(evaluated)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
