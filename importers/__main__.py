"""Command line: ``python -m importers KIND FILE [--mapping M] [--as-is | --replay --speed N] [--dry-run]``.

Redis and the city come from the environment, as for every citydeck command (``REDIS_URL``,
``CITYDECK_KEY_PREFIX``, ``CITYDECK_CITY``...; see ``settings.py``). Points are never moved: a
file from another city is imported into a deployment whose city (``CITYDECK_CITY``) contains it.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from importers import core, hourly, mapping, periods, places, remote, requests311, routes
from importers.table import TableError

KINDS = {m.KIND: m for m in (requests311, hourly, periods, routes, places)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m importers",
        description="Import a public data file (CSV, JSON Lines, GeoJSON, Parquet) into citydeck's streams.",
        epilog="kinds: " + "; ".join(f"{k}: {m.HELP} (default mapping {m.DEFAULT_MAPPING})" for k, m in KINDS.items()),
    )
    parser.add_argument("kind", choices=list(KINDS), metavar="KIND", help=f"one of {', '.join(KINDS)}")
    parser.add_argument(
        "file", metavar="FILE", help="the file to import, or an Open311 endpoint's requests.json URL to page through"
    )
    parser.add_argument(
        "--mapping", help="a mapping file (TOML), or the name of a shipped one (importers/mappings); default per kind"
    )
    parser.add_argument("--lookup", type=Path, help="the second table the mapping joins (locations, geocodes)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--as-is", action="store_true", help="events keep their own times, history included (default)")
    when.add_argument("--replay", action="store_true", help="times shifted to end now, compressed by --speed")
    parser.add_argument("--speed", type=float, default=1.0, help="with --replay: file seconds per replayed second")
    parser.add_argument("--dry-run", action="store_true", help="read and validate only; write nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.speed) and args.speed > 0):
        parser.error("--speed must be positive")
    if args.speed != 1.0 and not args.replay:
        parser.error("--speed goes with --replay")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Import a file; print the summary; return the exit code (2 for a file or mapping that cannot be used)."""
    from data.connection import EmbeddedInProduction, shared_redis_url
    from geo.configured import city_for
    from settings import Settings
    from simulators.producer import producer_client

    args = parse_args(argv)
    kind = KINDS[args.kind]
    options = core.Options(
        mode="replay" if args.replay else "as-is", speed=args.speed, dry_run=args.dry_run, lookup=args.lookup
    )
    settings = Settings.from_env()
    fetched = tempfile.TemporaryDirectory(prefix="citydeck-import-")
    try:
        if remote.is_url(args.file):
            args.file = remote.fetch_pages(args.file, Path(fetched.name))
        spec = mapping.load(args.mapping or kind.DEFAULT_MAPPING)
        city = city_for(settings)
        if args.dry_run:
            summary = core.run(kind, args.file, spec, options, settings, city)
        else:
            with shared_redis_url(settings) as url:
                summary = core.run(
                    kind,
                    args.file,
                    spec,
                    options,
                    settings,
                    city,
                    lambda: producer_client(url),
                    progress=not args.quiet and sys.stderr.isatty(),
                )
    except EmbeddedInProduction as e:
        print(f"python -m importers: error: {e}", file=sys.stderr)
        return 2
    except (mapping.MappingError, TableError) as error:
        print(f"python -m importers: error: {error}", file=sys.stderr)
        return 2
    finally:
        fetched.cleanup()
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
