"""Rows from a remote API rather than a file: the pages of an Open311 endpoint's ``GET requests.json``, fetched
one after another into a local dump that is then imported like any file (so its digest names the producer)."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from importers.table import TableError

MAX_PAGES = 1000  # a bound on a server that never says it is done
TIMEOUT_S = 30.0


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch_pages(url: str, folder: Path) -> Path:
    """Fetch every page of a paged JSON list (Open311's ``page`` parameter, from 1, until an empty page) and
    write them, as one JSON array, to a file in ``folder``; return its path."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "page"]
    rows: list[dict] = []
    for page in range(1, MAX_PAGES + 1):
        asked = urlunsplit(parts._replace(query=urlencode([*query, ("page", str(page))])))
        try:
            with urllib.request.urlopen(asked, timeout=TIMEOUT_S) as answer:
                body = json.loads(answer.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            said = error.read()[:300].decode("utf-8", "replace")
            raise TableError(f"{asked}: the server answered {error.code} ({said})") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise TableError(f"{asked}: cannot be fetched ({error})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TableError(f"{asked}: the answer is not JSON ({error})") from None
        if not isinstance(body, list):
            raise TableError(f"{asked}: a JSON list of requests was expected, not {type(body).__name__}")
        if not body:
            break
        rows.extend(body)
    else:
        raise TableError(f"{url}: still answering after {MAX_PAGES} pages; narrow it (start_date, end_date)")
    dump = json.dumps(rows, ensure_ascii=False, sort_keys=True)
    path = folder / f"open311-{hashlib.sha256(dump.encode()).hexdigest()[:12]}.json"
    path.write_text(dump, encoding="utf-8")
    return path
